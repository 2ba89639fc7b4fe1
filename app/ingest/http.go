package ingest

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding/catalog"
	"cardata/policies"
	"cardata/policies/errs"
)

// Handler is the ingest's HTTP surface.
type Handler struct {
	Svc *Service
	// Allowed is the casbin check (roles, path, method); the gateway's role
	// must be granted the route in policies/rules.
	Allowed func(roles []string, path, method string) bool
}

// Routes mounts POST /signals on r (the /ingest/v1 group) behind the
// bearer-token check.
func (h *Handler) Routes(r fiber.Router) {
	r.Use(h.authenticate)
	r.Post("/signals", h.postSignals)
}

// authenticate resolves "Authorization: Bearer <token>" to a gateway
// principal and checks it against the policy. It never reads cookies.
func (h *Handler) authenticate(c *fiber.Ctx) error {
	auth := c.Get(fiber.HeaderAuthorization)
	scheme, token, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cardata-ingest"`)
		return errs.New(errs.Unauthorized, "unauthenticated", "send the gateway's token as Authorization: Bearer <token>")
	}
	g, err := h.Svc.Authenticate(c.UserContext(), strings.TrimSpace(token))
	if err != nil {
		if errs.KindOf(err) == errs.Unauthorized {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cardata-ingest", error="invalid_token"`)
		}
		return err
	}
	p := &policies.Principal{Kind: policies.KindGateway, ID: g.ID, Name: g.Name, Email: "gateway:" + g.Name, Roles: []string{RoleGateway}}
	if h.Allowed == nil || !h.Allowed(p.Roles, c.Path(), c.Method()) {
		return errs.New(errs.Forbidden, "forbidden", "this gateway may not call %s %s", c.Method(), c.Path())
	}
	c.SetUserContext(policies.WithPrincipal(c.UserContext(), p))
	return c.Next()
}

var signalPool = sync.Pool{New: func() any { s := make([]Signal, 0, 1024); return &s }}

var gunzipBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (h *Handler) postSignals(c *fiber.Ctx) error {
	ct := c.Get(fiber.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = ""
	}
	ndjson := false
	switch mt {
	case "application/json":
	case "application/x-ndjson":
		ndjson = true
	default:
		return &errs.Error{Kind: "unsupported_media_type", Code: "unsupported_media_type",
			Message: "send application/json ({\"signals\": [...]}) or application/x-ndjson (one signal per line)"}
	}
	// The raw body: fiber's c.Body() would inflate gzip without a size limit.
	body := c.Request().Body()
	switch enc := strings.ToLower(strings.TrimSpace(c.Get(fiber.HeaderContentEncoding))); enc {
	case "", "identity":
	case "gzip":
		buf := gunzipBufs.Get().(*bytes.Buffer)
		defer func() {
			if buf.Cap() <= 2*MaxBodyBytes {
				buf.Reset()
				gunzipBufs.Put(buf)
			}
		}()
		if body, err = gunzip(body, buf); err != nil {
			return err
		}
	default:
		return &errs.Error{Kind: "unsupported_media_type", Code: "unsupported_encoding", Message: "only gzip content encoding is supported"}
	}
	if len(body) > MaxBodyBytes {
		return errs.New(errs.TooLarge, "payload_too_large", "a request body is at most 16 MiB")
	}
	sp := signalPool.Get().(*[]Signal)
	signals := *sp
	defer func() {
		clear(signals) // drop references into the body (entries past len are already zero)
		*sp = signals[:0]
		signalPool.Put(sp)
	}()
	if ndjson {
		signals, err = DecodeNDJSON(body, MaxSignals, signals)
	} else {
		signals, err = DecodeJSON(body, MaxSignals, signals)
	}
	if err != nil {
		return err
	}
	res, err := h.Svc.Ingest(c.UserContext(), signals)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func gunzip(body []byte, buf *bytes.Buffer) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, errs.New(errs.BadRequest, CodeMalformedBody, "the body is not valid gzip")
	}
	n, err := buf.ReadFrom(io.LimitReader(zr, MaxBodyBytes+1))
	if err != nil {
		return nil, errs.New(errs.BadRequest, CodeMalformedBody, "the body is not valid gzip")
	}
	if n > MaxBodyBytes {
		return nil, errs.New(errs.TooLarge, "payload_too_large", "a request body is at most 16 MiB once decompressed")
	}
	return buf.Bytes(), nil
}

// CatalogHandler serves GET /api/v1/catalog: the telematics catalog as JSON.
func CatalogHandler(cat *catalog.Catalog) fiber.Handler {
	type entry struct {
		catalog.Key
		Sensitive   bool   `json:"sensitive"`
		Description string `json:"description,omitempty"`
	}
	return func(c *fiber.Ctx) error {
		category := c.Query("category")
		lang := c.Query("lang")
		out := make([]entry, 0, cat.Len())
		for _, k := range cat.Keys() {
			if category != "" && k.Category != category {
				continue
			}
			e := entry{Key: k, Sensitive: k.Sensitive()}
			switch lang {
			case "de":
				e.Description = k.DescriptionDE
			case "en":
				e.Description = k.DescriptionEN
			}
			out = append(out, e)
		}
		c.Set(fiber.HeaderCacheControl, "public, max-age=300")
		return c.JSON(fiber.Map{"version": cat.Version, "count": len(out), "keys": out})
	}
}
