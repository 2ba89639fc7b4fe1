package billing

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/policies/errs"
)

// The revenue report: what was invoiced and what was paid per billing
// period, the receivables per provider, and the overdue invoices by age.
// Every figure is over issued documents (finalized, sent, paid); an
// invoice's issued credit notes reduce it (they belong to its period), and
// its open amount is gross minus payments minus those credits, as on the
// invoice page.

// RevenuePeriod is one billing period of the report.
type RevenuePeriod struct {
	Period   string
	Count    int64           // invoices
	Net      decimal.Decimal // invoices minus credit notes, net
	Invoiced decimal.Decimal // invoices minus credit notes, gross
	Paid     decimal.Decimal // payments booked on the period's invoices
	Open     decimal.Decimal // what the period's invoices still ask for
}

// PaidShare is Paid as a whole percentage of Invoiced (0 to 100).
func (p RevenuePeriod) PaidShare() int { return share(p.Paid, p.Invoiced) }

// ProviderReceivables is one provider's line of the report.
type ProviderReceivables struct {
	ProviderID int64
	Name       string
	Count      int64
	Invoiced   decimal.Decimal // gross, minus credit notes
	Paid       decimal.Decimal
	Open       decimal.Decimal
	Overdue    decimal.Decimal // the open amount of its overdue invoices
}

// OverdueInvoice is an issued invoice past its due date with money open.
type OverdueInvoice struct {
	ID          int64
	Number      string
	ProviderID  int64
	Name        string
	Period      string
	DueDate     time.Time
	DaysOverdue int
	Gross       decimal.Decimal
	Open        decimal.Decimal
}

// AgingBucket sums the overdue invoices by days past due.
type AgingBucket struct {
	Label    string // a catalog id: "1–30 days", ...
	From, To int    // days past due, inclusive; To 0: no upper end
	Count    int
	Open     decimal.Decimal
}

// RevenueReport is the revenue page's content.
type RevenueReport struct {
	Periods   []RevenuePeriod // the last 12 billing periods with documents, oldest first
	Providers []ProviderReceivables
	Overdue   []OverdueInvoice // most days overdue first
	Aging     []AgingBucket
	// Totals over every issued invoice.
	Invoiced, Paid, Open, OverdueOpen decimal.Decimal
	Today                             time.Time // the report's day in the billing time zone
}

// ChartMax is the largest invoiced or paid figure of the periods (the
// chart's scale).
func (r *RevenueReport) ChartMax() decimal.Decimal {
	top := decimal.Zero
	for _, p := range r.Periods {
		top = decimal.Max(top, p.Invoiced, p.Paid)
	}
	return top
}

// Bar is v's share of the chart's scale in percent, for an SVG bar.
func (r *RevenueReport) Bar(v decimal.Decimal) int { return share(v, r.ChartMax()) }

func share(part, whole decimal.Decimal) int {
	if !whole.IsPositive() || !part.IsPositive() {
		return 0
	}
	return int(min(part.Mul(hundred).Div(whole).Round(0).IntPart(), 100))
}

// issuedInvoicesSQL is every issued invoice with its credits and open amount.
const issuedInvoicesSQL = `WITH cred AS (
    SELECT corrects_invoice_id AS id, sum(net_total) AS net, sum(gross_total) AS gross FROM invoices
    WHERE doc_type = 'credit_note' AND status IN ('finalized','sent','paid') GROUP BY corrects_invoice_id
), inv AS (
    SELECT i.id, i.number, i.provider_id, i.buyer_name, i.period, i.status, i.due_date,
           i.net_total - COALESCE(c.net, 0) AS net, i.gross_total - COALESCE(c.gross, 0) AS invoiced,
           i.gross_total, i.paid_total,
           GREATEST(i.gross_total - i.paid_total - COALESCE(c.gross, 0), 0) AS open
    FROM invoices i LEFT JOIN cred c ON c.id = i.id
    WHERE i.doc_type = 'invoice' AND i.status IN ('finalized','sent','paid')
)
`

// revenuePeriods is the last 12 billing periods with issued documents,
// oldest first (the revenue page's and the finance dashboard's chart).
func revenuePeriods(db *gorm.DB) ([]RevenuePeriod, error) {
	var out []RevenuePeriod
	if err := db.Raw(issuedInvoicesSQL + `SELECT period, count(*) AS count, sum(net) AS net, sum(invoiced) AS invoiced,
		sum(paid_total) AS paid, sum(open) AS open FROM inv GROUP BY period ORDER BY period DESC LIMIT 12`).Scan(&out).Error; err != nil {
		return nil, errs.Wrap(err, "revenue per period")
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Revenue report builds the report for today (the billing time zone).
func (s *Service) RevenueReport(ctx context.Context) (*RevenueReport, error) {
	db := s.DB.WithContext(ctx)
	now := s.now().In(s.loc())
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	r := &RevenueReport{Today: today}
	var err error
	if r.Periods, err = revenuePeriods(db); err != nil {
		return nil, err
	}
	todayS := today.Format("2006-01-02")
	if err := db.Raw(issuedInvoicesSQL+`SELECT provider_id, max(buyer_name) AS name, count(*) AS count, sum(invoiced) AS invoiced,
		sum(paid_total) AS paid, sum(open) AS open,
		COALESCE(sum(open) FILTER (WHERE status IN ('finalized','sent') AND due_date < ?), 0) AS overdue
		FROM inv GROUP BY provider_id ORDER BY sum(open) DESC, sum(invoiced) DESC, provider_id LIMIT 200`, todayS).Scan(&r.Providers).Error; err != nil {
		return nil, errs.Wrap(err, "receivables per provider")
	}
	var overdue []struct {
		ID         int64
		Number     string
		ProviderID int64
		BuyerName  string
		Period     string
		DueDate    time.Time
		GrossTotal decimal.Decimal
		Open       decimal.Decimal
	}
	if err := db.Raw(issuedInvoicesSQL+`SELECT id, number, provider_id, buyer_name, period, due_date, gross_total, open FROM inv
		WHERE status IN ('finalized','sent') AND due_date < ? AND open > 0 ORDER BY due_date, id LIMIT 500`, todayS).Scan(&overdue).Error; err != nil {
		return nil, errs.Wrap(err, "overdue invoices")
	}
	r.Aging = []AgingBucket{{Label: "1–30 days", From: 1, To: 30}, {Label: "31–60 days", From: 31, To: 60},
		{Label: "61–90 days", From: 61, To: 90}, {Label: "more than 90 days", From: 91}}
	for _, o := range overdue {
		due := time.Date(o.DueDate.Year(), o.DueDate.Month(), o.DueDate.Day(), 0, 0, 0, 0, time.UTC)
		days := int(today.Sub(due).Hours() / 24)
		r.Overdue = append(r.Overdue, OverdueInvoice{ID: o.ID, Number: o.Number, ProviderID: o.ProviderID, Name: o.BuyerName,
			Period: o.Period, DueDate: due, DaysOverdue: days, Gross: o.GrossTotal, Open: o.Open})
		r.OverdueOpen = r.OverdueOpen.Add(o.Open)
		for i := range r.Aging {
			if b := &r.Aging[i]; days >= b.From && (b.To == 0 || days <= b.To) {
				b.Count++
				b.Open = b.Open.Add(o.Open)
			}
		}
	}
	var tot struct{ Invoiced, Paid, Open decimal.Decimal }
	if err := db.Raw(issuedInvoicesSQL + `SELECT COALESCE(sum(invoiced), 0) AS invoiced, COALESCE(sum(paid_total), 0) AS paid,
		COALESCE(sum(open), 0) AS open FROM inv`).Scan(&tot).Error; err != nil {
		return nil, errs.Wrap(err, "receivables")
	}
	r.Invoiced, r.Paid, r.Open = tot.Invoiced, tot.Paid, tot.Open
	return r, nil
}
