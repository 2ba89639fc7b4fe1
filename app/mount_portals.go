package app

import (
	"github.com/gofiber/fiber/v2"

	"cardata/app/portal"
	"cardata/app/web"
	"cardata/templates"
)

// mountPortals mounts the partner portal (/portal) for provider users and
// the public company registration (/register).
func (a *App) mountPortals() error {
	h := &portal.Handlers{View: a.View, Onboarding: a.Onboarding, Sessions: a.Sessions,
		StartSession: func(c *fiber.Ctx, token string) { web.SetSessionCookie(c, a.Cookies, token, a.Cfg.SessionMaxAge) },
		EndSession:   func(c *fiber.Ctx) { web.ClearSessionCookie(c, a.Cookies) },
		Company:      templates.OIDCSignIn{Secure: a.Cookies.Secure, Domain: a.Cookies.Domain},
		Factors:      a.SecondFactors,
		Billing:      a.Billing, Support: a.Support, Webhooks: a.Webhooks,
	}
	h.Routes(a.surface("/portal"))
	h.RegisterRoutes(a.Fiber.Group("/register"))
	for _, r := range append(portal.PublicRoutes, portal.SecondStepRoutes...) {
		a.Access.Public(r[0], r[1])
	}
	for _, item := range portal.Nav() {
		a.View.AddNav("Partner portal", item)
	}
	a.View.AddNavFirst("Partner portal", portal.HomeNav())
	return nil
}
