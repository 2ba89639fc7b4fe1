package portal

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/containers"
	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// ContainerHandlers are the provider's data containers: the portal pages
// (/portal/containers) and the provider API endpoints for containers,
// consent requests and consents (/api/v1, containers_api.go). Every call
// acts for the caller's own provider, taken from the principal.
type ContainerHandlers struct {
	View       *templates.View
	Containers *containers.Service
	Consents   *consent.Service
	Catalog    *catalog.Catalog
}

// Routes mounts the portal pages on r (the /portal group).
func (h *ContainerHandlers) Routes(r fiber.Router) {
	r.Get("/containers", h.list)
	r.Get("/containers/new", h.newForm)
	r.Post("/containers", h.create)
	r.Get("/containers/:id", h.show)
	r.Get("/containers/:id/versions/new", h.newVersionForm)
	r.Post("/containers/:id/versions", h.createVersion)
	r.Get("/containers/:id/versions/:version/edit", h.editForm)
	r.Post("/containers/:id/versions/:version", h.update)
	r.Post("/containers/:id/versions/:version/:action", h.View.Confirm(h.confirmAct), h.act)
}

// ContainerNav is the portal navigation entry.
func ContainerNav() templates.NavItem {
	return templates.NavItem{Label: "Data containers", Path: "/portal/containers"}
}

type containerListPage struct {
	Containers []containers.Container
	Live       int64
	Max        int
}

func (h *ContainerHandlers) list(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	list, err := h.Containers.FindProviderContainers(c.UserContext(), me.ProviderID)
	if err != nil {
		return err
	}
	live, err := h.Containers.LiveCount(c.UserContext(), me.ProviderID)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "portal/containers/index", &templates.Page{Title: "Data containers",
		Data: containerListPage{Containers: list, Live: live, Max: containers.MaxLiveContainers}})
}

// containerKeyGroup is one catalog category on the form.
type containerKeyGroup struct {
	Category string
	Keys     []catalog.Key
}

type containerFormPage struct {
	Action      string // form action
	Heading     string // a catalog id; {{.Name}} is HeadingName
	HeadingName string
	Container   *containers.Container
	Version     *containers.Version
	Purposes    []consent.Purpose
	Groups      []containerKeyGroup
	Selected    map[string]bool
	Draft       bool // offer "save as draft"
}

func (h *ContainerHandlers) groups() []containerKeyGroup {
	cat := h.Catalog
	if cat == nil {
		cat = catalog.Default()
	}
	var out []containerKeyGroup
	for _, name := range catalog.Categories {
		g := containerKeyGroup{Category: name}
		for _, k := range cat.Keys() {
			if k.Category == name {
				g.Keys = append(g.Keys, k)
			}
		}
		out = append(out, g)
	}
	return out
}

// containerInput reads the form; the key checkboxes are technicalDescriptors.
func containerInput(c *fiber.Ctx) (containers.Input, map[string]string, map[string]bool) {
	var keys []string
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		if string(k) == "technicalDescriptors" {
			keys = append(keys, string(v))
		}
	})
	// A pasted list (one key per line) is accepted too.
	for _, line := range strings.FieldsFunc(c.FormValue("keys_text"), func(r rune) bool { return r == '\n' || r == ',' || r == '\r' }) {
		if k := strings.TrimSpace(line); k != "" {
			keys = append(keys, k)
		}
	}
	in := containers.Input{Name: c.FormValue("name"), Purpose: c.FormValue("purpose"), PurposeCode: c.FormValue("purposeCode"),
		Keys: keys, Submit: c.FormValue("intent") != "draft"}
	form := map[string]string{"name": in.Name, "purpose": in.Purpose, "purposeCode": in.PurposeCode, "keys_text": c.FormValue("keys_text")}
	selected := map[string]bool{}
	for _, k := range keys {
		selected[k] = true
	}
	return in, form, selected
}

func (h *ContainerHandlers) renderForm(c *fiber.Ctx, status int, p containerFormPage, fieldErrs, form map[string]string) error {
	p.Purposes, p.Groups = consent.Purposes, h.groups()
	if p.Selected == nil {
		p.Selected = map[string]bool{}
	}
	return h.View.Render(c, status, "portal/containers/form", &templates.Page{Title: p.Heading, Errors: fieldErrs, Form: form, Data: p})
}

// containerEditor refuses the forms to roles that may only read
// containers: the policy's read line (/portal/containers/:id) also matches
// "new" and cannot tell the two apart.
func containerEditor(c *fiber.Ctx) error {
	p, err := me(c)
	if err != nil {
		return err
	}
	if !p.HasRole(onboarding.RoleProviderAdmin) && !p.HasRole(onboarding.RoleProviderDeveloper) {
		return errs.New(errs.Forbidden, "container_editor_required", "only administrators and developers change data containers")
	}
	return nil
}

func (h *ContainerHandlers) newForm(c *fiber.Ctx) error {
	if err := containerEditor(c); err != nil {
		return err
	}
	return h.renderForm(c, fiber.StatusOK, containerFormPage{Action: "/portal/containers", Heading: "New data container", Draft: true}, nil, nil)
}

// formError re-renders the form on validation errors and on the domain's
// conflicts the provider can act on (limit, names, state).
func containerFormError(c *fiber.Ctx, err error) (map[string]string, bool) {
	switch errs.KindOf(err) {
	case errs.Invalid:
		return templates.FieldErrors(c, err), true
	case errs.Conflict:
		return map[string]string{"form": templates.ErrorText(c, err)}, true
	}
	return nil, false
}

func containerFormStatus(err error) int {
	if errs.KindOf(err) == errs.Conflict {
		return fiber.StatusConflict
	}
	return fiber.StatusUnprocessableEntity
}

func (h *ContainerHandlers) create(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	in, form, selected := containerInput(c)
	v, err := h.Containers.Create(c.UserContext(), me.ProviderID, in)
	if fe, ok := containerFormError(c, err); ok {
		return h.renderForm(c, containerFormStatus(err), containerFormPage{Action: "/portal/containers", Heading: "New data container",
			Draft: true, Selected: selected}, fe, form)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", containerSubmittedMessage(v))
	return c.Redirect("/portal/containers/"+strconv.FormatInt(v.ContainerID, 10), fiber.StatusSeeOther)
}

func containerSubmittedMessage(v *containers.Version) string {
	if v.State == containers.Submitted {
		msg := "Submitted for review. A partner manager will check it"
		if v.ApprovalsRequired > 1 {
			msg += "; it has sensitive keys, so two partner managers must approve"
		}
		return msg + "."
	}
	return "Saved as draft. Submit it for review when it is complete."
}

// containerOf loads the caller's container from the path.
func (h *ContainerHandlers) containerOf(c *fiber.Ctx) (*containers.Container, error) {
	me, err := me(c)
	if err != nil {
		return nil, err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return nil, err
	}
	return h.Containers.FindContainer(c.UserContext(), me.ProviderID, id)
}

// containerVersionOf loads the caller's container from the path and picks
// the version the path names.
func (h *ContainerHandlers) containerVersionOf(c *fiber.Ctx) (*containers.Container, *containers.Version, error) {
	ct, err := h.containerOf(c)
	if err != nil {
		return nil, nil, err
	}
	n, err := strconv.Atoi(c.Params("version"))
	if err == nil {
		for i := range ct.Versions {
			if ct.Versions[i].Version == n {
				return ct, &ct.Versions[i], nil
			}
		}
	}
	return nil, nil, containers.ErrNotFound
}

type containerShowPage struct {
	Container *containers.Container
	Current   *containers.Version
}

func (h *ContainerHandlers) show(c *fiber.Ctx) error {
	ct, err := h.containerOf(c)
	if err != nil {
		return err
	}
	return h.renderShow(c, fiber.StatusOK, ct, nil, nil)
}

func (h *ContainerHandlers) renderShow(c *fiber.Ctx, status int, ct *containers.Container, fieldErrs, form map[string]string) error {
	return h.View.Render(c, status, "portal/containers/show", &templates.Page{Title: ct.Current().Name, Errors: fieldErrs, Form: form,
		Data: containerShowPage{Container: ct, Current: ct.Current()}})
}

func containerSelected(v *containers.Version) map[string]bool {
	m := map[string]bool{}
	for _, k := range v.Keys {
		m[k.Name] = true
	}
	return m
}

func containerVersionForm(v *containers.Version) map[string]string {
	return map[string]string{"name": v.Name, "purpose": v.Purpose, "purposeCode": v.PurposeCode}
}

func (h *ContainerHandlers) newVersionForm(c *fiber.Ctx) error {
	ct, err := h.containerOf(c)
	if err != nil {
		return err
	}
	if !ct.CanAddVersion() {
		return errs.New(errs.Conflict, "version_open", "this container cannot get a new version now (a version is open, or it is withdrawn)")
	}
	cur := ct.Current()
	return h.renderForm(c, fiber.StatusOK, containerFormPage{Action: "/portal/containers/" + strconv.FormatInt(ct.ID, 10) + "/versions",
		Heading: "New version of {{.Name}}", HeadingName: cur.Name, Container: ct, Draft: true, Selected: containerSelected(cur)}, nil, containerVersionForm(cur))
}

func (h *ContainerHandlers) createVersion(c *fiber.Ctx) error {
	ct, err := h.containerOf(c)
	if err != nil {
		return err
	}
	in, form, selected := containerInput(c)
	v, err := h.Containers.NewVersion(c.UserContext(), ct.ProviderID, ct.ID, in)
	if fe, ok := containerFormError(c, err); ok {
		return h.renderForm(c, containerFormStatus(err), containerFormPage{Action: "/portal/containers/" + strconv.FormatInt(ct.ID, 10) + "/versions",
			Heading: "New version of {{.Name}}", HeadingName: ct.Current().Name, Container: ct, Draft: true, Selected: selected}, fe, form)
	}
	if err != nil {
		return err
	}
	lang := templates.LangOf(c)
	templates.SetFlash(c, "success", i18n.T(lang, "Version {{.Version}}: {{.Message}}", "Version", v.Version, "Message", i18n.T(lang, containerSubmittedMessage(v))))
	return c.Redirect("/portal/containers/"+strconv.FormatInt(ct.ID, 10), fiber.StatusSeeOther)
}

func (h *ContainerHandlers) editForm(c *fiber.Ctx) error {
	ct, v, err := h.containerVersionOf(c)
	if err != nil {
		return err
	}
	if v.State != containers.Draft {
		return errs.New(errs.Conflict, "container_not_draft", "only a draft can be changed; an approved container changes by a new version")
	}
	return h.renderForm(c, fiber.StatusOK, containerFormPage{Action: c.Path()[:len(c.Path())-len("/edit")],
		Heading: "Edit draft: {{.Name}}", HeadingName: v.Name, Container: ct, Version: v, Draft: true, Selected: containerSelected(v)}, nil, containerVersionForm(v))
}

func (h *ContainerHandlers) update(c *fiber.Ctx) error {
	ct, v, err := h.containerVersionOf(c)
	if err != nil {
		return err
	}
	in, form, selected := containerInput(c)
	nv, err := h.Containers.UpdateDraft(c.UserContext(), ct.ProviderID, v.ID, in)
	if fe, ok := containerFormError(c, err); ok {
		return h.renderForm(c, containerFormStatus(err), containerFormPage{Action: c.Path(), Heading: "Edit draft: {{.Name}}", HeadingName: v.Name, Container: ct,
			Version: v, Draft: true, Selected: selected}, fe, form)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", containerSubmittedMessage(nv))
	return c.Redirect("/portal/containers/"+strconv.FormatInt(ct.ID, 10), fiber.StatusSeeOther)
}

// act is submit, deprecate, withdraw or discard of one version.
func (h *ContainerHandlers) act(c *fiber.Ctx) error {
	ct, v, err := h.containerVersionOf(c)
	if err != nil {
		return err
	}
	ctx, pid := c.UserContext(), ct.ProviderID
	reason := c.FormValue("reason")
	var msg string
	switch c.Params("action") {
	case "submit":
		var nv *containers.Version
		nv, err = h.Containers.Submit(ctx, pid, v.ID)
		if err == nil {
			msg = containerSubmittedMessage(nv)
		}
	case "deprecate":
		_, err = h.Containers.Deprecate(ctx, pid, v.ID, reason)
		msg = "Deprecated: no new consents; existing consents still deliver data."
	case "withdraw":
		_, err = h.Containers.Withdraw(ctx, pid, v.ID, reason)
		msg = "Withdrawn: every consent to this version has ended and no more data flows."
	case "discard":
		err = h.Containers.Discard(ctx, pid, v.ID)
		if err == nil {
			templates.SetFlash(c, "success", "Draft discarded.")
			if v.Version == 1 {
				return c.Redirect("/portal/containers", fiber.StatusSeeOther)
			}
			return c.Redirect("/portal/containers/"+strconv.FormatInt(ct.ID, 10), fiber.StatusSeeOther)
		}
	default:
		return errs.New(errs.NotFound, "not_found", "no such action")
	}
	if fe, ok := containerFormError(c, err); ok {
		ct, ferr := h.Containers.FindContainer(ctx, pid, ct.ID)
		if ferr != nil {
			return ferr
		}
		return h.renderShow(c, containerFormStatus(err), ct, fe, map[string]string{"reason": reason, "version": c.Params("version"), "action": c.Params("action")})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", msg)
	return c.Redirect("/portal/containers/"+strconv.FormatInt(ct.ID, 10), fiber.StatusSeeOther)
}
