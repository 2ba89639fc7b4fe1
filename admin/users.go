package admin

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/staff"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/totp"
	"cardata/templates"
	"cardata/templates/i18n"
)

type userPage struct {
	Users    []staff.User
	User     *staff.User
	Roles    []string
	Selected []string
	Timeline []audit.Entry
	// Incompatible is the separation-of-duties table, shown as a hint
	// beside the roles so the refusal does not come as a surprise.
	Incompatible []policies.RolePair
	// Factor is the person's second factor (an administrator may remove
	// it for someone who lost their authenticator app and recovery codes).
	Factor totp.Status
}

func (h *Handlers) listUsers(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 25)
	f := staff.Filter{Query: c.Query("q"), Role: c.Query("role"), Offset: pager.Offset(), Limit: pager.PerPage,
		Order: staff.UserSort.Parse(c.Query("sort"), c.Query("dir"))}
	users, total, err := h.Staff.List(c.UserContext(), f)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "admin/users/index", &templates.Page{Pager: pager, Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Form: map[string]string{"q": f.Query, "role": f.Role},
		Data: userPage{Users: users, Roles: policies.StaffRoles}})
}

func (h *Handlers) newUser(c *fiber.Ctx) error {
	return h.View.Render(c, fiber.StatusOK, "admin/users/form", &templates.Page{Data: userPage{Roles: policies.StaffRoles, Incompatible: policies.IncompatibleRoles}})
}

func (h *Handlers) createUser(c *fiber.Ctx) error {
	in := staff.NewUser{Email: c.FormValue("email"), Name: c.FormValue("name"), Roles: formList(c, "roles"), Password: c.FormValue("password")}
	u, err := h.Staff.Create(c.UserContext(), in)
	if invalid(err) {
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "admin/users/form", &templates.Page{
			Errors: templates.FieldErrors(c, err), Form: formValues(c, "email", "name"),
			Data: userPage{Roles: policies.StaffRoles, Incompatible: policies.IncompatibleRoles, Selected: in.Roles}})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "{{.Email}} can now sign in.", "Email", u.Email))
	return c.Redirect("/admin/users/"+strconv.FormatInt(u.ID, 10), fiber.StatusSeeOther)
}

func (h *Handlers) showUser(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	u, err := h.Staff.FindByID(c.UserContext(), id)
	if err != nil {
		return err
	}
	return h.renderUser(c, fiber.StatusOK, u, nil, map[string]string{"name": u.Name, "active": strconv.FormatBool(u.Active)}, u.Roles)
}

func (h *Handlers) renderUser(c *fiber.Ctx, status int, u *staff.User, fieldErrs, form map[string]string, selected []string) error {
	timeline, err := audit.ForObject(c.UserContext(), h.DB, "staff_user", strconv.FormatInt(u.ID, 10))
	if err != nil {
		return err
	}
	var factor totp.Status
	if h.Factors != nil {
		if factor, err = h.Factors.Status(c.UserContext(), factorOf(u)); err != nil {
			return err
		}
	}
	return h.View.Render(c, status, "admin/users/form", &templates.Page{Errors: fieldErrs, Form: form,
		Data: userPage{User: u, Roles: policies.StaffRoles, Incompatible: policies.IncompatibleRoles, Selected: selected, Timeline: timeline, Factor: factor}})
}

// ErrOwnFactor sends an administrator to their own account page to remove
// their own authenticator app, which asks for a current code.
var ErrOwnFactor = errs.New(errs.Conflict, "own_second_factor", "remove your own authenticator app on your account page")

func (h *Handlers) confirmResetFactor(c *fiber.Ctx) (templates.Confirmation, error) {
	id, err := templates.PathID(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	u, err := h.Staff.FindByID(c.UserContext(), id)
	if err != nil {
		return templates.Confirmation{}, err
	}
	return templates.Confirmation{Title: "Remove the authenticator app of {{.Name}}?", Args: []any{"Name", u.Name},
		Effect: "Their recovery codes stop working too. Their next password sign-in asks for no code, or, where their role requires one, for setting up a new app. Do this only once you are sure who asked.",
		Yes:    "Remove the authenticator app", Back: "/admin/users/" + strconv.FormatInt(id, 10)}, nil
}

func (h *Handlers) resetFactor(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if p := policies.PrincipalFrom(c.UserContext()); p.ID == id {
		return ErrOwnFactor
	}
	u, err := h.Staff.FindByID(c.UserContext(), id)
	if err != nil {
		return err
	}
	if err := h.Factors.Reset(c.UserContext(), factorOf(u)); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "The authenticator app is removed.")
	return c.Redirect("/admin/users/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

func (h *Handlers) updateUser(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	in := staff.Update{Name: c.FormValue("name"), Roles: formList(c, "roles"), Active: c.FormValue("active") == "true"}
	u, err := h.Staff.UpdateUser(c.UserContext(), id, in)
	if invalid(err) {
		cur, ferr := h.Staff.FindByID(c.UserContext(), id)
		if ferr != nil {
			return ferr
		}
		return h.renderUser(c, fiber.StatusUnprocessableEntity, cur, templates.FieldErrors(c, err),
			map[string]string{"name": in.Name, "active": strconv.FormatBool(in.Active)}, in.Roles)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Saved. {{.Name}}'s open sessions were ended so the change applies at once.", "Name", u.Name))
	return c.Redirect("/admin/users/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}
