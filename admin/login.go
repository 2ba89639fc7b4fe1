package admin

import (
	"github.com/gofiber/fiber/v2"

	"cardata/policies"
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
	email, password := c.FormValue("email"), c.FormValue("password")
	u, err := h.Staff.Authenticate(c.UserContext(), email, password, policies.RequestFrom(c.UserContext()).ClientAddr)
	if err != nil {
		return h.View.SignInFailed(c, err, "admin/login", "Sign in")
	}
	token, _, err := h.Sessions.Create(c.UserContext(), policies.KindStaff, u.ID, policies.RequestFrom(c.UserContext()).ClientAddr, c.Get(fiber.HeaderUserAgent))
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(safeNext(c.FormValue("next")), fiber.StatusSeeOther)
}

func (h *Handlers) logout(c *fiber.Ctx) error {
	if tok := c.Cookies("cardata_session"); tok != "" {
		if err := h.Sessions.Delete(c.UserContext(), tok); err != nil {
			return err
		}
	}
	h.EndSession(c)
	templates.SetFlash(c, "info", "You have signed out.")
	return c.Redirect("/admin/login", fiber.StatusSeeOther)
}
