package app

import (
	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/app/customer"
	"cardata/app/portal"
	"cardata/app/web"
)

// mountConsent mounts data containers (portal, staff review, provider
// API), the customer portal /my with its reports, the staff's customer
// requests.
func (a *App) mountConsent() error {
	cs, ct := a.Consents, a.Containers
	// Partner portal and provider API: the provider's own containers and consents.
	ph := &portal.ContainerHandlers{View: a.View, Containers: ct, Consents: cs, Catalog: a.Catalog}
	ph.Routes(a.surface("/portal"))
	ph.APIRoutes(a.Fiber)
	a.View.AddNav("Partner portal", portal.ContainerNav())

	// Staff: container review, customer requests.
	staffGroup := a.surface("/admin")
	(&admin.ContainerHandlers{View: a.View, Containers: ct}).Routes(staffGroup)
	(&admin.CustomerHandlers{View: a.View, Consents: cs, Location: a.Cfg.BillingTimezone}).Routes(staffGroup)
	a.View.AddNav("Partners", admin.ContainerNav())
	a.View.AddNav("Customers", admin.CustomerNav())

	// Customer portal.
	ch := &customer.Handlers{View: a.View, Consents: cs, Sessions: a.Sessions, Location: a.Cfg.BillingTimezone,
		StartSession: func(c *fiber.Ctx, token string) { web.SetSessionCookie(c, a.Cookies, token, a.Cfg.SessionMaxAge) },
		EndSession:   func(c *fiber.Ctx) { web.ClearSessionCookie(c, a.Cookies) },
	}
	var err error
	if ch.OIDC, err = a.signInWith("customer", a.Cfg.CustomerOIDC, "/my", "my/login", "Sign in to My CarData", "Sign in with your BMW or MINI account"); err != nil {
		return err
	}
	// Local customer passwords stay for the demo: where a real customer
	// identity is configured, it is the only way in.
	ch.NoPasswords = a.Cfg.CustomerOIDC.Enabled() && !a.Cfg.DevIdP
	if ch.NoPasswords {
		offer := a.View.SignInWith["my/login"]
		offer.NoPasswords = true
		a.View.SignInWith["my/login"] = offer
	}
	ch.Routes(a.surface("/my"))
	for _, r := range customer.PublicRoutes {
		a.Access.Public(r[0], r[1])
	}
	for _, item := range customer.Nav() {
		a.View.AddNav("My CarData", item)
	}

	return nil
}
