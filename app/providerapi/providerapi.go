// Package providerapi is the provider API: the OAuth 2.0 client
// credentials token endpoint, the bearer-token resolver with per-client
// rate limits and Idempotency-Key handling, and the /api/v1 endpoints a
// provider's systems call (capabilities, telematic data, deliveries, usage,
// invoices and their documents, webhook endpoints, the OpenAPI document).
//
// Every telematicData read is decided by policies.Decide on facts gathered
// fresh for the request, and a read that carries values is recorded in the
// delivery ledger (billing's grouped-commit writer) before the response
// leaves; when it cannot be recorded the client gets 503 and no data.
//
// Errors are problem+json with stable codes, except at /oauth/token, which
// answers in RFC 6749's error format because OAuth client libraries expect it.
package providerapi

import (
	"context"
	"crypto/cipher"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/vehicles"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
)

// ReadFacts are what one telematicData read needs to know, gathered fresh
// for the request (no cache may outlive a revocation).
type ReadFacts struct {
	Facts            policies.AccessFacts // ContainerKeys: the keys the response carries
	VehicleID        int64                // 0 when the vehicle is unknown
	ContainerVersion int
	ConsentID        int64
}

// FactsFunc gathers the facts of a read of containerID for vin by the
// provider's API client at `at`. The consent module implements it; a
// container of another provider must look exactly like an unknown one.
type FactsFunc func(ctx context.Context, providerID, clientID int64, vin string, containerID int64, at time.Time) (*ReadFacts, error)

// LedgerWriter is billing's grouped-commit writer (an interface so the
// benchmark and tests can observe it).
type LedgerWriter interface {
	Write(ctx context.Context, d billing.Delivery) error
}

// Handler holds what the API needs.
type Handler struct {
	DB         *gorm.DB
	Onboarding *onboarding.Service
	Vehicles   *vehicles.Service
	Billing    *billing.Service // the provider's invoices (issued documents only), its ledger and usage
	Webhooks   *webhooks.Service
	Tokens     *Tokens
	Limiter    *Limiter
	Ledger     LedgerWriter
	// Facts is wired to the consent module; while it is nil telematicData
	// answers 503 telematics_unavailable (no data leaves unchecked).
	Facts FactsFunc
	// Consents lets a telematicData read resolve its token, gather the
	// decision's facts (consent.FactsSQL) and read the values in one
	// statement (fastread.go); nil keeps every read on the general path.
	Consents *consent.Service
	// ReadConcurrency bounds the pipelined batches of fast reads in
	// PostgreSQL at once (0: two per core; fastread.go).
	ReadConcurrency int
	authFails       authFailures
	readOnce        sync.Once
	readPipe        *readPipeline
	memKeyOnce      sync.Once // seals stored answers without SECRETS_KEY (idempotency.go)
	memKey          cipher.AEAD
	memKeyErr       error
	Location        *time.Location // billing time zone, for usage periods
	Now             func() time.Time
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// PublicRoutes are open to anonymous callers (method, path as registered).
var PublicRoutes = [][2]string{
	{fiber.MethodPost, "/oauth/token"},
	{fiber.MethodGet, "/api/v1/openapi.json"},
	{fiber.MethodGet, "/api/docs"},
}

// Routes mounts /oauth/token and the /api/v1 endpoints on the app.
func (h *Handler) Routes(app fiber.Router) {
	app.Post("/oauth/token", h.token)
	app.Get("/api/docs", h.docs)
	v1 := app.Group("/api/v1")
	v1.Get("/openapi.json", h.openapi)
	v1.Get("/vehicles/:vin/capabilities", h.capabilities)
	v1.Get("/vehicles/:vin/telematicData", h.telematicData)
	v1.Get("/deliveries", h.deliveries)
	v1.Get("/usage", h.usage)
	v1.Get("/invoices", h.invoices)
	v1.Get("/invoices/:id", h.invoice)
	v1.Get("/invoices/:id/pdf", h.invoiceDocument("pdf"))
	v1.Get("/invoices/:id/xml", h.invoiceDocument("ubl"))
	v1.Get("/webhooks", h.listWebhooks)
	v1.Post("/webhooks", h.createWebhook)
	v1.Get("/webhooks/:id", h.getWebhook)
	v1.Delete("/webhooks/:id", h.deleteWebhook)
	v1.Post("/webhooks/:id/test", h.testWebhook)
	v1.Get("/webhooks/:id/deliveries", h.webhookDeliveries)
	v1.Post("/webhooks/:id/deliveries/:delivery/redeliver", h.redeliver)
}

// realm is the sandbox the caller belongs to: its provider id for a
// sandbox client, 0 for a production client.
func realm(p *policies.Principal) int64 {
	if p.Sandbox {
		return p.ProviderID
	}
	return 0
}

func pathInt(c *fiber.Ctx, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Params(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, errs.New(errs.NotFound, "not_found", "no such resource")
	}
	return id, nil
}

// capabilities is GET /vehicles/{vin}/capabilities: what the vehicle can
// deliver as of now. It is the capability service of rule 15 (no consent
// needed, not billed); only API clients of active providers get here.
func (h *Handler) capabilities(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	caps, err := h.Vehicles.CapabilitiesIn(c.UserContext(), c.Params("vin"), h.now(), realm(p))
	if err != nil {
		return err
	}
	return c.JSON(caps)
}
