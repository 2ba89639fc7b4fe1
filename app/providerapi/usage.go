package providerapi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/billing"
	"cardata/onboarding/webhooks"
	"cardata/policies/errs"
)

// UsageCalculator prices a provider's month so far with billing's price
// list and graduated rating, counting units in delivery order and pricing
// each under the version valid when it was delivered, as the invoice run
// does. The portal and the staff pages use it too.
type UsageCalculator struct {
	DB       *gorm.DB
	Billing  *billing.Service
	Location *time.Location
	Now      func() time.Time
}

type usageGroup struct {
	Kind      string
	VersionID *int64
	N         int64
}

// Usage returns the provider's usage in period ("YYYY-MM"; "" is the
// current month in the billing time zone).
func (u *UsageCalculator) Usage(ctx context.Context, providerID int64, period string) (*webhooks.Usage, error) {
	now := time.Now()
	if u.Now != nil {
		now = u.Now()
	}
	p := billing.PeriodOf(now, u.Location)
	if period != "" {
		var err error
		if p, err = billing.ParsePeriod(period, u.Location); err != nil {
			return nil, err
		}
	}
	var groups []usageGroup
	err := u.DB.WithContext(ctx).Raw(`SELECT l.kind, v.id AS version_id, count(*) AS n
		FROM delivery_ledger l
		LEFT JOIN LATERAL (SELECT id FROM price_list_versions pv WHERE pv.valid_from <= l.delivered_at ORDER BY pv.valid_from DESC LIMIT 1) v ON true
		WHERE l.provider_id = ? AND l.delivered_at >= ? AND l.delivered_at < ?
		GROUP BY l.kind, v.id ORDER BY l.kind, min(l.delivered_at)`, providerID, p.Start, p.End).Scan(&groups).Error
	if err != nil {
		return nil, errs.Wrap(err, "usage counts")
	}
	pl, err := u.Billing.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	out := &webhooks.Usage{Period: p.String(), From: p.Start.UTC(), To: p.End.UTC(), AsOf: now.UTC(), Currency: "EUR", Total: decimal.Zero,
		Note: "Usage so far, priced under the published price list; the invoice for the month is authoritative."}
	for _, kind := range []string{billing.KindPull, billing.KindPush} {
		item := billing.ItemTelematics
		if kind == billing.KindPush {
			item = billing.ItemPush
		}
		ui := webhooks.UsageItem{Item: string(item), Label: item.ShortLabel(), Amount: decimal.Zero, Tiers: []webhooks.UsageTier{}}
		var base int64
		for _, g := range groups {
			if g.Kind != kind {
				continue
			}
			ui.Count += g.N
			var ver *billing.Version
			if g.VersionID != nil {
				ver, _ = pl.ByID(*g.VersionID)
			}
			if ver == nil {
				ui.Unpriced += g.N
				base += g.N
				continue
			}
			slices, ok := billing.Graduate(ver.Tiers(item), base, g.N)
			priced := int64(0)
			for _, sl := range slices {
				amt := sl.Amount()
				ui.Tiers = append(ui.Tiers, webhooks.UsageTier{From: sl.From, To: sl.To, Quantity: sl.Quantity, UnitPrice: sl.UnitPrice, Amount: amt})
				ui.Amount = ui.Amount.Add(amt)
				priced += sl.Quantity
			}
			if !ok {
				ui.Unpriced += g.N - priced
			}
			base += g.N
		}
		out.Items = append(out.Items, ui)
		out.Total = out.Total.Add(ui.Amount)
	}
	return out, nil
}

// usage is GET /usage?period=YYYY-MM.
func (h *Handler) usage(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	u, err := h.Usage.Usage(c.UserContext(), p.ProviderID, c.Query("period"))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// DeliveriesPage is the answer of GET /deliveries.
type DeliveriesPage struct {
	From       time.Time              `json:"from"`
	To         time.Time              `json:"to"`
	Deliveries []webhooks.LedgerEntry `json:"deliveries"`
	NextCursor *string                `json:"nextCursor"`
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
	list, next, err := h.Webhooks.FindLedger(c.UserContext(), p.ProviderID, f)
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
func LedgerQuery(c *fiber.Ctx, now time.Time, loc *time.Location) (webhooks.LedgerFilter, error) {
	var v errs.Validation
	f := webhooks.LedgerFilter{To: now.Add(time.Second), Cursor: c.Query("cursor"), Kind: c.Query("kind")}
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
