package admin

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
)

// ContainerHandlers are the partner managers' container review: the queue
// of submitted versions and each container's page with purpose, keys,
// sensitivity and data-minimisation hints. Auditors and support read them.
type ContainerHandlers struct {
	View       *templates.View
	Containers *containers.Service
}

// Routes mounts the pages on r (the /admin group).
func (h *ContainerHandlers) Routes(r fiber.Router) {
	r.Get("/containers", h.index)
	r.Get("/containers/:id", h.show)
	r.Post("/containers/:id/versions/:version/:action", h.View.Confirm(h.confirmAct), h.act)
}

// ContainerNav is the navigation entry.
func ContainerNav() templates.NavItem {
	return templates.NavItem{Label: "Data containers", Path: "/admin/containers"}
}

type containerIndexPage struct {
	Queue  []containers.Version
	List   []containers.Version
	States []containers.State
}

func (h *ContainerHandlers) index(c *fiber.Ctx) error {
	ctx := c.UserContext()
	queue, err := h.Containers.FindReviewQueue(ctx)
	if err != nil {
		return err
	}
	pager := templates.NewPager(c, 25)
	form := map[string]string{"state": c.Query("state"), "q": c.Query("q")}
	f := containers.Filter{State: containers.State(form["state"]), Query: form["q"], Offset: pager.Offset(), Limit: pager.PerPage,
		Order: containers.Sort.Parse(c.Query("sort"), c.Query("dir"))}
	fieldErrs := map[string]string{}
	if f.State != "" && !contains(containers.States, f.State) {
		fieldErrs["state"], f.State = "unknown state", ""
	}
	list, total, err := h.Containers.FindContainers(ctx, f)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "admin/containers/index", &templates.Page{Title: "Data containers", Pager: pager,
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Form: form, Errors: fieldErrs, Data: containerIndexPage{Queue: queue, List: list, States: containers.States}})
}

type containerPage struct {
	Container *containers.Container
	CanReview bool
	Me        int64
}

func (h *ContainerHandlers) show(c *fiber.Ctx) error {
	return h.render(c, fiber.StatusOK, nil, nil)
}

func (h *ContainerHandlers) render(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	ct, err := h.Containers.FindContainer(c.UserContext(), 0, id)
	if err != nil {
		return err
	}
	p := policies.PrincipalFrom(c.UserContext())
	page := containerPage{Container: ct, CanReview: p.HasRole(policies.RolePartnerManager)}
	if p != nil {
		page.Me = p.ID
	}
	return h.View.Render(c, status, "admin/containers/show", &templates.Page{Title: ct.Current().Name, Errors: fieldErrs, Form: form, Data: page})
}

// act is approve, reject, deprecate or withdraw of one version.
func (h *ContainerHandlers) act(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	ct, err := h.Containers.FindContainer(ctx, 0, id)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(c.Params("version"))
	var v *containers.Version
	for i := range ct.Versions {
		if ct.Versions[i].Version == n {
			v = &ct.Versions[i]
		}
	}
	if v == nil {
		return containers.ErrNotFound
	}
	reason := c.FormValue("reason")
	var msg string
	switch c.Params("action") {
	case "approve":
		var done bool
		_, done, err = h.Containers.Approve(ctx, v.ID)
		msg = "Approved. The provider is notified and may now ask customers for consent."
		if !done {
			msg = "Your approval is recorded. The container has sensitive keys: a second partner manager must approve it too."
		}
	case "reject":
		_, err = h.Containers.Reject(ctx, v.ID, reason)
		msg = "Rejected. The provider is notified with your reason."
	case "deprecate":
		_, err = h.Containers.Deprecate(ctx, 0, v.ID, reason)
		msg = "Deprecated: no new consents; existing consents still deliver data."
	case "withdraw":
		_, err = h.Containers.Withdraw(ctx, 0, v.ID, reason)
		msg = "Withdrawn: every consent to this version has ended and no more data flows."
	default:
		return errs.New(errs.NotFound, "not_found", "no such action")
	}
	switch errs.KindOf(err) {
	case errs.Invalid:
		return h.render(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err),
			map[string]string{"reason": reason, "action": c.Params("action"), "version": c.Params("version")})
	case errs.Conflict:
		return h.render(c, fiber.StatusConflict, map[string]string{"decision": templates.ErrorText(c, err)},
			map[string]string{"reason": reason, "action": c.Params("action"), "version": c.Params("version")})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", msg)
	return c.Redirect("/admin/containers/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}
