package app

import (
	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/app/portal"
)

// mountOnboarding mounts the partner managers' pages (review queue,
// providers, markets, coverage) and the public registration and market API.
func (a *App) mountOnboarding() error {
	staffPages := &admin.ProviderHandlers{View: a.View, Onboarding: a.Onboarding, Sandbox: a.Billing.SandboxActivityOf}
	staffPages.Routes(a.surface("/admin"))
	for _, item := range admin.ProviderNav() {
		a.View.AddNav("Partners", item)
	}
	a.addWidgets(admin.PartnerWidgets(a.Onboarding, a.Containers, a.Cfg.BillingTimezone)...)

	api := &portal.Handlers{View: a.View, Onboarding: a.Onboarding}
	a.Fiber.Post("/api/v1/registrations", api.RegistrationAPI)
	a.Fiber.Get("/api/v1/markets", api.MarketsAPI)
	a.Access.Public(fiber.MethodPost, "/api/v1/registrations")
	a.Access.Public(fiber.MethodGet, "/api/v1/markets")
	return nil
}
