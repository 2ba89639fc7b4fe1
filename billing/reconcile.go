package billing

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/policies/errs"
)

// Difference is one disagreement between the stored invoices and the
// independent re-rating.
type Difference struct {
	Invoice  string // number or "draft #id"
	Line     int    // position, 0 for the invoice itself
	What     string
	Stored   string
	Expected string
}

func (d Difference) String() string {
	where := d.Invoice
	if d.Line > 0 {
		where += fmt.Sprintf(" line %d", d.Line)
	}
	return fmt.Sprintf("%s: %s: stored %s, expected %s", where, d.What, d.Stored, d.Expected)
}

// Reconciliation is the report of Reconcile.
type Reconciliation struct {
	Period       string
	Invoices     int
	Records      int64
	SupportItems int64
	StoredNet    decimal.Decimal
	Differences  []Difference
	// Pending counts billable records delivered in the period that no
	// invoice claimed yet (late arrivals for the next run): not an error.
	Pending int64
}

// OK reports whether nothing differs.
func (r *Reconciliation) OK() bool { return len(r.Differences) == 0 }

// reconcileSteps re-rate every ledger record on the period's invoices in
// plain SQL, without the Go rating code: they select each invoice's
// records from its claim with an anti-join on the provider's earlier claims
// (not the rectangles the run computes), recompute each record's month and
// position from scratch (units of the same provider, kind and month that
// earlier claims cover come first), find the version valid at
// delivery, price the record by the tier that contains its position, and
// match it to the stored line whose range contains that position. Each
// step is a temporary table with fresh statistics, so the planner sees
// real row counts at every size.
var reconcileSteps = []string{`
CREATE TEMP TABLE rc_claims ON COMMIT DROP AS
SELECT c.id AS claim_id, c.invoice_id, c.provider_id, c.high_id, c.ends_at,
       (SELECT COALESCE(max(e.floor_id), 0) FROM ledger_claims e WHERE e.provider_id = c.provider_id AND e.id < c.id) AS floor_id
FROM ledger_claims c JOIN invoices i ON i.id = c.invoice_id
WHERE i.period = @period AND i.doc_type = 'invoice' AND i.status <> 'discarded'`,
	`ANALYZE rc_claims`, `
CREATE TEMP TABLE rc_rec ON COMMIT DROP AS
SELECT l.id, c.invoice_id, c.claim_id, l.provider_id, l.kind, l.delivered_at,
       to_char(l.delivered_at AT TIME ZONE @tz, 'YYYY-MM') AS month
FROM rc_claims c
JOIN delivery_ledger l ON l.provider_id = c.provider_id AND l.id <= c.high_id AND l.delivered_at < c.ends_at AND l.id >= c.floor_id
WHERE NOT EXISTS (SELECT 1 FROM ledger_claims e WHERE e.provider_id = c.provider_id AND e.id < c.claim_id
                  AND l.id <= e.high_id AND l.delivered_at < e.ends_at)`,
	`ANALYZE rc_rec`, `
CREATE TEMP TABLE rc_earlier ON COMMIT DROP AS
WITH g AS MATERIALIZED (
    SELECT DISTINCT invoice_id, claim_id, provider_id, kind, month,
           to_date(month, 'YYYY-MM')::timestamp AT TIME ZONE @tz AS lo,
           (to_date(month, 'YYYY-MM') + interval '1 month')::timestamp AT TIME ZONE @tz AS hi
    FROM rc_rec
)
SELECT g.invoice_id, g.kind, g.month,
       CASE WHEN EXISTS (SELECT 1 FROM ledger_claims e WHERE e.provider_id = g.provider_id AND e.id < g.claim_id AND e.ends_at > g.lo)
       THEN (SELECT count(*) FROM delivery_ledger x
             WHERE x.provider_id = g.provider_id AND x.kind = g.kind AND x.delivered_at >= g.lo AND x.delivered_at < g.hi
               AND EXISTS (SELECT 1 FROM ledger_claims e WHERE e.provider_id = g.provider_id AND e.id < g.claim_id
                           AND x.id <= e.high_id AND x.delivered_at < e.ends_at))
       ELSE 0 END AS n
FROM g`,
	`ANALYZE rc_earlier`, `
CREATE TEMP TABLE rc_versions ON COMMIT DROP AS
SELECT id, valid_from, lead(valid_from) OVER (ORDER BY valid_from) AS valid_to FROM price_list_versions`,
	`ANALYZE rc_versions`, `
CREATE TEMP TABLE rc_priced ON COMMIT DROP AS
WITH ranked AS (
    SELECT r.*, e.n + row_number() OVER (PARTITION BY r.invoice_id, r.kind, r.month ORDER BY r.delivered_at, r.id) AS pos,
           CASE r.kind WHEN 'pull' THEN 'telematics' ELSE 'push' END AS item
    FROM rc_rec r JOIN rc_earlier e ON e.invoice_id = r.invoice_id AND e.kind = r.kind AND e.month = r.month
), versioned AS (
    SELECT r.*, v.id AS version_id
    FROM ranked r LEFT JOIN rc_versions v ON r.delivered_at >= v.valid_from AND (v.valid_to IS NULL OR r.delivered_at < v.valid_to)
)
SELECT r.*, pi.unit_price
FROM versioned r
LEFT JOIN price_list_items pi ON pi.version_id = r.version_id AND pi.item = r.item
     AND r.pos >= pi.tier_from AND (pi.tier_to IS NULL OR r.pos <= pi.tier_to)`,
	`ANALYZE rc_priced`, `
CREATE TEMP TABLE rc_matched ON COMMIT DROP AS
SELECT p.id, p.invoice_id, p.unit_price, p.pos, p.month, li.id AS line_id
FROM rc_priced p
LEFT JOIN invoice_lines li ON li.invoice_id = p.invoice_id AND li.item = p.item AND li.service_period = p.month
     AND p.pos BETWEEN li.tier_from AND li.tier_to`,
	`ANALYZE rc_matched`,
}

func docName(number *string, id int64) string {
	if number != nil {
		return *number
	}
	return fmt.Sprintf("draft #%d", id)
}

// Reconcile re-rates period independently in SQL and lists every
// difference to the stored invoices (lines, totals, VAT), every ledger
// record that is not in exactly one line, and every support line whose
// items price differently.
func (s *Service) Reconcile(ctx context.Context, period string) (*Reconciliation, error) {
	p, err := ParsePeriod(period, s.loc())
	if err != nil {
		return nil, err
	}
	rep := &Reconciliation{Period: p.String()}
	// One repeatable-read transaction: every step sees the same snapshot.
	err = s.DB.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		return s.reconcile(db, p, rep)
	}, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

func (s *Service) reconcile(db *gorm.DB, p Period, rep *Reconciliation) error {
	args := []any{sql.Named("period", p.String()), sql.Named("tz", s.loc().String())}
	for _, step := range reconcileSteps {
		var stepArgs []any
		if strings.Contains(step, "@") {
			stepArgs = args
		}
		if err := db.Exec(step, stepArgs...).Error; err != nil {
			return errs.Wrap(err, "reconcile: re-rate")
		}
	}
	add := func(inv string, line int, what, stored, expected string) {
		rep.Differences = append(rep.Differences, Difference{Invoice: inv, Line: line, What: what, Stored: stored, Expected: expected})
	}

	// Usage lines against the re-rated records.
	var lines []struct {
		ID, InvoiceID                  int64
		Number                         *string
		Position                       int
		Quantity, UnitPrice, NetAmount decimal.Decimal
		ExpQty                         int64
		ExpAmount                      decimal.Decimal
		NPrices                        int64
		ExpPrice                       decimal.NullDecimal
		Unpriced                       int64
	}
	err := db.Raw(`
WITH agg AS MATERIALIZED (
    SELECT line_id, count(*) AS exp_qty, round(COALESCE(sum(unit_price), 0), 2) AS exp_amount,
           count(DISTINCT unit_price) AS n_prices, min(unit_price) AS exp_price,
           count(*) FILTER (WHERE unit_price IS NULL) AS unpriced
    FROM rc_matched WHERE line_id IS NOT NULL GROUP BY line_id
)
SELECT li.id, li.invoice_id, i.number, li.position, li.quantity, li.unit_price, li.net_amount,
       COALESCE(agg.exp_qty, 0) AS exp_qty, COALESCE(agg.exp_amount, 0) AS exp_amount, COALESCE(agg.n_prices, 0) AS n_prices,
       agg.exp_price, COALESCE(agg.unpriced, 0) AS unpriced
FROM invoice_lines li JOIN invoices i ON i.id = li.invoice_id
LEFT JOIN agg ON agg.line_id = li.id
WHERE i.period = @period AND i.doc_type = 'invoice' AND i.status <> 'discarded' AND li.item IN ('telematics','push')
ORDER BY li.invoice_id, li.position`, args...).Scan(&lines).Error
	if err != nil {
		return errs.Wrap(err, "reconcile usage lines")
	}
	for _, l := range lines {
		name := docName(l.Number, l.InvoiceID)
		if !l.Quantity.Equal(decimal.NewFromInt(l.ExpQty)) {
			add(name, l.Position, "quantity", l.Quantity.String(), fmt.Sprint(l.ExpQty))
		}
		if l.Unpriced > 0 {
			add(name, l.Position, "records without a price", "-", fmt.Sprintf("%d records have no valid tier", l.Unpriced))
		}
		if l.NPrices > 1 {
			add(name, l.Position, "unit price", l.UnitPrice.String(), fmt.Sprintf("%d different tier prices", l.NPrices))
		} else if l.ExpPrice.Valid && !l.ExpPrice.Decimal.Equal(l.UnitPrice) {
			add(name, l.Position, "unit price", l.UnitPrice.String(), l.ExpPrice.Decimal.String())
		}
		if !l.NetAmount.Equal(l.ExpAmount) {
			add(name, l.Position, "net amount", l.NetAmount.StringFixed(2), l.ExpAmount.StringFixed(2))
		}
	}

	// Every record in exactly one line.
	var recs []struct {
		ID        int64
		InvoiceID int64
		Number    *string
		Lines     int64
	}
	err = db.Raw(`
WITH per AS MATERIALIZED (
    SELECT id, invoice_id, count(line_id) AS lines FROM rc_matched GROUP BY id, invoice_id
)
SELECT per.id, per.invoice_id, (SELECT number FROM invoices WHERE id = per.invoice_id) AS number, per.lines
FROM per WHERE per.lines <> 1
ORDER BY per.id LIMIT 50`).Scan(&recs).Error
	if err != nil {
		return errs.Wrap(err, "reconcile records")
	}
	for _, r := range recs {
		add(docName(r.Number, r.InvoiceID), 0, fmt.Sprintf("ledger record %d lines", r.ID), fmt.Sprint(r.Lines), "exactly 1")
	}
	if err := db.Raw(`SELECT count(*) FROM rc_rec`).Scan(&rep.Records).Error; err != nil {
		return errs.Wrap(err, "reconcile count")
	}

	// Support lines against their items, re-priced from the price list.
	var support []struct {
		InvoiceID           int64
		Number              *string
		Position            int
		Item                string
		Quantity, NetAmount decimal.Decimal
		Items               int64
		ExpQty              int64
		ExpAmount           decimal.NullDecimal
		Versions            int64
	}
	err = db.Raw(`
WITH v AS (
    SELECT id, valid_from, lead(valid_from) OVER (ORDER BY valid_from) AS valid_to FROM price_list_versions
), inv AS MATERIALIZED (
    SELECT id FROM invoices WHERE period = @period AND doc_type = 'invoice' AND status <> 'discarded'
), it AS (
    SELECT s.*, (SELECT v.id FROM v WHERE s.occurred_at >= v.valid_from AND (v.valid_to IS NULL OR s.occurred_at < v.valid_to)) AS version_id
    FROM billing_support_items s JOIN inv ON inv.id = s.invoice_id
), g AS (
    SELECT li.id, li.invoice_id, li.position, li.item, li.quantity, li.net_amount, count(it.id) AS items,
           count(DISTINCT it.version_id) AS versions,
           CASE li.item WHEN 'support_time' THEN ceil(COALESCE(sum(it.minutes), 0) / 15.0)::bigint ELSE count(it.id) END AS exp_qty,
           min(it.version_id) AS version_id, min(it.priority) AS priority
    FROM invoice_lines li JOIN inv ON inv.id = li.invoice_id
    LEFT JOIN it ON it.invoice_line_id = li.id
    WHERE li.item IN ('support_case','support_time')
    GROUP BY li.id
)
SELECT g.invoice_id, i.number, g.position, g.item, g.quantity, g.net_amount, g.items, g.exp_qty, g.versions,
       round(g.exp_qty * (SELECT pi.unit_price FROM price_list_items pi WHERE pi.version_id = g.version_id AND pi.item = g.item
                           AND (g.item <> 'support_case' OR pi.priority = g.priority)), 2) AS exp_amount
FROM g JOIN invoices i ON i.id = g.invoice_id ORDER BY g.invoice_id, g.position`, args...).Scan(&support).Error
	if err != nil {
		return errs.Wrap(err, "reconcile support lines")
	}
	for _, l := range support {
		name := docName(l.Number, l.InvoiceID)
		rep.SupportItems += l.Items
		if l.Items == 0 {
			add(name, l.Position, "support items", "0", "at least 1")
			continue
		}
		if !l.Quantity.Equal(decimal.NewFromInt(l.ExpQty)) {
			add(name, l.Position, "quantity", l.Quantity.String(), fmt.Sprint(l.ExpQty))
		}
		if l.Versions != 1 || !l.ExpAmount.Valid {
			add(name, l.Position, "support price", l.NetAmount.StringFixed(2), "no single valid price")
		} else if !l.NetAmount.Equal(l.ExpAmount.Decimal) {
			add(name, l.Position, "net amount", l.NetAmount.StringFixed(2), l.ExpAmount.Decimal.StringFixed(2))
		}
	}
	var orphans int64
	if err := db.Raw(`SELECT count(*) FROM billing_support_items s JOIN invoices i ON i.id = s.invoice_id
		LEFT JOIN invoice_lines li ON li.id = s.invoice_line_id
		WHERE i.period = @period AND i.status <> 'discarded' AND (li.id IS NULL OR li.invoice_id <> s.invoice_id)`, args...).Scan(&orphans).Error; err != nil {
		return errs.Wrap(err, "reconcile support items")
	}
	if orphans > 0 {
		add("period "+p.String(), 0, "support items not on a line of their invoice", fmt.Sprint(orphans), "0")
	}

	// Manual and credit lines, and every document's totals and VAT.
	var docs []struct {
		ID                                      int64
		Number                                  *string
		TaxCategory                             string
		TaxRate, NetTotal, TaxTotal, GrossTotal decimal.Decimal
		LineSum                                 decimal.Decimal
		BadLines                                int64
		FirstBad                                *int
	}
	err = db.Raw(`
SELECT i.id, i.number, i.tax_category, i.tax_rate, i.net_total, i.tax_total, i.gross_total,
       COALESCE(sum(li.net_amount), 0) AS line_sum,
       count(li.id) FILTER (WHERE li.item IN ('manual','credit') AND li.net_amount <> round(li.quantity * li.unit_price, 2)) AS bad_lines,
       min(li.position) FILTER (WHERE li.item IN ('manual','credit') AND li.net_amount <> round(li.quantity * li.unit_price, 2)) AS first_bad
FROM invoices i LEFT JOIN invoice_lines li ON li.invoice_id = i.id
WHERE i.period = @period AND i.status <> 'discarded'
GROUP BY i.id ORDER BY i.id`, args...).Scan(&docs).Error
	if err != nil {
		return errs.Wrap(err, "reconcile totals")
	}
	for _, d := range docs {
		name := docName(d.Number, d.ID)
		rep.Invoices++
		rep.StoredNet = rep.StoredNet.Add(d.NetTotal)
		if d.BadLines > 0 {
			add(name, derefInt(d.FirstBad), "manual line amount", fmt.Sprintf("%d line(s)", d.BadLines), "quantity × price, rounded")
		}
		if !d.NetTotal.Equal(d.LineSum) {
			add(name, 0, "net total", d.NetTotal.StringFixed(2), d.LineSum.StringFixed(2))
		}
		wantRate, known := map[string]decimal.Decimal{"S": decimal.NewFromInt(19), "AE": decimal.Zero, "O": decimal.Zero}[d.TaxCategory]
		if d.Number != nil && !known {
			add(name, 0, "VAT category", d.TaxCategory, "S, AE or O")
		}
		if known && !d.TaxRate.Equal(wantRate) {
			add(name, 0, "VAT rate", d.TaxRate.String(), wantRate.String())
		}
		expTax := d.LineSum.Mul(wantRate).Div(decimal.NewFromInt(100)).Round(2)
		if known && !d.TaxTotal.Equal(expTax) {
			add(name, 0, "VAT amount", d.TaxTotal.StringFixed(2), expTax.StringFixed(2))
		}
		if !d.GrossTotal.Equal(d.NetTotal.Add(d.TaxTotal)) {
			add(name, 0, "gross total", d.GrossTotal.StringFixed(2), d.NetTotal.Add(d.TaxTotal).StringFixed(2))
		}
	}
	if err := db.Raw(`SELECT count(*) FROM delivery_ledger l WHERE l.delivered_at >= ? AND l.delivered_at < ?
		AND NOT EXISTS (SELECT 1 FROM ledger_claims e WHERE e.provider_id = l.provider_id AND l.id <= e.high_id AND l.delivered_at < e.ends_at)`,
		p.Start, p.End).Scan(&rep.Pending).Error; err != nil {
		return errs.Wrap(err, "reconcile pending")
	}
	return nil
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
