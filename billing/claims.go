package billing

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// Claim is one row of ledger_claims: an invoice (or a "nothing to bill"
// marker when InvoiceID is nil) covering the provider's ledger records with
// id <= HighID delivered before EndsAt, except those an earlier claim
// (smaller ID) of the provider covers already. Records are never marked:
// which invoice bills a record follows from the claims alone, so a run
// reads every record once and writes one row per provider (migration 00061).
type Claim struct {
	ID         int64 `gorm:"primaryKey"`
	ProviderID int64
	InvoiceID  *int64
	Period     string
	HighID     int64
	EndsAt     time.Time
	FloorID    int64 // every record of the provider with a smaller id is covered by this claim or an earlier one
	CreatedAt  time.Time
}

func (Claim) TableName() string { return "ledger_claims" }

// watermark returns the highest ledger id W such that no record with an id
// up to W can still be committed: it takes a SHARE lock on the ledger,
// which waits for every transaction that is inserting records (they hold
// ROW EXCLUSIVE) and lets new ones start only after its own short
// transaction ends; ids allocated after that are larger than W.
func watermark(ctx context.Context, db *gorm.DB) (int64, error) {
	var w int64
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SET LOCAL lock_timeout = '15s'`).Error; err != nil {
			return err
		}
		if err := tx.Exec(`LOCK TABLE delivery_ledger IN SHARE MODE`).Error; err != nil {
			return err
		}
		return tx.Raw(`SELECT COALESCE(max(id), 0) FROM delivery_ledger`).Scan(&w).Error
	})
	if err != nil {
		return 0, errs.New(errs.Unavailable, "ledger_busy", "the delivery ledger could not be sealed for the run (%v); try again", err)
	}
	return w, nil
}

// rect is a set of ledger records: ids in [lo, hi], delivered in [from, to);
// a zero from is unbounded below.
type rect struct {
	lo, hi   int64
	from, to time.Time
}

// subtractQuadrant removes {id <= w, delivered_at < e} from rs.
func subtractQuadrant(rs []rect, w int64, e time.Time) []rect {
	var out []rect
	for _, r := range rs {
		if r.lo > w || (!r.from.IsZero() && !r.from.Before(e)) {
			out = append(out, r) // disjoint
			continue
		}
		if w < r.hi { // the ids above w keep every time
			out = append(out, rect{lo: w + 1, hi: r.hi, from: r.from, to: r.to})
		}
		if e.Before(r.to) { // the ids up to w keep the times from e on
			out = append(out, rect{lo: r.lo, hi: min(r.hi, w), from: e, to: r.to})
		}
	}
	return out
}

// region is what a new claim (w, end) of a provider bills given its
// existing claims: its quadrant minus theirs, as disjoint rectangles.
func region(prior []Claim, w int64, end time.Time) []rect {
	floor := int64(1)
	for _, c := range prior {
		floor = max(floor, c.FloorID)
	}
	if floor > w {
		return nil
	}
	rs := []rect{{lo: floor, hi: w, to: end}}
	for _, c := range prior {
		rs = subtractQuadrant(rs, c.HighID, c.EndsAt)
	}
	return rs
}

// claimRegion is the region a stored claim bills: its quadrant minus those
// of the provider's claims made before it.
func claimRegion(claims []Claim, c Claim) []rect {
	var prior []Claim
	for _, x := range claims {
		if x.ID < c.ID {
			prior = append(prior, x)
		}
	}
	return region(prior, c.HighID, c.EndsAt)
}

// sqlRects renders rectangles as an SQL predicate on alias l.
func sqlRects(rs []rect) string {
	if len(rs) == 0 {
		return "false"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		p := fmt.Sprintf("(l.id BETWEEN %d AND %d AND l.delivered_at < '%s'", r.lo, r.hi, r.to.UTC().Format(time.RFC3339Nano))
		if !r.from.IsZero() {
			p += fmt.Sprintf(" AND l.delivered_at >= '%s'", r.from.UTC().Format(time.RFC3339Nano))
		}
		parts = append(parts, p+")")
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// providerClaims loads a provider's claims in claim order.
func providerClaims(tx *gorm.DB, providerID int64) ([]Claim, error) {
	var out []Claim
	err := tx.Where("provider_id = ?", providerID).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "ledger claims")
}

// claimState identifies a provider's claims at one moment: any claim made,
// released or remade changes it.
type claimState struct {
	n    int
	last int64
}

func stateOf(cs []Claim) claimState {
	if len(cs) == 0 {
		return claimState{}
	}
	return claimState{n: len(cs), last: cs[len(cs)-1].ID}
}

// buckets splits time for rating: the month starts (Berlin) from first's
// month to end, and every price list version start in between, so a bucket
// lies in one month under one version.
type buckets struct {
	bounds []time.Time
	sp     []string
	ver    []*int64
}

func (s *Service) makeBuckets(first, end time.Time, pl PriceList) buckets {
	loc := s.loc()
	seen := map[int64]bool{}
	var ts []time.Time
	add := func(t time.Time) {
		if !seen[t.UnixNano()] {
			seen[t.UnixNano()] = true
			ts = append(ts, t)
		}
	}
	if !first.Before(end) {
		first = end.Add(-time.Hour)
	}
	start := PeriodOf(first, loc).Start
	for p := PeriodOf(first, loc); p.Start.Before(end); p = p.Next() {
		add(p.Start)
	}
	add(end)
	for _, v := range pl {
		if v.ValidFrom.After(start) && v.ValidFrom.Before(end) {
			add(v.ValidFrom)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	b := buckets{bounds: ts}
	for _, t := range ts[:len(ts)-1] {
		b.sp = append(b.sp, PeriodOf(t, loc).String())
		if v, ok := pl.At(t); ok {
			id := v.ID
			b.ver = append(b.ver, &id)
		} else {
			b.ver = append(b.ver, nil)
		}
	}
	return b
}

// array renders the bounds as a PostgreSQL timestamptz[] literal.
func (b buckets) array() string {
	parts := make([]string, len(b.bounds))
	for i, t := range b.bounds {
		parts[i] = `"` + t.UTC().Format(time.RFC3339Nano) + `"`
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// usageRow is a count of records of one provider, kind, month, price list
// version and container version.
type usageRow struct {
	ProviderID       int64
	Kind             string
	Bucket           int
	ContainerID      int64
	ContainerVersion int
	N                int64
	ServicePeriod    string `gorm:"-"`
	VersionID        *int64 `gorm:"-"`
}

const usageSelect = `SELECT l.provider_id, l.kind, width_bucket(l.delivered_at, CAST(@bounds AS timestamptz[])) AS bucket,
       l.container_id, l.container_version, count(*) AS n
FROM delivery_ledger l
WHERE `

// scanUsage runs a usage query and resolves the buckets; f gets each row.
func scanUsage(db *gorm.DB, b buckets, q string, args []any, f func(usageRow)) error {
	args = append(args, sql.Named("bounds", b.array()))
	rows, err := db.Raw(q, args...).Rows()
	if err != nil {
		return errs.Wrap(err, "usage")
	}
	defer rows.Close()
	for rows.Next() {
		var r usageRow
		if err := rows.Scan(&r.ProviderID, &r.Kind, &r.Bucket, &r.ContainerID, &r.ContainerVersion, &r.N); err != nil {
			return errs.Wrap(err, "usage row")
		}
		if r.Bucket < 1 || r.Bucket > len(b.sp) {
			return errs.Wrap(fmt.Errorf("provider %d: a record outside the rating buckets (%d)", r.ProviderID, r.Bucket), "usage buckets")
		}
		r.ServicePeriod, r.VersionID = b.sp[r.Bucket-1], b.ver[r.Bucket-1]
		f(r)
	}
	return errs.Wrap(rows.Err(), "usage rows")
}

// bucketOf is the index of the bucket holding t, or -1.
func (b buckets) bucketOf(t time.Time) int {
	i := sort.Search(len(b.bounds), func(i int) bool { return b.bounds[i].After(t) }) - 1
	if i < 0 || i >= len(b.sp) {
		return -1
	}
	return i
}

// scanPeriod counts usage in one pass for a group of providers, grouped by
// provider, kind and container version only, so that PostgreSQL runs it
// as a parallel aggregate like the bare count it is measured against (a
// computed bucket in the GROUP BY makes it assume one group per record and
// give up parallelism). The buckets from start on (the period, split at
// price list changes) are counted with FILTER; the records before start
// (late arrivals) are counted with their first and last delivery: when
// both fall into one bucket that is their bucket, otherwise the provider
// is returned in exact to be counted on its own.
func scanPeriod(db *gorm.DB, b buckets, start time.Time, where string, args []any, f func(usageRow)) (exact map[int64]bool, err error) {
	ts := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'" }
	var cur []int
	for i := range b.sp {
		if !b.bounds[i].Before(start) {
			cur = append(cur, i)
		}
	}
	q := `SELECT l.provider_id, l.kind, l.container_id, l.container_version`
	for _, i := range cur {
		q += fmt.Sprintf(", count(*) FILTER (WHERE l.delivered_at >= %s AND l.delivered_at < %s)", ts(b.bounds[i]), ts(b.bounds[i+1]))
	}
	q += fmt.Sprintf(`, count(*) FILTER (WHERE l.delivered_at < %[1]s), min(l.delivered_at) FILTER (WHERE l.delivered_at < %[1]s),
		max(l.delivered_at) FILTER (WHERE l.delivered_at < %[1]s)
		FROM delivery_ledger l WHERE %s GROUP BY 1, 2, 3, 4`, ts(start), where)
	rows, err := db.Raw(q, args...).Rows()
	if err != nil {
		return nil, errs.Wrap(err, "usage")
	}
	defer rows.Close()
	exact = map[int64]bool{}
	counts := make([]int64, len(cur))
	for rows.Next() {
		var r usageRow
		var older int64
		var oMin, oMax sql.NullTime
		dest := []any{&r.ProviderID, &r.Kind, &r.ContainerID, &r.ContainerVersion}
		for k := range counts {
			dest = append(dest, &counts[k])
		}
		dest = append(dest, &older, &oMin, &oMax)
		if err := rows.Scan(dest...); err != nil {
			return nil, errs.Wrap(err, "usage row")
		}
		emit := func(i int, n int64) {
			if n > 0 {
				x := r
				x.Bucket, x.N, x.ServicePeriod, x.VersionID = i+1, n, b.sp[i], b.ver[i]
				f(x)
			}
		}
		for k, i := range cur {
			emit(i, counts[k])
		}
		if older > 0 {
			lo, hi := b.bucketOf(oMin.Time), b.bucketOf(oMax.Time)
			if lo < 0 || lo != hi {
				exact[r.ProviderID] = true
				continue
			}
			emit(lo, older)
		}
	}
	return exact, errs.Wrap(rows.Err(), "usage rows")
}

// providerUsage counts what a new claim (w, end) of one provider bills.
func (s *Service) providerUsage(tx *gorm.DB, providerID int64, prior []Claim, w int64, end time.Time, pl PriceList) ([]usageRow, error) {
	rs := region(prior, w, end)
	if len(rs) == 0 {
		return nil, nil
	}
	var first sql.NullTime
	if err := tx.Raw(`SELECT min(delivered_at) FROM delivery_ledger WHERE provider_id = ?`, providerID).Scan(&first).Error; err != nil {
		return nil, errs.Wrap(err, "first delivery")
	}
	if !first.Valid {
		return nil, nil
	}
	var out []usageRow
	err := scanUsage(tx, s.makeBuckets(first.Time, end, pl), usageSelect+`l.provider_id = @provider AND `+sqlRects(rs)+` GROUP BY 1, 2, 3, 4, 5`,
		[]any{sql.Named("provider", providerID)}, func(r usageRow) { out = append(out, r) })
	return out, err
}

// floorAfter is the floor of a claim (w, end): the smallest id up to w of a
// record delivered from end on, or w+1.
func floorAfter(tx *gorm.DB, providerID, w int64, end time.Time) (int64, error) {
	var f sql.NullInt64
	err := tx.Raw(`SELECT min(id) FROM delivery_ledger WHERE provider_id = ? AND delivered_at >= ? AND id <= ?`, providerID, end, w).Scan(&f).Error
	if err != nil {
		return 0, errs.Wrap(err, "claim floor")
	}
	if f.Valid {
		return f.Int64, nil
	}
	return w + 1, nil
}

// billedBefore sums the units of kind and month that live invoices of the
// provider billed so far, keyed kind|month: the next unit's position.
func billedBefore(tx *gorm.DB, providerIDs []int64) (map[int64]map[string]int64, error) {
	var rows []struct {
		ProviderID    int64
		Item          string
		ServicePeriod string
		N             int64
	}
	q := `SELECT i.provider_id, d.item, d.service_period, sum(d.quantity) AS n
		FROM invoice_usage_details d JOIN invoices i ON i.id = d.invoice_id
		WHERE i.doc_type = 'invoice' AND i.status <> 'discarded'`
	var args []any
	if providerIDs != nil {
		q += ` AND i.provider_id = ANY (?::bigint[])`
		args = append(args, sqlarray.Int64s(providerIDs))
	}
	if err := tx.Raw(q+` GROUP BY 1, 2, 3`, args...).Scan(&rows).Error; err != nil {
		return nil, errs.Wrap(err, "units billed before")
	}
	out := map[int64]map[string]int64{}
	for _, r := range rows {
		if out[r.ProviderID] == nil {
			out[r.ProviderID] = map[string]int64{}
		}
		out[r.ProviderID][kindOf(Item(r.Item))+"|"+r.ServicePeriod] = r.N
	}
	return out, nil
}

func kindOf(item Item) string {
	if item == ItemPush {
		return KindPush
	}
	return KindPull
}

func itemOf(kind string) Item {
	if kind == KindPush {
		return ItemPush
	}
	return ItemTelematics
}
