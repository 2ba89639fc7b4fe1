package portal

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/onboarding/webhooks"
	"cardata/policies/errs"
	"cardata/templates"
)

// APIPages are the portal's provider API pages: the provider's deliveries
// and usage, and its webhook endpoints with their delivery attempts.
// Everything is read and changed for the signed-in user's provider only.
type APIPages struct {
	View     *templates.View
	Webhooks *webhooks.Service
	// Billing reads the provider's ledger and prices its month so far.
	Billing  *billing.Service
	Location *time.Location
}

// Routes mounts the pages on r (the /portal group).
func (h *APIPages) Routes(r fiber.Router) {
	r.Get("/deliveries", h.deliveries)
	r.Get("/deliveries/export.csv", h.exportDeliveries)
	r.Get("/webhooks", h.webhooks)
	r.Post("/webhooks", h.createWebhook)
	r.Get("/webhooks/:id", h.webhook)
	r.Post("/webhooks/:id/delete", h.View.Confirm(h.confirmDeleteWebhook), h.deleteWebhook)
	r.Post("/webhooks/:id/enable", h.enableWebhook)
	r.Post("/webhooks/:id/test", h.testWebhook)
	r.Post("/webhooks/:id/deliveries/:delivery/redeliver", h.redeliver)
}

// APINav is the portal navigation of these pages.
func APINav() []templates.NavItem {
	return []templates.NavItem{{Label: "Deliveries and usage", Path: "/portal/deliveries"}, {Label: "Webhooks", Path: "/portal/webhooks"}}
}

// deliveriesPage is the delivery log and the month's usage.
type deliveriesPage struct {
	Usage *billing.Usage
	// SandboxUsage counts the month's sandbox deliveries (never billed).
	SandboxUsage *billing.Usage
	Ledger       []billing.LedgerEntry
	NextCursor   string
	From, To     time.Time
}

func (h *APIPages) deliveries(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	f, err := billing.LedgerFilterFromQuery(func(k string) string { return c.Query(k) }, time.Now(), h.Location)
	if err != nil {
		return err
	}
	d := deliveriesPage{From: f.From, To: f.To}
	if d.Usage, err = h.Billing.Usage(ctx, me.ProviderID, c.Query("period")); err != nil {
		return err
	}
	if d.Ledger, d.NextCursor, err = h.Billing.FindLedger(ctx, me.ProviderID, f); err != nil {
		return err
	}
	if d.SandboxUsage, err = h.Billing.SandboxUsage(ctx, me.ProviderID, d.Usage.Period); err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "portal/api/deliveries", &templates.Page{Title: "Deliveries and usage", Data: d,
		Form: map[string]string{"from": c.Query("from"), "to": c.Query("to"), "period": d.Usage.Period, "kind": f.Kind}})
}

// exportDeliveries downloads the provider's delivery log in the page's
// time range and kind as CSV; only its own records (the provider is a
// condition of the query).
func (h *APIPages) exportDeliveries(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	f, err := billing.LedgerFilterFromQuery(func(k string) string { return c.Query(k) }, time.Now(), h.Location)
	if err != nil {
		return err
	}
	f.Cursor = ""
	return templates.CSV(c, "cardata-deliveries.csv", billing.LedgerCSVHeader, func(ctx context.Context, emit func([]string) error) error {
		return h.Billing.EachLedger(ctx, me.ProviderID, f, func(e *billing.LedgerEntry) error { return emit(e.CSVRow()) })
	})
}

type webhooksPage struct {
	Endpoints  []webhooks.Endpoint
	EventTypes []string
	Created    *webhooks.Endpoint // just created: its secret is shown
	Deliveries []webhooks.Delivery
	Dead       int64
}

func (h *APIPages) webhooks(c *fiber.Ctx) error {
	return h.renderWebhooks(c, fiber.StatusOK, nil, nil, nil)
}

func (h *APIPages) renderWebhooks(c *fiber.Ctx, status int, created *webhooks.Endpoint, fieldErrs, form map[string]string) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	d := webhooksPage{Created: created, EventTypes: webhooks.EventTypes}
	if d.Endpoints, err = h.Webhooks.FindEndpoints(ctx, me.ProviderID, false); err != nil {
		return err
	}
	if d.Deliveries, _, err = h.Webhooks.FindDeliveries(ctx, me.ProviderID, webhooks.DeliveryFilter{Limit: 20}); err != nil {
		return err
	}
	if d.Dead, err = h.Webhooks.DeadLetters(ctx, me.ProviderID); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.View.Render(c, status, "portal/api/webhooks", &templates.Page{Title: "Webhooks", Data: d, Errors: fieldErrs, Form: form})
}

func (h *APIPages) createWebhook(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	in := webhooks.NewEndpoint{URL: c.FormValue("url"), Description: c.FormValue("description")}
	args := c.Request().PostArgs()
	for _, v := range args.PeekMulti("event_types") {
		in.EventTypes = append(in.EventTypes, string(v))
	}
	e, err := h.Webhooks.CreateEndpoint(c.UserContext(), me.ProviderID, in)
	if errs.KindOf(err) == errs.Invalid {
		return h.renderWebhooks(c, fiber.StatusUnprocessableEntity, nil, templates.FieldErrors(c, err),
			map[string]string{"url": in.URL, "description": in.Description, "event_types": strings.Join(in.EventTypes, ",")})
	}
	if err != nil {
		return err
	}
	return h.renderWebhooks(c, fiber.StatusCreated, e, nil, nil)
}

type webhookPage struct {
	Endpoint   *webhooks.Endpoint
	Deliveries []webhooks.Delivery
	Next       int64
	Status     string
}

func (h *APIPages) webhook(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	e, err := h.Webhooks.FindEndpoint(c.UserContext(), me.ProviderID, id)
	if err != nil {
		return err
	}
	f := webhooks.DeliveryFilter{EndpointID: id, Status: c.Query("status")}
	switch f.Status {
	case "", webhooks.DeliveryPending, webhooks.DeliverySucceeded, webhooks.DeliveryDead, webhooks.DeliveryDropped:
	default:
		f.Status = ""
	}
	f.Before, _ = strconv.ParseInt(c.Query("before"), 10, 64)
	list, next, err := h.Webhooks.FindDeliveries(c.UserContext(), me.ProviderID, f)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.View.Render(c, fiber.StatusOK, "portal/api/webhook", &templates.Page{Title: "Webhook " + e.URL,
		Data: webhookPage{Endpoint: e, Deliveries: list, Next: next, Status: f.Status}})
}

func (h *APIPages) act(c *fiber.Ctx, do func(ctx context.Context, providerID, id int64) (string, error)) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	msg, err := do(c.UserContext(), me.ProviderID, id)
	if err != nil {
		if k := errs.KindOf(err); k == errs.Conflict || k == errs.NotFound {
			templates.SetFlash(c, "error", templates.ErrorText(c, err))
			return c.Redirect("/portal/webhooks", fiber.StatusSeeOther)
		}
		return err
	}
	templates.SetFlash(c, "success", msg)
	return c.Redirect("/portal/webhooks/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

func (h *APIPages) deleteWebhook(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if err := h.Webhooks.DeleteEndpoint(c.UserContext(), me.ProviderID, id); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "The endpoint was deleted; its queued notifications were dropped.")
	return c.Redirect("/portal/webhooks", fiber.StatusSeeOther)
}

func (h *APIPages) enableWebhook(c *fiber.Ctx) error {
	return h.act(c, func(ctx context.Context, pid, id int64) (string, error) {
		return "The endpoint is active again. Redeliver dead notifications you still need.", h.Webhooks.EnableEndpoint(ctx, pid, id)
	})
}

func (h *APIPages) testWebhook(c *fiber.Ctx) error {
	return h.act(c, func(ctx context.Context, pid, id int64) (string, error) {
		ev, err := h.Webhooks.SendTest(ctx, pid, id)
		return "Test event " + ev + " queued; it is sent within seconds.", err
	})
}

func (h *APIPages) redeliver(c *fiber.Ctx) error {
	did, err := strconv.ParseInt(c.Params("delivery"), 10, 64)
	if err != nil {
		return errs.New(errs.NotFound, "webhook_delivery_not_found", "no such delivery")
	}
	return h.act(c, func(ctx context.Context, pid, id int64) (string, error) {
		d, err := h.Webhooks.FindDelivery(ctx, pid, did)
		if err != nil {
			return "", err
		}
		if d.EndpointID != id {
			return "", errs.New(errs.NotFound, "webhook_delivery_not_found", "no such delivery")
		}
		if _, err := h.Webhooks.Redeliver(ctx, pid, did); err != nil {
			return "", err
		}
		return "Delivery " + strconv.FormatInt(did, 10) + " queued again.", nil
	})
}
