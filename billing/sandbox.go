package billing

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// The sandbox's deliveries. A transfer to a sandbox client or a sandbox
// webhook endpoint (Delivery.Sandbox) is recorded in sandbox_deliveries, a
// table of its own with the ledger's shape: the provider pages through it
// like through its ledger, staff see the activity, and nothing that bills
// or reports (the invoice run, reconcile, usage pricing, coverage, the
// customers' transaction reports: all on delivery_ledger) can see it.

const insertSandbox = `INSERT INTO sandbox_deliveries
	(provider_id, client_id, vin, container_id, container_version, consent_id, kind, keys_delivered, bytes, request_id, delivered_at,
	 key_ids, event_id, event_type)
	VALUES (?, NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::smallint[], NULLIF(?, ''), NULLIF(?, ''))
	ON CONFLICT (provider_id, kind, request_id) DO NOTHING`

// recordSandbox writes a checked sandbox delivery with db (a transaction
// for pushes).
func recordSandbox(ctx context.Context, db *gorm.DB, d Delivery) error {
	err := db.WithContext(ctx).Exec(insertSandbox, d.ProviderID, d.ClientID, d.VIN, d.ContainerID, d.ContainerVersion,
		d.ConsentID, d.Kind, d.KeysDelivered, d.Bytes, d.RequestID, d.At, sqlarray.Int16s(d.KeyIDs), d.EventID, d.EventType).Error
	return errs.Wrap(err, "record sandbox delivery")
}

// FindSandboxDeliveries pages through a provider's sandbox deliveries as
// FindLedger pages through its ledger (same filter, cursor and entries;
// Invoiced is always false: they are never billed).
func (s *Service) FindSandboxDeliveries(ctx context.Context, providerID int64, f LedgerFilter) ([]LedgerEntry, string, error) {
	return s.findEntries(ctx, "sandbox_deliveries", providerID, f)
}

// SandboxUsage is a provider's sandbox usage in one month: counts by kind,
// never priced (the sandbox is not billed).
func (s *Service) SandboxUsage(ctx context.Context, providerID int64, period string) (*Usage, error) {
	now := s.now()
	p := PeriodOf(now, s.loc())
	if period != "" {
		var err error
		if p, err = ParsePeriod(period, s.loc()); err != nil {
			return nil, err
		}
	}
	counts, err := s.sandboxCounts(ctx, providerID, p.Start, p.End)
	if err != nil {
		return nil, err
	}
	out := &Usage{Period: p.String(), From: p.Start.UTC(), To: p.End.UTC(), AsOf: now.UTC(), Currency: "EUR",
		Total: decimal.Zero, Note: "Sandbox usage: never billed."}
	for _, kind := range []string{KindPull, KindPush} {
		item := ItemTelematics
		if kind == KindPush {
			item = ItemPush
		}
		out.Items = append(out.Items, UsageItem{Item: string(item), Label: item.ShortLabel(), Count: counts[kind],
			Amount: decimal.Zero, Tiers: []UsageTier{}})
	}
	return out, nil
}

func (s *Service) sandboxCounts(ctx context.Context, providerID int64, from, to time.Time) (map[string]int64, error) {
	var rows []struct {
		Kind string
		N    int64
	}
	q := `SELECT kind, count(*) AS n FROM sandbox_deliveries WHERE delivered_at >= ? AND delivered_at < ?`
	args := []any{from, to}
	if providerID != 0 {
		q += " AND provider_id = ?"
		args = append(args, providerID)
	}
	if err := s.DB.WithContext(ctx).Raw(q+" GROUP BY kind", args...).Scan(&rows).Error; err != nil {
		return nil, errs.Wrap(err, "sandbox usage")
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Kind] = r.N
	}
	return out, nil
}

// SandboxActivity is what staff see of a provider's sandbox: its sandbox
// deliveries in the last 30 days by kind, and the newest one.
type SandboxActivity struct {
	Pulls, Pushes int64
	Last          *time.Time
}

// SandboxActivityOf sums provider providerID's sandbox deliveries of the
// last 30 days.
func (s *Service) SandboxActivityOf(ctx context.Context, providerID int64) (*SandboxActivity, error) {
	now := s.now()
	counts, err := s.sandboxCounts(ctx, providerID, now.AddDate(0, 0, -30), now.Add(time.Second))
	if err != nil {
		return nil, err
	}
	a := &SandboxActivity{Pulls: counts[KindPull], Pushes: counts[KindPush]}
	var last []time.Time
	if err := s.DB.WithContext(ctx).Raw("SELECT max(delivered_at) FROM sandbox_deliveries WHERE provider_id = ? HAVING count(*) > 0", providerID).
		Scan(&last).Error; err != nil {
		return nil, errs.Wrap(err, "sandbox activity")
	}
	if len(last) == 1 {
		a.Last = &last[0]
	}
	return a, nil
}
