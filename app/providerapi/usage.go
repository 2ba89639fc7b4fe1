package providerapi

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/policies/errs"
)

// usage is GET /usage?period=YYYY-MM.
func (h *Handler) usage(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	u, err := h.Billing.Usage(c.UserContext(), p.ProviderID, c.Query("period"))
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
}

// parseTime reads an RFC 3339 time or a date (midnight in loc).
func parseTime(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// deliveries is GET /deliveries?from=&to=&cursor=&limit=&kind=: the
// provider's own ledger. Defaults: the last 30 days.
func (h *Handler) deliveries(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	f, err := LedgerQuery(c, h.now(), h.Location)
	if err != nil {
		return err
	}
	list, next, err := h.Billing.FindLedger(c.UserContext(), p.ProviderID, f)
	if err != nil {
		return err
	}
	page := DeliveriesPage{From: f.From.UTC(), To: f.To.UTC(), Deliveries: list}
	if next != "" {
		page.NextCursor = &next
	}
	return c.JSON(page)
}

// LedgerQuery reads the query of a ledger page (the API and the portal and
// staff pages): from, to (RFC 3339 or dates), cursor, kind, limit.
func LedgerQuery(c *fiber.Ctx, now time.Time, loc *time.Location) (billing.LedgerFilter, error) {
	var v errs.Validation
	f := billing.LedgerFilter{To: now.Add(time.Second), Cursor: c.Query("cursor"), Kind: c.Query("kind")}
	f.From = f.To.AddDate(0, 0, -30)
	if s := c.Query("from"); s != "" {
		t, ok := parseTime(s, loc)
		if !ok {
			v.Add("from", "time_invalid", "from must be an RFC 3339 time or a date (2026-10-01)")
		}
		f.From = t
	}
	if s := c.Query("to"); s != "" {
		t, ok := parseTime(s, loc)
		if !ok {
			v.Add("to", "time_invalid", "to must be an RFC 3339 time or a date (2026-10-31)")
		}
		f.To = t
	}
	if !f.From.Before(f.To) && !v.Has("from") && !v.Has("to") {
		v.Add("to", "range_invalid", "to must be after from")
	}
	if f.Kind != "" && f.Kind != billing.KindPull && f.Kind != billing.KindPush {
		v.Add("kind", "kind_invalid", "kind is pull or push")
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			v.Add("limit", "limit_invalid", "limit is 1 to 1000")
		}
		f.Limit = n
	}
	return f, v.Err()
}
