package admin

import (
	"github.com/gofiber/fiber/v2"

	"cardata/admin/staff"
	"cardata/policies"
	"cardata/policies/session"
	"cardata/templates"
)

// safeNext keeps post-login redirects on this site's staff area.
func safeNext(next string) string { return templates.SafeNext(next, "/admin", "/admin/login") }

func (h *Handlers) loginForm(c *fiber.Ctx) error {
	if p := policies.PrincipalFrom(c.UserContext()); p != nil && p.Kind == policies.KindStaff {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	return h.View.Render(c, fiber.StatusOK, "admin/login", &templates.Page{Form: map[string]string{"next": c.Query("next")}})
}

func (h *Handlers) login(c *fiber.Ctx) error {
	if h.LocalSignInOff {
		return h.View.Render(c, fiber.StatusForbidden, "admin/login", &templates.Page{Title: "Sign in",
			Flash: &templates.Flash{Kind: "error", Message: ErrLocalSignInOff.Message}})
	}
	email, password := c.FormValue("email"), c.FormValue("password")
	addr := policies.RequestFrom(c.UserContext()).ClientAddr
	u, err := h.Staff.Authenticate(c.UserContext(), email, password, addr)
	if err != nil {
		return h.View.SignInFailed(c, err, "admin/login", "Sign in")
	}
	// An authenticator app set up, or required by the role: the password
	// opens only the second step (second_factor.go).
	step, err := h.secondStep(c, u)
	if err != nil {
		return err
	}
	if step != "" {
		token, _, err := h.Sessions.CreatePending(c.UserContext(), policies.KindStaff, u.ID, addr, c.Get(fiber.HeaderUserAgent), step)
		if err != nil {
			return err
		}
		h.StartSession(c, token)
		path := codePath
		if step == session.PendingEnrol {
			path = enrolPath
		}
		return c.Redirect(withNext(path, c.FormValue("next")), fiber.StatusSeeOther)
	}
	token, _, err := h.Sessions.Create(c.UserContext(), policies.KindStaff, u.ID, addr, c.Get(fiber.HeaderUserAgent))
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(safeNext(c.FormValue("next")), fiber.StatusSeeOther)
}

func (h *Handlers) logout(c *fiber.Ctx) error {
	// A session from the identity provider ends there too.
	return h.OIDC.SignOut(c, h.Sessions, h.EndSession, "/admin/login")
}

// oidcLogin sends the browser to the company's identity provider.
func (h *Handlers) oidcLogin(c *fiber.Ctx) error {
	return h.OIDC.Begin(c, safeNext(c.Query("next")))
}

// oidcCallback is where the provider sends the browser back: the identity
// is verified (policies/identity), its groups give the roles, and the
// session is the same as a password sign-in's.
func (h *Handlers) oidcCallback(c *fiber.Ctx) error {
	id, err := h.OIDC.Finish(c)
	if err != nil {
		return h.OIDC.Refused(h.View, c, err)
	}
	groups := id.Strings(h.RoleClaim)
	email, verified := id.Email, id.EmailVerified
	if email == "" { // Entra ID without the optional email claim: the UPN, unvouched
		email, _ = id.Claims["preferred_username"].(string)
		verified = false
	}
	u, err := h.Staff.SignInExternal(c.UserContext(), staff.ExternalSignIn{Issuer: id.Issuer, Subject: id.Subject,
		Email: email, EmailVerified: verified, Name: id.Name, Groups: groups, Roles: staff.MapRoles(h.RoleMap, groups)})
	if err != nil {
		return h.OIDC.Refused(h.View, c, err)
	}
	addr := policies.RequestFrom(c.UserContext()).ClientAddr
	token, _, err := h.Sessions.CreateVia(c.UserContext(), policies.KindStaff, u.ID, addr, c.Get(fiber.HeaderUserAgent), id.Provider, id.Subject)
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(safeNext(id.Next), fiber.StatusSeeOther)
}
