package admin

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
)

// safeNext keeps post-login redirects on this site's staff area.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, "/admin") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(u.Path, "/admin/login") {
		return "/admin"
	}
	return u.RequestURI()
}

func (h *Handlers) loginForm(c *fiber.Ctx) error {
	if p := policies.PrincipalFrom(c.UserContext()); p != nil && p.Kind == policies.KindStaff {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	return h.View.Render(c, fiber.StatusOK, "admin/login", &templates.Page{Form: map[string]string{"next": c.Query("next")}})
}

func (h *Handlers) login(c *fiber.Ctx) error {
	email, password := c.FormValue("email"), c.FormValue("password")
	u, err := h.Staff.Authenticate(c.UserContext(), email, password, c.IP())
	if err != nil {
		e := errs.As(err)
		if e.Kind == errs.Internal {
			return err
		}
		status := fiber.StatusUnauthorized
		if e.Kind == errs.TooMany {
			status = fiber.StatusTooManyRequests
			c.Set(fiber.HeaderRetryAfter, "300")
		}
		return h.View.Render(c, status, "admin/login", &templates.Page{
			Errors: map[string]string{"password": e.Message},
			Form:   map[string]string{"email": email, "next": c.FormValue("next")},
		})
	}
	token, _, err := h.Sessions.Create(c.UserContext(), policies.KindStaff, u.ID, c.IP(), c.Get(fiber.HeaderUserAgent))
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
