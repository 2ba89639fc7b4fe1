package providerapi

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/billing"
	"cardata/policies/errs"
)

// usage is GET /usage?period=YYYY-MM.
func (h *Handler) usage(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	usage := h.Billing.Usage
	if p.Sandbox { // counted, never priced
		usage = h.Billing.SandboxUsage
	}
	u, err := usage(c.UserContext(), p.ProviderID, c.Query("period"))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// DeliveriesPage is the answer of GET /deliveries. Each delivery names
// the keys whose values it carried (keysKnown false and keys null for
// records written before the ledger named them).
type DeliveriesPage struct {
	From       time.Time             `json:"from"`
	To         time.Time             `json:"to"`
	Deliveries []billing.LedgerEntry `json:"deliveries"`
	NextCursor *string               `json:"nextCursor"`
	// Sandbox: the page lists the sandbox's deliveries (a sandbox client
	// asked), which are never billed.
	Sandbox bool `json:"sandbox"`
}

// deliveries is GET /deliveries?from=&to=&kind=&sort=&limit=&cursor=: the
// provider's own ledger, newest first (sort=oldest: in recording order).
// Without from/to: the last 30 days.
func (h *Handler) deliveries(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	f, err := LedgerQuery(c, h.now())
	if err != nil {
		return err
	}
	find := h.Billing.FindLedger
	if p.Sandbox {
		find = h.Billing.FindSandboxDeliveries
	}
	list, next, err := find(c.UserContext(), p.ProviderID, f)
	if err != nil {
		return err
	}
	page := DeliveriesPage{From: f.From.UTC(), To: f.To.UTC(), Deliveries: list, Sandbox: p.Sandbox}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}

// LedgerQuery reads the query of GET /deliveries with the API's paging and
// time-range conventions (web.ParsePage, web.ParseTimeRange); the cursor
// itself is billing's.
func LedgerQuery(c *fiber.Ctx, now time.Time) (billing.LedgerFilter, error) {
	var v errs.Validation
	f := billing.LedgerFilter{Cursor: c.Query("cursor"), Kind: c.Query("kind"), Limit: web.DefaultPageLimit}
	f.From, f.To = web.ParseTimeRange(c, &v)
	if f.To.IsZero() {
		f.To = now.Add(time.Second)
	}
	if f.From.IsZero() && !v.Has("from") {
		f.From = f.To.AddDate(0, 0, -30)
	}
	if !v.Has("to") && !v.Has("from") && !f.From.Before(f.To) {
		v.Add("to", "range_invalid", "to must be after from (the range is [from, to))")
	}
	if f.Kind != "" && f.Kind != billing.KindPull && f.Kind != billing.KindPush {
		v.Add("kind", "kind_invalid", "kind is pull or push")
	}
	switch c.Query("sort") {
	case "", "newest":
	case "oldest":
		f.Oldest = true
	default:
		v.Add("sort", "sort_invalid", "sort is newest (the default) or oldest")
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > web.MaxPageLimit {
			v.Add("limit", "limit_invalid", "limit is a number from 1 to %d", web.MaxPageLimit)
		}
		f.Limit = n
	}
	return f, v.Err()
}
