package app

import (
	"cardata/admin"
	"cardata/app/portal"
	"cardata/app/providerapi"
)

// mountAPI mounts the provider API (/oauth/token, /api/v1), its bearer
// resolver, and the portal and staff pages for deliveries, usage and
// webhooks, and the portal's developer page.
//
// Authorization: API clients carry bearer tokens, not sessions. The route
// guard runs before any group middleware, so app.go calls a.bearer right
// after the session resolver: it turns a valid token into a principal with
// the role provider_api (policies/rules/50_api.csv), applies the client's
// rate limit and Idempotency-Key, and then the guard decides as for
// everyone else.
//
// The consent module's facts decide every telematicData read (Facts), and
// its statement is embedded in a read's one round trip (Consents).
func (a *App) mountAPI() error {
	s := a.Services
	h := &providerapi.Handler{DB: a.DB, Onboarding: s.Onboarding, Vehicles: s.Vehicles, Webhooks: s.Webhooks, Billing: s.Billing,
		Tokens:  s.Tokens,
		Limiter: providerapi.NewSharedLimiter(float64(a.Cfg.APIRateLimit), a.Cfg.APIRateBurst, a.DB, a.Log),
		Ledger:  s.Ledger, Location: a.Cfg.BillingTimezone, ReadConcurrency: s.Budget.APIReads,
		Facts: s.ReadFacts, Consents: s.Consents}
	a.API = h
	a.onShutdown(h.Close) // the fast-read leaders
	h.Routes(a.Fiber)
	a.bearer = h.Bearer
	for _, r := range providerapi.PublicRoutes {
		a.Access.Public(r[0], r[1])
	}
	// Every documented /api/v1 and /oauth route refuses query parameters
	// its OpenAPI operation does not list (behind the guard).
	a.Access.After(providerapi.QueryStep)

	pages := &portal.APIPages{View: a.View, Webhooks: s.Webhooks, Billing: s.Billing, Location: a.Cfg.BillingTimezone}
	pages.Routes(a.surface("/portal"))
	for _, item := range portal.APINav() {
		a.View.AddNav("Partner portal", item)
	}
	// The developer page states the limits this handler applies (read at
	// each request, so a test's or an operator's configuration shows).
	dev := &portal.DeveloperPage{View: a.View, Onboarding: s.Onboarding, BaseURL: a.Cfg.PublicURL,
		Limits:  func() portal.APILimits { return portal.APILimits(h.Limits()) },
		Example: providerapi.ExampleSource, Changelog: providerapi.ChangelogHTML()}
	dev.Routes(a.surface("/portal"))
	a.View.AddNav("Partner portal", portal.DeveloperNav())
	staffPages := &admin.DeliveryHandlers{View: a.View, Onboarding: s.Onboarding, Webhooks: s.Webhooks, Billing: s.Billing,
		Location: a.Cfg.BillingTimezone}
	staffPages.Routes(a.surface("/admin"))
	a.View.AddNav("Partners", admin.DeliveryNav())

	return nil
}
