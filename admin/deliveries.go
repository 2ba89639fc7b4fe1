package admin

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// DeliveryHandlers are the staff's per-provider view of the provider API:
// the delivery ledger, the month's usage, webhook endpoints and their
// delivery attempts. Reading only; providers manage their endpoints
// themselves.
type DeliveryHandlers struct {
	View       *templates.View
	Onboarding *onboarding.Service
	Webhooks   *webhooks.Service
	// Billing reads the ledger (the delivery list) and prices the month's
	// usage so far.
	Billing  *billing.Service
	Location *time.Location
}

// Routes mounts the pages on r (the /admin group).
func (h *DeliveryHandlers) Routes(r fiber.Router) {
	r.Get("/deliveries", h.index)
	r.Get("/deliveries/:id", h.show)
	r.Get("/deliveries/:id/export.csv", h.exportLedger)
	r.Post("/deliveries/dead-events/:event/retry", h.retryEvent)
	r.Post("/deliveries/:id/pushes/:delivery/retry", h.retryDelivery)
}

// DeliveryNav is the navigation entry.
func DeliveryNav() templates.NavItem {
	return templates.NavItem{Label: "Deliveries and pushes", Path: "/admin/deliveries"}
}

func (h *DeliveryHandlers) index(c *fiber.Ctx) error {
	if id, err := strconv.ParseInt(c.Query("provider"), 10, 64); err == nil && id > 0 {
		return c.Redirect("/admin/deliveries/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
	}
	pager := templates.NewPager(c, 25)
	order := onboarding.ProviderSort.Parse(c.Query("sort"), c.Query("dir"))
	list, total, err := h.Onboarding.FindProviders(c.UserContext(), onboarding.ProviderFilter{Query: c.Query("q"),
		Status: onboarding.Status(c.Query("status")), Offset: pager.Offset(), Limit: pager.PerPage, Order: order})
	if err != nil {
		return err
	}
	pager.Total = total
	dead, deadTotal, err := h.Webhooks.DeadEvents(c.UserContext(), 50)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/deliveries/index", &templates.Page{Title: "Deliveries and pushes", Pager: pager,
		Sort: templates.NewSort(c, order.Key, order.Desc),
		Form: map[string]string{"q": c.Query("q"), "status": c.Query("status")},
		Data: struct {
			Providers  []onboarding.Provider
			Statuses   []onboarding.Status
			DeadEvents []webhooks.DeadEvent
			DeadTotal  int64
			CanRetry   bool
		}{list, onboarding.Statuses, dead, deadTotal, h.mayRetry(c)}})
}

// mayRetry: the retry buttons show only to roles the policy lets post them.
func (h *DeliveryHandlers) mayRetry(c *fiber.Ctx) bool {
	p := policies.PrincipalFrom(c.UserContext())
	return h.View.Can(p, fiber.MethodPost, "/admin/deliveries/dead-events/0/retry")
}

// retryEvent puts a vehicle event the push fan-out set aside back into its
// queue (audited in the service).
func (h *DeliveryHandlers) retryEvent(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("event"), 10, 64)
	if err != nil {
		return webhooks.ErrDeadEventNotFound
	}
	if err := h.Webhooks.RetryDeadEvent(c.UserContext(), id); err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Vehicle event {{.ID}} is queued for the push fan-out again.", "ID", id))
	return c.Redirect("/admin/deliveries", fiber.StatusSeeOther)
}

// retryDelivery queues a dead-lettered push delivery once more.
func (h *DeliveryHandlers) retryDelivery(c *fiber.Ctx) error {
	pid, err1 := strconv.ParseInt(c.Params("id"), 10, 64)
	did, err2 := strconv.ParseInt(c.Params("delivery"), 10, 64)
	if err1 != nil || err2 != nil {
		return errs.New(errs.NotFound, "not_found", "no such delivery")
	}
	if err := h.Webhooks.RetryDelivery(c.UserContext(), pid, did); err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Delivery {{.ID}} is queued again.", "ID", did))
	return c.Redirect("/admin/deliveries/"+strconv.FormatInt(pid, 10)+"#pushes", fiber.StatusSeeOther)
}

// DeliveryPage is the data of a provider's deliveries page (staff and portal).
type DeliveryPage struct {
	Provider   *onboarding.Provider
	Usage      *billing.Usage
	Ledger     []billing.LedgerEntry
	NextCursor string
	From, To   time.Time
	Endpoints  []webhooks.Endpoint
	Deliveries []webhooks.Delivery
	Dead       int64
	CanRetry   bool
}

func (h *DeliveryHandlers) show(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return errs.New(errs.NotFound, "not_found", "no such provider")
	}
	ctx := c.UserContext()
	p, err := h.Onboarding.FindProviderByID(ctx, id)
	if err != nil {
		return err
	}
	d := DeliveryPage{Provider: p, CanRetry: h.mayRetry(c)}
	f, err := LedgerFilterFrom(c, time.Now(), h.Location)
	if err != nil {
		return err
	}
	d.From, d.To = f.From, f.To
	if d.Usage, err = h.Billing.Usage(ctx, id, c.Query("period")); err != nil {
		return err
	}
	if d.Ledger, d.NextCursor, err = h.Billing.FindLedger(ctx, id, f); err != nil {
		return err
	}
	if d.Endpoints, err = h.Webhooks.FindEndpoints(ctx, id, true); err != nil {
		return err
	}
	if d.Deliveries, _, err = h.Webhooks.FindDeliveries(ctx, id, webhooks.DeliveryFilter{Status: c.Query("push_status"), Limit: 50}); err != nil {
		return err
	}
	if d.Dead, err = h.Webhooks.DeadLetters(ctx, id); err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/deliveries/show", &templates.Page{Title: p.LegalName + ": deliveries", Data: d,
		Form: map[string]string{"from": c.Query("from"), "to": c.Query("to"), "period": d.Usage.Period, "kind": f.Kind, "push_status": c.Query("push_status")}})
}

// exportLedger downloads a provider's delivery log in the page's time
// range and kind as CSV.
func (h *DeliveryHandlers) exportLedger(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return errs.New(errs.NotFound, "not_found", "no such provider")
	}
	p, err := h.Onboarding.FindProviderByID(c.UserContext(), id)
	if err != nil {
		return err
	}
	f, err := LedgerFilterFrom(c, time.Now(), h.Location)
	if err != nil {
		return err
	}
	f.Cursor = ""
	return templates.CSV(c, "cardata-deliveries-"+strconv.FormatInt(p.ID, 10)+".csv", billing.LedgerCSVHeader,
		func(ctx context.Context, emit func([]string) error) error {
			return h.Billing.EachLedger(ctx, p.ID, f, func(e *billing.LedgerEntry) error { return emit(e.CSVRow()) })
		})
}

// LedgerFilterFrom reads a ledger page's query (from, to as dates or RFC
// 3339 times, cursor, kind); bad input is a 422, never a 500.
func LedgerFilterFrom(c *fiber.Ctx, now time.Time, loc *time.Location) (billing.LedgerFilter, error) {
	return billing.LedgerFilterFromQuery(func(k string) string { return c.Query(k) }, now, loc)
}
