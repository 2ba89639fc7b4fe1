package portal

import (
	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/templates"
	"cardata/templates/i18n"
)

type usersPage struct {
	Users []onboarding.ProviderUser
	Roles []roleOption
	MeID  int64
}

type roleOption struct{ Value, Label string }

func roleOptions() []roleOption {
	out := make([]roleOption, len(onboarding.ProviderRoles))
	for i, r := range onboarding.ProviderRoles {
		out[i] = roleOption{r, onboarding.RoleLabel(r)}
	}
	return out
}

func (h *Handlers) users(c *fiber.Ctx) error { return h.renderUsers(c, fiber.StatusOK, nil, nil) }

func (h *Handlers) renderUsers(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	users, err := h.Onboarding.FindProviderUsers(c.UserContext(), me.ProviderID)
	if err != nil {
		return err
	}
	return h.View.Render(c, status, "portal/users", &templates.Page{Title: "Users", Errors: fieldErrs, Form: form,
		Data: usersPage{Users: users, Roles: roleOptions(), MeID: me.ID}})
}

func (h *Handlers) invite(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	in := onboarding.Invite{Email: c.FormValue("email"), Name: c.FormValue("name"), Role: c.FormValue("role")}
	inv, err := h.Onboarding.InviteProviderUser(c.UserContext(), me.ProviderID, in)
	if invalid(err) {
		return h.renderUsers(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err),
			map[string]string{"email": in.Email, "name": in.Name, "role": in.Role})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Invitation sent to {{.Email}}. The link lets them set a password.", "Email", inv.User.Email))
	return c.Redirect("/portal/users", fiber.StatusSeeOther)
}

func (h *Handlers) setUserActive(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	active := c.FormValue("active") == "true"
	if err := h.Onboarding.SetProviderUserActive(c.UserContext(), me.ProviderID, id, active); err != nil {
		return err
	}
	templates.SetFlash(c, "success", map[bool]string{true: "User reactivated.", false: "User deactivated; their sessions have ended."}[active])
	return c.Redirect("/portal/users", fiber.StatusSeeOther)
}
