// Package admin is the staff web surface: thin handlers, one file per
// resource, all routes in Routes. Each handler decodes, calls one service
// method, and renders or redirects. Authorization happens once per route in
// the casbin guard (policies/rules); handlers only shape what is shown.
package admin

import (
	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"cardata/admin/staff"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/policies/totp"
	"cardata/templates"
)

// Handlers holds what the staff pages need.
type Handlers struct {
	DB       *gorm.DB
	View     *templates.View
	Staff    *staff.Service
	Sessions *session.Store
	// StartSession and EndSession set and clear the session cookie (app/web owns cookies).
	StartSession func(c *fiber.Ctx, token string)
	EndSession   func(c *fiber.Ctx)
	// Widgets adds module tiles to the dashboard (wired by app).
	Widgets []Widget
	// OIDC signs staff in through the company's identity provider
	// (STAFF_OIDC_*); nil when none is configured.
	OIDC *templates.OIDCSignIn
	// RoleClaim and RoleMap turn the provider's groups into cardata roles.
	RoleClaim string
	RoleMap   map[string][]string
	// Factors are the local accounts' authenticator apps (TOTP) and
	// recovery codes; TOTPRequiredRoles the roles that must have one
	// (STAFF_TOTP_REQUIRED_ROLES).
	Factors           *totp.Store
	TOTPRequiredRoles []string
	// LocalSignInOff refuses staff password sign-ins (LOCAL_STAFF_SIGNIN=off).
	LocalSignInOff bool
}

// Routes mounts the staff pages on r (the /admin group).
func (h *Handlers) Routes(r fiber.Router) {
	r.Get("/login", h.loginForm)
	r.Post("/login", h.login)
	r.Post("/logout", h.logout)
	r.Get("/oidc/login", h.oidcLogin)
	r.Get("/oidc/callback", h.oidcCallback)
	r.Get("", h.dashboard)
	r.Get("/account", h.account)
	r.Post("/account/password", h.changePassword)
	r.Get("/login/code", h.codeForm)
	r.Post("/login/code", h.code)
	r.Get("/login/enrol", h.enrolForm)
	r.Post("/login/enrol", h.enrol)
	h.account2FA().Routes(r, "/account")
	r.Get("/users", h.listUsers)
	r.Get("/users/new", h.newUser)
	r.Post("/users", h.createUser)
	r.Get("/users/:id", h.showUser)
	r.Post("/users/:id", h.updateUser)
	r.Post("/users/:id/second-factor/reset", h.View.Confirm(h.confirmResetFactor), h.resetFactor)
	r.Get("/audit", h.listAudit)
	r.Get("/audit/export.csv", h.exportAudit)
}

// Nav is the staff navigation; entries show only to roles allowed to GET them.
func Nav() []templates.NavSection {
	return []templates.NavSection{
		{Title: "Overview", Items: []templates.NavItem{{Label: "Dashboard", Path: "/admin"}}},
		{Title: "System", Items: []templates.NavItem{
			{Label: "Staff users", Path: "/admin/users"},
			{Label: "Audit trail", Path: "/admin/audit"},
		}},
	}
}

// formValues copies the named form fields for re-rendering.
func formValues(c *fiber.Ctx, names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = c.FormValue(n)
	}
	return m
}

// formList reads a repeated form field (checkboxes).
func formList(c *fiber.Ctx, name string) []string {
	var out []string
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		if string(k) == name {
			out = append(out, string(v))
		}
	})
	if mf, err := c.MultipartForm(); err == nil && mf != nil {
		out = append(out, mf.Value[name]...)
	}
	return out
}

// invalid reports whether err is a validation error to show on the form.
func invalid(err error) bool { return errs.KindOf(err) == errs.Invalid }
