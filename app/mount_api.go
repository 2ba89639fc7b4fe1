package app

import (
	"context"
	"time"

	"gorm.io/gorm"

	"cardata/admin"
	"cardata/app/portal"
	"cardata/app/providerapi"
	"cardata/billing"
	"cardata/jobs"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/onboarding/webhooks"
	"cardata/policies/consent"
)

// mountAPI mounts the provider API (/oauth/token, /api/v1), its bearer
// resolver, the push worker, the portal and staff pages for deliveries,
// usage and webhooks, and the clean-up job.
//
// Authorization: API clients carry bearer tokens, not sessions. The route
// guard runs before any group middleware, so app.go calls a.bearer right
// after the session resolver: it turns a valid token into a principal with
// the role provider_api (policies/rules/50_api.csv), applies the client's
// rate limit and Idempotency-Key, and then the guard decides as for
// everyone else.
//
// The consent module (mountConsent, which runs later) completes these
// services: a.API.Facts for the decision on every read, and the webhooks'
// Recipients and ConsentActive for pushes. Until then telematicData answers
// 503 telematics_unavailable and no data push is created or sent.
func (a *App) mountAPI() error {
	// Shares of the pool budget (mount_jobs.go poolBudget): ledger commits,
	// push attempts in the database and read batches at once.
	budget, err := a.poolBudget()
	if err != nil {
		return err
	}
	ledger, err := billing.NewLedgerWriter(a.DB, billing.WriterOptions{Committers: budget.Ledger})
	if err != nil {
		return err
	}
	a.onShutdown(ledger.Close) // after the handlers that write it have returned

	// Signing secrets are sealed at rest under SECRETS_KEY; any still in
	// clear (made before the key was set) are sealed now.
	// The key is this app's: handed to the services that seal and open.
	secrets, err := webhooks.NewSecrets(a.Cfg.SecretsKey)
	if err != nil {
		return err
	}
	if n, err := webhooks.SealStoredSecrets(context.Background(), a.DB, secrets); err != nil {
		return err
	} else if n > 0 {
		a.Log.Info("sealed webhook signing secrets", "count", n)
	}
	hooks := &webhooks.Service{DB: a.DB, Log: a.Log, PublicURL: a.Cfg.PublicURL, Secrets: secrets,
		RecordPush: func(ctx context.Context, tx *gorm.DB, r webhooks.PushRecord) error {
			// A revoke that committed while the push was on the wire: the
			// receiver has it, but it is not billed (the consent had ended).
			if granted, err := consent.GrantedAtDelivery(ctx, tx, r.ConsentID); err != nil || !granted {
				return err
			}
			return billing.Ledger{}.Record(ctx, tx, billing.Delivery{ProviderID: r.ProviderID, VIN: r.VIN, ContainerID: r.ContainerID,
				ContainerVersion: r.ContainerVersion, ConsentID: r.ConsentID, Kind: billing.KindPush, KeyIDs: r.KeyIDs,
				EventID: r.EventID, EventType: r.EventType, Bytes: r.Bytes, RequestID: r.RequestID, At: r.At})
		}}
	// The loop (fan-out, claims) takes one connection of the push share,
	// the attempts the rest; their HTTP calls hold none and stay as many.
	hooks.Opt.DBConcurrency = budget.PushAttempts()
	a.Webhooks = hooks
	a.AddWorker(hooks.Run)

	// Billing owns the ledger: the deliveries lists and usage of the API,
	// the portal and the staff pages read it through billing's methods.
	ledgerReads := a.newBillingService()
	// mountIngest builds a.Vehicles after this mount; the service is stateless.
	vehicleSvc := &vehicles.Service{DB: a.DB, Catalog: catalog.Default()}
	h := &providerapi.Handler{DB: a.DB, Onboarding: a.newOnboardingService(), Vehicles: vehicleSvc, Webhooks: hooks, Billing: ledgerReads,
		Tokens:  &providerapi.Tokens{DB: a.DB, TTL: a.Cfg.APITokenTTL},
		Limiter: providerapi.NewSharedLimiter(float64(a.Cfg.APIRateLimit), a.Cfg.APIRateBurst, a.DB, a.Log),
		Ledger:  ledger, Location: a.Cfg.BillingTimezone, ReadConcurrency: budget.APIReads}
	// The consent module's facts statement, embedded in a telematicData
	// read's one round trip (mountConsent sets h.Facts, without which no
	// read is served at all).
	h.Consents = a.newConsentService()
	a.API = h
	a.onShutdown(h.Close) // the fast-read leaders
	h.Routes(a.Fiber)
	a.bearer = h.Bearer
	for _, r := range providerapi.PublicRoutes {
		a.Access.Public(r[0], r[1])
	}

	pages := &portal.APIPages{View: a.View, Webhooks: hooks, Billing: ledgerReads, Location: a.Cfg.BillingTimezone}
	pages.Routes(a.surface("/portal"))
	for _, item := range portal.APINav() {
		a.View.AddNav("Partner portal", item)
	}
	staffPages := &admin.DeliveryHandlers{View: a.View, Onboarding: a.newOnboardingService(), Webhooks: hooks, Billing: ledgerReads,
		Location: a.Cfg.BillingTimezone}
	staffPages.Routes(a.surface("/admin"))
	a.View.AddNav("Partners", admin.DeliveryNav())
	// Dead-lettered vehicle events and deliveries, by stage, on /metrics.
	hooks.Register(a.Registry)

	if a.Jobs == nil {
		return nil
	}
	return a.Jobs.Register(jobs.Job{
		Name: "providerapi.purge", Title: "Provider API clean-up", Spec: "7 * * * *", Timeout: 5 * time.Minute,
		Description: "Deletes expired access tokens and Idempotency-Key answers older than 24 hours.",
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := h.Tokens.Purge(ctx)
			r.Set("tokens_removed", n)
			if err != nil {
				return err
			}
			m, err := h.PurgeIdempotencyKeys(ctx, time.Now())
			r.Set("idempotency_keys_removed", m)
			return err
		},
	})
}
