package app

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/app/portal"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/signin"
)

// newOnboardingService builds the onboarding domain service from the config.
// It holds no state of its own, so each surface may have its instance.
func (a *App) newOnboardingService() *onboarding.Service {
	return &onboarding.Service{DB: a.DB, BcryptCost: a.Cfg.BcryptCost, PublicURL: a.Cfg.PublicURL, Sessions: a.Sessions,
		Throttle: signin.Throttle{PerAccount: a.Cfg.LoginMaxFailuresPerAccount,
			PerAddress: a.Cfg.LoginMaxFailuresPerAddress, Window: a.Cfg.LoginThrottleWindow},
		RegistrationLimits: onboarding.RegistrationLimits{PerHour: a.Cfg.RegistrationRateLimit,
			DailyUploadBytes: a.Cfg.RegistrationDailyUploadBytes}}
}

// mountOnboarding mounts the partner managers' pages (review queue,
// providers, markets, coverage), the public registration and market API,
// and resolves portal sessions to provider principals.
func (a *App) mountOnboarding() error {
	svc := a.newOnboardingService()
	a.resolvers[policies.KindProvider] = svc.ResolvePrincipal
	// The vehicle registry is mounted later (mountIngest); look it up per call.
	svc.EligibleVehicles = func(ctx context.Context, market string) (int64, error) {
		if a.Vehicles == nil {
			return 0, nil
		}
		return a.Vehicles.CountEligible(ctx, market)
	}

	staffPages := &admin.ProviderHandlers{View: a.View, Onboarding: svc}
	staffPages.Routes(a.surface("/admin"))
	for _, item := range admin.ProviderNav() {
		a.View.AddNav("Partners", item)
	}

	api := &portal.Handlers{View: a.View, Onboarding: svc}
	a.Fiber.Post("/api/v1/registrations", api.RegistrationAPI)
	a.Fiber.Get("/api/v1/markets", api.MarketsAPI)
	a.Access.Public(fiber.MethodPost, "/api/v1/registrations")
	a.Access.Public(fiber.MethodGet, "/api/v1/markets")
	return nil
}
