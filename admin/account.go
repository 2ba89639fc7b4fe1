package admin

import (
	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"cardata/admin/secondfactor"
	"cardata/admin/staff"
	"cardata/policies"
	"cardata/templates"
)

func (h *Handlers) account(c *fiber.Ctx) error {
	return h.renderAccount(c, fiber.StatusOK, nil)
}

func (h *Handlers) renderAccount(c *fiber.Ctx, status int, fieldErrs map[string]string) error {
	p := policies.PrincipalFrom(c.UserContext())
	u, err := h.Staff.FindByID(c.UserContext(), p.ID)
	if err != nil {
		return err
	}
	// The second factor serves local sign-ins, so it is offered where the
	// password form is.
	sec, err := h.account2FA().Section(c, factorOf(u), h.Factors != nil && !h.LocalSignInOff, h.totpRequired(u))
	if err != nil {
		return err
	}
	return h.View.Render(c, status, "admin/account", &templates.Page{Errors: fieldErrs, Data: struct {
		User *staff.User
		secondfactor.Section
	}{u, sec}})
}

func (h *Handlers) changePassword(c *fiber.Ctx) error {
	p := policies.PrincipalFrom(c.UserContext())
	u, err := h.Staff.FindByID(c.UserContext(), p.ID)
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(c.FormValue("current"))) != nil {
		return h.renderAccount(c, fiber.StatusUnprocessableEntity, map[string]string{"current": "the current password is wrong"})
	}
	if err := h.Staff.SetPassword(c.UserContext(), u.ID, c.FormValue("password")); err != nil {
		if invalid(err) {
			return h.renderAccount(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err))
		}
		return err
	}
	h.EndSession(c)
	templates.SetFlash(c, "success", "Password changed. Please sign in with the new password.")
	return c.Redirect("/admin/login", fiber.StatusSeeOther)
}
