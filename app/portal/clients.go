package portal

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/templates"
)

type clientsPage struct {
	Provider *onboarding.Provider
	Clients  []onboarding.APIClient
	// New is set right after creating or rotating: the only time the secret is shown.
	New      *onboarding.NewSecret
	Rotated  bool
	Now      time.Time
	Overlaps []overlap
}

type overlap struct {
	Hours int
	Label string
}

var overlaps = []overlap{{0, "no overlap (old secret and its access tokens stop now)"}, {1, "1 hour"}, {24, "24 hours"}, {72, "3 days"}, {168, "7 days"}}

func (h *Handlers) clients(c *fiber.Ctx) error {
	return h.renderClients(c, fiber.StatusOK, nil, nil, nil, false)
}

func (h *Handlers) renderClients(c *fiber.Ctx, status int, ns *onboarding.NewSecret, fieldErrs, form map[string]string, rotated bool) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	p, err := h.Onboarding.FindProviderByID(c.UserContext(), me.ProviderID)
	if err != nil {
		return err
	}
	order := onboarding.ClientSort.Parse(c.Query("sort"), c.Query("dir"))
	list, err := h.Onboarding.FindAPIClientsSorted(c.UserContext(), me.ProviderID, order)
	if err != nil {
		return err
	}
	// The secret must not linger in caches or the back button.
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.View.Render(c, status, "portal/clients", &templates.Page{Title: "API clients", Errors: fieldErrs, Form: form,
		Sort: templates.NewSort(c, order.Key, order.Desc),
		Data: clientsPage{Provider: p, Clients: list, New: ns, Rotated: rotated, Now: time.Now(), Overlaps: overlaps}})
}

func (h *Handlers) createClient(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	name := c.FormValue("name")
	create := h.Onboarding.CreateAPIClient
	sandbox := c.FormValue("sandbox") == "1"
	if sandbox { // the same API, the provider's simulated fleet only; possible before approval
		create = h.Onboarding.CreateSandboxAPIClient
	}
	ns, err := create(c.UserContext(), me.ProviderID, name)
	if invalid(err) {
		form := map[string]string{"name": name}
		if sandbox {
			form = map[string]string{"sandbox_name": name, "sandbox": "1"}
		}
		return h.renderClients(c, fiber.StatusUnprocessableEntity, nil, templates.FieldErrors(c, err), form, false)
	}
	if err != nil {
		return err
	}
	return h.renderClients(c, fiber.StatusCreated, ns, nil, nil, false)
}

func (h *Handlers) rotateClient(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	hours, err := strconv.Atoi(c.FormValue("overlap_hours", "24"))
	if err != nil {
		hours = -1 // reported as invalid by the domain
	}
	ns, err := h.Onboarding.RotateAPIClientSecret(c.UserContext(), me.ProviderID, id, time.Duration(hours)*time.Hour)
	if invalid(err) {
		return h.renderClients(c, fiber.StatusUnprocessableEntity, nil, templates.FieldErrors(c, err), nil, false)
	}
	if err != nil {
		return err
	}
	return h.renderClients(c, fiber.StatusOK, ns, nil, nil, true)
}

func (h *Handlers) revokeClient(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if err := h.Onboarding.RevokeAPIClient(c.UserContext(), me.ProviderID, id); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "The client is revoked; its secrets no longer work.")
	return c.Redirect("/portal/clients", fiber.StatusSeeOther)
}
