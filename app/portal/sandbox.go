package portal

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/policies/consent"
	"cardata/templates"
	"cardata/templates/i18n"
)

// SandboxPages are the portal's sandbox page (issue 19): the provider's
// simulated fleet with what each vehicle is for, the consent requests its
// sandbox clients made, with buttons to let the simulated customer grant or
// deny at once (otherwise the rule decides: a VIN ending in an odd digit
// grants, even denies), and the sandbox's deliveries, marked not billed.
type SandboxPages struct {
	View       *templates.View
	Onboarding *onboarding.Service
	Vehicles   *vehicles.Service
	Consents   *consent.Service
	Containers *containers.Service
	Billing    *billing.Service
	Location   *time.Location
}

// Routes mounts the pages on r (the /portal group).
func (h *SandboxPages) Routes(r fiber.Router) {
	r.Get("/sandbox", h.sandbox)
	r.Post("/sandbox/consents/:id/grant", h.answer(true))
	r.Post("/sandbox/consents/:id/deny", h.answer(false))
}

// SandboxNav is the portal navigation of the sandbox page.
func SandboxNav() templates.NavItem {
	return templates.NavItem{Label: "Sandbox", Path: "/portal/sandbox"}
}

// SandboxFleetVehicle is a simulated vehicle with what it is for.
type SandboxFleetVehicle struct {
	vehicles.Vehicle
	Note string
}

type sandboxPage struct {
	Provider      *onboarding.Provider
	Clients       int // live sandbox clients
	Fleet         []SandboxFleetVehicle
	Containers    []containers.Container // the sandbox containers
	Requests      []consent.Consent      // open requests
	Consents      []consent.Consent      // the newest consents of the sandbox
	Usage         *billing.Usage
	Deliveries    []billing.LedgerEntry
	AnswerSeconds int
}

func (h *SandboxPages) sandbox(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	d := sandboxPage{AnswerSeconds: int(consent.SandboxAnswerDelay.Seconds())}
	if d.Provider, err = h.Onboarding.FindProviderByID(ctx, me.ProviderID); err != nil {
		return err
	}
	clients, err := h.Onboarding.FindAPIClients(ctx, me.ProviderID)
	if err != nil {
		return err
	}
	for _, cl := range clients {
		if cl.Sandbox && !cl.Revoked() {
			d.Clients++
		}
	}
	fleet, err := h.Vehicles.SandboxFleetOf(ctx, me.ProviderID)
	if err != nil {
		return err
	}
	for _, v := range fleet {
		d.Fleet = append(d.Fleet, SandboxFleetVehicle{Vehicle: v, Note: vehicles.SandboxNote(v.VIN)})
	}
	if d.Containers, err = h.Containers.FindProviderContainersIn(ctx, me.ProviderID, true); err != nil {
		return err
	}
	if d.Requests, _, err = h.Consents.FindProviderConsents(ctx, me.ProviderID,
		consent.ConsentFilter{Sandbox: true, State: consent.Requested, Limit: 100}); err != nil {
		return err
	}
	if d.Consents, _, err = h.Consents.FindProviderConsents(ctx, me.ProviderID, consent.ConsentFilter{Sandbox: true, Limit: 20}); err != nil {
		return err
	}
	if d.Usage, err = h.Billing.SandboxUsage(ctx, me.ProviderID, ""); err != nil {
		return err
	}
	now := time.Now()
	if d.Deliveries, _, err = h.Billing.FindSandboxDeliveries(ctx, me.ProviderID,
		billing.LedgerFilter{From: now.AddDate(0, 0, -30), To: now.Add(time.Second), Limit: 50}); err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "portal/sandbox", &templates.Page{Title: "Sandbox", Data: d})
}

// answer is the simulated customer's button: grant or deny one open
// request of the provider's sandbox at once.
func (h *SandboxPages) answer(grant bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		me, err := me(c)
		if err != nil {
			return err
		}
		id, err := templates.PathID(c)
		if err != nil {
			return err
		}
		if err := h.Consents.AnswerSandboxRequest(c.UserContext(), me.ProviderID, id, grant); err != nil {
			return err
		}
		msg := i18n.T(templates.LangOf(c), "The simulated customer denied consent request {{.ID}}.", "ID", strconv.FormatInt(id, 10))
		if grant {
			msg = i18n.T(templates.LangOf(c), "The simulated customer granted consent request {{.ID}}.", "ID", strconv.FormatInt(id, 10))
		}
		templates.SetFlash(c, "success", msg)
		return c.Redirect("/portal/sandbox", fiber.StatusSeeOther)
	}
}
