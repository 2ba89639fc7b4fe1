// Package portal is the provider-facing web surface: the partner portal at
// /portal for provider users (their application, users, API clients and
// markets), the public registration at /register, and the public
// registration and market API. Every page acts for the signed-in user's own
// provider only: the provider id comes from the session, never from the URL.
package portal

import (
	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/app/web"
	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/policies/totp"
	"cardata/templates"
)

// Handlers holds what the portal pages need.
type Handlers struct {
	View       *templates.View
	Onboarding *onboarding.Service
	Sessions   *session.Store
	// StartSession and EndSession set and clear the session cookie (app/web owns cookies).
	StartSession func(c *fiber.Ctx, token string)
	EndSession   func(c *fiber.Ctx)
	// Company holds the cookie settings of the company sign-in (Secure,
	// Domain); its relying party is each provider's own.
	Company templates.OIDCSignIn
	// Factors are the local accounts' authenticator apps (TOTP) and
	// recovery codes (second_factor.go).
	Factors *totp.Store
	// Billing, Support and Webhooks give the home's figures (dashboard.go);
	// nil ones leave the figures out.
	Billing  *billing.Service
	Support  *support.Service
	Webhooks *webhooks.Service
}

// Routes mounts the partner portal on r (the /portal group).
func (h *Handlers) Routes(r fiber.Router) {
	r.Get("/login", h.loginForm)
	r.Post("/login", h.login)
	r.Post("/logout", h.logout)
	r.Get("/login/code", h.codeForm)
	r.Post("/login/code", h.code)
	r.Get("/account", h.account)
	h.account2FA().Routes(r, "/account")
	r.Post("/oidc/login", h.companyLogin)
	r.Get("/oidc/callback", h.companyCallback)
	r.Get("/invitations/:token", h.invitation)
	r.Post("/invitations/:token", h.acceptInvitation)
	r.Get("", h.home)
	r.Get("/application", h.home)
	r.Post("/application/answer", h.answer)
	r.Post("/application/documents", h.uploadDocuments)
	r.Get("/users", h.users)
	r.Post("/users", h.invite)
	r.Post("/users/:id/active", h.View.Confirm(h.confirmUserActive), h.setUserActive)
	r.Get("/clients", h.clients)
	r.Post("/clients", h.createClient)
	r.Post("/clients/:id/rotate", h.View.Confirm(h.confirmRotateClient), h.rotateClient)
	r.Post("/clients/:id/revoke", h.View.Confirm(h.confirmRevokeClient), h.revokeClient)
	r.Get("/markets", h.markets)
	r.Post("/markets", h.requestMarkets)
	r.Get("/company-sign-in", h.signInSettings)
	r.Post("/company-sign-in", h.saveSignInSettings)
	r.Post("/company-sign-in/enable", h.enableSignIn)
	r.Post("/company-sign-in/disable", h.View.Confirm(h.confirmDisableSignIn), h.disableSignIn)
	r.Post("/company-sign-in/remove", h.View.Confirm(h.confirmRemoveSignIn), h.removeSignIn)
}

// PublicRoutes are the portal routes anyone may call (method, path as registered).
var PublicRoutes = [][2]string{
	{fiber.MethodGet, "/portal/login"}, {fiber.MethodPost, "/portal/login"},
	{fiber.MethodPost, "/portal/oidc/login"}, {fiber.MethodGet, "/portal/oidc/callback"},
	{fiber.MethodGet, "/portal/invitations/:token"}, {fiber.MethodPost, "/portal/invitations/:token"},
	{fiber.MethodGet, "/register"}, {fiber.MethodPost, "/register"}, {fiber.MethodGet, "/register/terms"},
}

// Nav is the portal navigation (shown to the provider roles allowed to GET each path).
func Nav() []templates.NavItem {
	return []templates.NavItem{
		{Label: "Application", Path: "/portal/application"},
		{Label: "Users", Path: "/portal/users"},
		{Label: "API clients", Path: "/portal/clients"},
		{Label: "Markets", Path: "/portal/markets"},
		{Label: "Company sign-in", Path: "/portal/company-sign-in"},
		{Label: "My account", Path: "/portal/account"},
	}
}

// HomeNav is the portal home's entry, the first of the section.
func HomeNav() templates.NavItem { return templates.NavItem{Label: "Overview", Path: "/portal"} }

// me returns the signed-in provider user; the guard has checked the role.
func me(c *fiber.Ctx) (*policies.Principal, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindProvider || p.ProviderID == 0 {
		return nil, errs.New(errs.Forbidden, "provider_only", "the partner portal is for provider users")
	}
	return p, nil
}

func invalid(err error) bool { return errs.KindOf(err) == errs.Invalid }

// safeNext keeps post-login redirects inside the portal.
func safeNext(next string) string {
	return templates.SafeNext(next, "/portal", "/portal/login", "/portal/invitations")
}

func (h *Handlers) loginForm(c *fiber.Ctx) error {
	if p := policies.PrincipalFrom(c.UserContext()); p != nil && p.Kind == policies.KindProvider {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	page := &templates.Page{Title: "Partner portal sign-in", Form: map[string]string{"next": c.Query("next")}}
	if c.Query("company") == "unavailable" {
		// Where a company sign-in could not start: no provider allows the
		// address, or its identity provider cannot be reached (one answer).
		page.Flash = &templates.Flash{Kind: "info", Message: "Signing in with a company account is not possible for this address at the moment. Sign in with your password, or ask your company's CarData administrator."}
	}
	return h.View.Render(c, fiber.StatusOK, "portal/login", page)
}

func (h *Handlers) login(c *fiber.Ctx) error {
	email := c.FormValue("email")
	u, err := h.Onboarding.Authenticate(c.UserContext(), email, c.FormValue("password"), web.ClientAddr(c))
	if err != nil {
		return h.View.SignInFailed(c, err, "portal/login", "Partner portal sign-in")
	}
	return h.passwordSignIn(c, u, safeNext(c.FormValue("next")))
}

func (h *Handlers) startSession(c *fiber.Ctx, u *onboarding.ProviderUser, next string) error {
	token, _, err := h.Sessions.Create(c.UserContext(), policies.KindProvider, u.ID, web.ClientAddr(c), c.Get(fiber.HeaderUserAgent))
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(next, fiber.StatusSeeOther)
}

func (h *Handlers) logout(c *fiber.Ctx) error {
	if tok := c.Cookies("cardata_session"); tok != "" {
		if err := h.Sessions.Delete(c.UserContext(), tok); err != nil {
			return err
		}
	}
	h.EndSession(c)
	templates.SetFlash(c, "info", "You have signed out.")
	return c.Redirect("/portal/login", fiber.StatusSeeOther)
}

func (h *Handlers) invitation(c *fiber.Ctx) error {
	u, err := h.Onboarding.FindInvitation(c.UserContext(), c.Params("token"))
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "portal/invitation", &templates.Page{Title: "Set your password", Data: u})
}

func (h *Handlers) acceptInvitation(c *fiber.Ctx) error {
	token := c.Params("token")
	pw := c.FormValue("password")
	if pw != c.FormValue("password_confirm") {
		u, err := h.Onboarding.FindInvitation(c.UserContext(), token)
		if err != nil {
			return err
		}
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "portal/invitation", &templates.Page{Title: "Set your password", Data: u,
			Errors: map[string]string{"password_confirm": "the two passwords differ"}})
	}
	u, err := h.Onboarding.AcceptInvitation(c.UserContext(), token, pw)
	if invalid(err) {
		cur, ferr := h.Onboarding.FindInvitation(c.UserContext(), token)
		if ferr != nil {
			return ferr
		}
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "portal/invitation", &templates.Page{Title: "Set your password", Data: cur,
			Errors: templates.FieldErrors(c, err)})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Your password is set. Welcome to the CarData partner portal.")
	return h.startSession(c, u, "/portal")
}
