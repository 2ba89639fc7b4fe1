package billing

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// FinanceFigures are the finance dashboard's figures: the revenue page's
// periods (invoiced against paid), the receivables, the drafts waiting to
// be finalized and the latest invoice run. Four aggregate queries.
type FinanceFigures struct {
	Periods []RevenuePeriod // 12 consecutive billing periods up to the last billed, oldest first
	// Open is what issued invoices still ask for; Overdue the part of it
	// past its due date, in OverdueCount invoices.
	Open, Overdue decimal.Decimal
	OverdueCount  int64
	Drafts        int64 // invoices and credit notes in draft
	LastRun       *InvoiceRun
}

// FinanceFigures computes the finance dashboard for today (the billing
// time zone decides what is overdue, as on the revenue page).
func (s *Service) FinanceFigures(ctx context.Context) (*FinanceFigures, error) {
	db := s.DB.WithContext(ctx)
	now := s.now().In(s.loc())
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	f := &FinanceFigures{}
	periods, err := revenuePeriods(db)
	if err != nil {
		return nil, err
	}
	// twelve consecutive periods up to the last billed one (at least last
	// month), empty periods as zeros: the chart's axis is time
	last := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	if n := len(periods); n > 0 {
		if t, perr := time.Parse("2006-01", periods[n-1].Period); perr == nil && t.After(last) {
			last = t
		}
	}
	byPeriod := map[string]RevenuePeriod{}
	for _, p := range periods {
		byPeriod[p.Period] = p
	}
	for i := 11; i >= 0; i-- {
		key := last.AddDate(0, -i, 0).Format("2006-01")
		p, ok := byPeriod[key]
		if !ok {
			p = RevenuePeriod{Period: key}
		}
		f.Periods = append(f.Periods, p)
	}
	var rec struct {
		Open, Overdue decimal.Decimal
		OverdueCount  int64
	}
	if err := db.Raw(issuedInvoicesSQL+`SELECT COALESCE(sum(open), 0) AS open,
		COALESCE(sum(open) FILTER (WHERE status IN ('finalized','sent') AND due_date < ? AND open > 0), 0) AS overdue,
		count(*) FILTER (WHERE status IN ('finalized','sent') AND due_date < ? AND open > 0) AS overdue_count FROM inv`, today, today).
		Scan(&rec).Error; err != nil {
		return nil, errs.Wrap(err, "receivables")
	}
	f.Open, f.Overdue, f.OverdueCount = rec.Open, rec.Overdue, rec.OverdueCount
	if err := db.Model(&Invoice{}).Where("status = ?", StatusDraft).Count(&f.Drafts).Error; err != nil {
		return nil, errs.Wrap(err, "count drafts")
	}
	var runs []InvoiceRun
	if err := db.Order("id DESC").Limit(1).Find(&runs).Error; err != nil {
		return nil, errs.Wrap(err, "last run")
	}
	if len(runs) > 0 {
		f.LastRun = &runs[0]
	}
	return f, nil
}

// TierStep is one step of a graduated price's ladder.
type TierStep struct {
	From      int64
	To        int64 // 0: no upper end
	UnitPrice decimal.Decimal
	// Current marks the step this month's count stands on.
	Current bool
}

// ProviderFigures are the portal home's billing figures for one provider:
// this month's usage so far with the telematics price ladder (where the
// month's count stands) and the provider's invoices with money open.
type ProviderFigures struct {
	Usage *Usage
	// Count is this month's telematics deliveries; Ladder the telematics
	// tiers of the price list valid now; ToNext the deliveries until the
	// next (cheaper) step, 0 on the last.
	Count  int64
	Ladder []TierStep
	ToNext int64
	// OpenCount invoices ask for Open in all; OverdueCount of them are past due.
	OpenCount, OverdueCount int64
	Open                    decimal.Decimal
}

// ProviderFigures computes the portal home's figures; the provider is a
// condition of every query.
func (s *Service) ProviderFigures(ctx context.Context, providerID int64) (*ProviderFigures, error) {
	u, err := s.Usage(ctx, providerID, "")
	if err != nil {
		return nil, err
	}
	f := &ProviderFigures{Usage: u}
	for _, it := range u.Items {
		if it.Item == string(ItemTelematics) {
			f.Count = it.Count
		}
	}
	pl, err := s.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if v, ok := pl.At(now); ok {
		tiers := v.Tiers(ItemTelematics)
		for i, t := range tiers {
			st := TierStep{From: t.TierFrom, UnitPrice: t.UnitPrice}
			if i+1 < len(tiers) {
				st.To = tiers[i+1].TierFrom - 1
			}
			// the step the next delivery is priced on (the first before any)
			next := f.Count + 1
			st.Current = next >= st.From && (st.To == 0 || next <= st.To)
			if st.Current && st.To != 0 {
				f.ToNext = st.To - f.Count
			}
			f.Ladder = append(f.Ladder, st)
		}
	}
	local := now.In(s.loc())
	today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	var row struct {
		OpenCount, OverdueCount int64
		Open                    decimal.Decimal
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE open > 0) AS open_count,
		count(*) FILTER (WHERE open > 0 AND status IN ('finalized','sent') AND due_date < ?) AS overdue_count,
		COALESCE(sum(open), 0) AS open
		FROM (SELECT i.status, i.due_date, GREATEST(i.gross_total - i.paid_total - COALESCE((SELECT sum(c.gross_total) FROM invoices c
		        WHERE c.corrects_invoice_id = i.id AND c.doc_type = 'credit_note' AND c.status IN ('finalized','sent','paid')), 0), 0) AS open
		      FROM invoices i WHERE i.provider_id = ? AND i.doc_type = 'invoice' AND i.status IN ('finalized','sent','paid')) q`,
		today, providerID).Scan(&row).Error; err != nil {
		return nil, errs.Wrap(err, "open invoices")
	}
	f.OpenCount, f.OverdueCount, f.Open = row.OpenCount, row.OverdueCount, row.Open
	return f, nil
}
