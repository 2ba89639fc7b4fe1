package billing

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"cardata/onboarding/catalog"
	"cardata/policies/errs"
	"cardata/policies/listsort"
	"cardata/policies/sqlarray"
)

// The ledger's reads. Billing owns the delivery ledger: the provider's
// delivery list (API, portal, staff pages), the month's usage, the
// transfers of the customer's transaction report and the keys the data
// report lists are all read here; no other package names the table.

// DeliveredKey is one catalog key whose value a delivery carried, named for
// people: the catalog has no separate short label, so Label is the key's
// English description (LabelDE the German one) and Key the raw dotted name
// for experts.
type DeliveredKey struct {
	ID      int16  `json:"id"`
	Key     string `json:"key"`
	Label   string `json:"label"`
	LabelDE string `json:"labelDe"`
}

// KeysNotRecorded is what every view says for a record written before the
// ledger named its keys.
const KeysNotRecorded = "keys not recorded"

// NameKeys names key ids with the catalog. nil (keys unknown) stays nil; an
// id the catalog does not know (it never drops ids) is shown as such.
func NameKeys(ids []int16) []DeliveredKey {
	if ids == nil {
		return nil
	}
	cat := catalog.Default()
	out := make([]DeliveredKey, 0, len(ids))
	for _, id := range ids {
		k := DeliveredKey{ID: id, Key: "#" + strconv.Itoa(int(id)), Label: "key not in the catalog", LabelDE: "Schlüssel nicht im Katalog"}
		if ck, ok := cat.ByID(id); ok {
			k.Key, k.Label, k.LabelDE = ck.Name, ck.DescriptionEN, ck.DescriptionDE
		}
		out = append(out, k)
	}
	return out
}

// Keys names the record's keys; nil when they were not recorded.
func (r LedgerRecord) Keys() []DeliveredKey { return NameKeys(r.KeyIDs) }

// LedgerEntry is one ledger record as its provider sees it (the read view
// the API, the portal and the staff pages share).
type LedgerEntry struct {
	ID               int64   `json:"id"`
	Kind             string  `json:"kind"` // pull (API response) or push
	ClientID         *string `json:"clientId"`
	VIN              string  `gorm:"column:vin" json:"vin"`
	ContainerID      int64   `json:"containerId"`
	ContainerVersion int     `json:"containerVersion"`
	ConsentID        int64   `json:"consentId"`
	KeysDelivered    int     `json:"keysDelivered"`
	// KeysKnown is false for records written before the ledger named its
	// keys; Keys is then null (never guessed from the container).
	KeysKnown bool            `gorm:"-" json:"keysKnown"`
	Keys      []DeliveredKey  `gorm:"-" json:"keys"`
	KeyIDs    sqlarray.Int16s `gorm:"column:key_ids" json:"-"`
	// EventID and EventType name the push event a push carried.
	EventID     *string   `json:"eventId"`
	EventType   *string   `json:"eventType"`
	Bytes       int64     `json:"bytes"`
	RequestID   string    `json:"deliveryId"`
	DeliveredAt time.Time `json:"deliveredAt"`
	Invoiced    bool      `json:"invoiced"`
}

// LedgerFilter selects a provider's records in [From, To), newest first
// (Oldest: oldest first, the order to follow the ledger incrementally).
type LedgerFilter struct {
	From, To time.Time
	Kind     string // "", pull or push
	VIN      string
	Cursor   string // opaque, from the previous page (of the same order)
	Limit    int
	Oldest   bool
}

// MaxLedgerPage is the most records one page holds.
const MaxLedgerPage = 500

// EncodeCursor and DecodeCursor make the page position opaque to clients:
// the last record's id and the order it was read in ("l" oldest first,
// "n" newest first), so a cursor of one order is refused by the other.
func EncodeCursor(id int64, oldest bool) string {
	prefix := "n"
	if oldest {
		prefix = "l"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(prefix + strconv.FormatInt(id, 10)))
}

// DecodeCursor reads a cursor of the given order ("" is the first page: 0);
// a broken one, or one of the other order, is a 400.
func DecodeCursor(s string, oldest bool) (int64, error) {
	if s == "" {
		return 0, nil
	}
	prefix := byte('n')
	if oldest {
		prefix = 'l'
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) > 1 && b[0] == prefix {
		if id, err := strconv.ParseInt(string(b[1:]), 10, 64); err == nil && id >= 0 {
			return id, nil
		}
	}
	return 0, errs.New(errs.BadRequest, "cursor_invalid", "the cursor is not one this API returned (for this sort)")
}

// LedgerFilterFromQuery reads a ledger page's query for the staff and
// portal pages (from, to as dates or RFC 3339 times, a date "to" meaning
// the end of that day; cursor; kind): bad input is a 422, never a 500.
// get returns a query parameter ("" when absent).
func LedgerFilterFromQuery(get func(string) string, now time.Time, loc *time.Location) (LedgerFilter, error) {
	var v errs.Validation
	f := LedgerFilter{To: now.Add(time.Second), Cursor: get("cursor"), Kind: get("kind"), Limit: 100}
	f.From = f.To.AddDate(0, 0, -30)
	parse := func(field string, dst *time.Time, endOfDay bool) {
		s := get(field)
		if s == "" {
			return
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			*dst = t
			return
		}
		t, err := time.ParseInLocation("2006-01-02", s, loc)
		if err != nil {
			v.Add(field, "time_invalid", "%s must be a date like 2026-10-01", errs.Term(field))
			return
		}
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		*dst = t
	}
	parse("from", &f.From, false)
	parse("to", &f.To, true)
	if len(v.Fields) == 0 && !f.From.Before(f.To) {
		v.Add("to", "range_invalid", "to must be after from")
	}
	if f.Kind != "" && f.Kind != KindPull && f.Kind != KindPush {
		v.Add("kind", "kind_invalid", "kind is pull or push")
	}
	return f, v.Err()
}

// FindLedger pages through a provider's ledger records ordered by id (the
// order they were recorded), newest first unless f.Oldest; next is "" on
// the last page. Records are committed in groups, so a page ending at "now"
// may later gain records with a smaller time; ask for ranges that ended a
// few seconds ago.
func (s *Service) FindLedger(ctx context.Context, providerID int64, f LedgerFilter) (out []LedgerEntry, next string, err error) {
	return s.findEntries(ctx, "delivery_ledger", providerID, f)
}

// findEntries is FindLedger on table: delivery_ledger, or
// sandbox_deliveries (never invoiced).
func (s *Service) findEntries(ctx context.Context, table string, providerID int64, f LedgerFilter) (out []LedgerEntry, next string, err error) {
	at, err := DecodeCursor(f.Cursor, f.Oldest)
	if err != nil {
		return nil, "", err
	}
	if f.Limit <= 0 || f.Limit > MaxLedgerPage {
		f.Limit = 100
	}
	q, args := ledgerSQL(table, providerID, f, at)
	if f.Oldest {
		q += " ORDER BY l.id LIMIT ?"
	} else {
		q += " ORDER BY l.id DESC LIMIT ?"
	}
	args = append(args, f.Limit+1)
	if err := s.DB.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, "", errs.Wrap(err, "list ledger")
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = EncodeCursor(out[len(out)-1].ID, f.Oldest)
	}
	if out == nil {
		out = []LedgerEntry{}
	}
	for i := range out {
		out[i].KeysKnown = out[i].KeyIDs != nil
		out[i].Keys = NameKeys(out[i].KeyIDs)
	}
	return out, next, nil
}

// Usage is a provider's billable usage in one month so far, priced under
// the published price list the way the invoice run will price it.
type Usage struct {
	Period   string          `json:"period"`
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	AsOf     time.Time       `json:"asOf"`
	Currency string          `json:"currency"`
	Items    []UsageItem     `json:"items"`
	Total    decimal.Decimal `json:"total"`
	Note     string          `json:"note"`
}

// UsageItem is one billable item (telematics deliveries, pushes).
type UsageItem struct {
	Item   string          `json:"item"`
	Label  string          `json:"label"`
	Count  int64           `json:"count"`
	Amount decimal.Decimal `json:"amount"`
	Tiers  []UsageTier     `json:"tiers"`
	// Unpriced counts units no price list version covers (the invoice run
	// refuses then; finance has to publish a price list).
	Unpriced int64 `json:"unpriced"`
}

// UsageTier is the part of the count that falls into one price tier.
type UsageTier struct {
	From      int64           `json:"from"`
	To        int64           `json:"to"`
	Quantity  int64           `json:"quantity"`
	UnitPrice decimal.Decimal `json:"unitPrice"`
	Amount    decimal.Decimal `json:"amount"`
}

type ledgerUsageGroup struct {
	Kind      string
	VersionID *int64
	N         int64
}

// Usage prices a provider's month so far with the price list and graduated
// rating, counting units in delivery order and pricing each under the
// version valid when it was delivered, as the invoice run does. period is
// "YYYY-MM"; "" is the current month in the billing time zone.
func (s *Service) Usage(ctx context.Context, providerID int64, period string) (*Usage, error) {
	now := s.now()
	p := PeriodOf(now, s.loc())
	if period != "" {
		var err error
		if p, err = ParsePeriod(period, s.loc()); err != nil {
			return nil, err
		}
	}
	var groups []ledgerUsageGroup
	err := s.DB.WithContext(ctx).Raw(`SELECT l.kind, v.id AS version_id, count(*) AS n
		FROM delivery_ledger l
		LEFT JOIN LATERAL (SELECT id FROM price_list_versions pv WHERE pv.valid_from <= l.delivered_at ORDER BY pv.valid_from DESC LIMIT 1) v ON true
		WHERE l.provider_id = ? AND l.delivered_at >= ? AND l.delivered_at < ?
		GROUP BY l.kind, v.id ORDER BY l.kind, min(l.delivered_at)`, providerID, p.Start, p.End).Scan(&groups).Error
	if err != nil {
		return nil, errs.Wrap(err, "usage counts")
	}
	pl, err := s.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	out := &Usage{Period: p.String(), From: p.Start.UTC(), To: p.End.UTC(), AsOf: now.UTC(), Currency: "EUR", Total: decimal.Zero,
		Note: "Usage so far, priced under the published price list; the invoice for the month is authoritative."}
	for _, kind := range []string{KindPull, KindPush} {
		item := ItemTelematics
		if kind == KindPush {
			item = ItemPush
		}
		ui := UsageItem{Item: string(item), Label: item.ShortLabel(), Amount: decimal.Zero, Tiers: []UsageTier{}}
		var base int64
		for _, g := range groups {
			if g.Kind != kind {
				continue
			}
			ui.Count += g.N
			var ver *Version
			if g.VersionID != nil {
				ver, _ = pl.ByID(*g.VersionID)
			}
			if ver == nil {
				ui.Unpriced += g.N
				base += g.N
				continue
			}
			slices, ok := Graduate(ver.Tiers(item), base, g.N)
			priced := int64(0)
			for _, sl := range slices {
				amt := sl.Amount()
				ui.Tiers = append(ui.Tiers, UsageTier{From: sl.From, To: sl.To, Quantity: sl.Quantity, UnitPrice: sl.UnitPrice, Amount: amt})
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

// Transfers lists the records of the given consents delivered in
// [from, to) (zero times are open), oldest first: the customer's
// transaction report. The ledger has no index on consent_id, so the query
// also names the providers of those consents, which its (provider_id,
// delivered_at) index serves.
func (s *Service) Transfers(ctx context.Context, consentIDs []int64, from, to time.Time) ([]LedgerRecord, error) {
	if len(consentIDs) == 0 {
		return []LedgerRecord{}, nil
	}
	q := `SELECT d.id, d.provider_id, d.client_id, d.vin, d.container_id, d.container_version, d.consent_id, d.kind, d.keys_delivered,
		d.key_ids, d.event_id, d.event_type, d.bytes, d.request_id, d.delivered_at, d.recorded_at
		FROM delivery_ledger d
		WHERE d.provider_id IN (SELECT DISTINCT provider_id FROM consents WHERE id IN ?) AND d.consent_id IN ?`
	args := []any{consentIDs, consentIDs}
	if !from.IsZero() {
		q += " AND d.delivered_at >= ?"
		args = append(args, from.UTC())
	}
	if !to.IsZero() {
		q += " AND d.delivered_at < ?"
		args = append(args, to.UTC())
	}
	var out []LedgerRecord
	err := s.DB.WithContext(ctx).Raw(q+" ORDER BY d.delivered_at, d.id", args...).Scan(&out).Error
	return out, errs.Wrap(err, "read delivery ledger")
}

// SentKey is how often one key of a consent left, and when first and last.
// KeyID 0 stands for the consent's records whose keys were not recorded
// (written before the ledger named them): counted, never named.
type SentKey struct {
	ConsentID  int64
	KeyID      int16
	Deliveries int64
	First      time.Time
	Last       time.Time
}

// SentKeys sums, per consent and key, the deliveries that carried the
// key's value (the data report: which data actually left to whom), plus
// one KeyID 0 row per consent for records with unknown keys.
func (s *Service) SentKeys(ctx context.Context, consentIDs []int64) ([]SentKey, error) {
	if len(consentIDs) == 0 {
		return []SentKey{}, nil
	}
	var out []SentKey
	err := s.DB.WithContext(ctx).Raw(`WITH d AS (
			SELECT consent_id, key_ids, delivered_at FROM delivery_ledger
			WHERE provider_id IN (SELECT DISTINCT provider_id FROM consents WHERE id IN ?) AND consent_id IN ?)
		SELECT consent_id, k.key_id, count(*) AS deliveries, min(delivered_at) AS first, max(delivered_at) AS last
		FROM d CROSS JOIN LATERAL unnest(key_ids) AS k(key_id) GROUP BY consent_id, k.key_id
		UNION ALL
		SELECT consent_id, 0, count(*), min(delivered_at), max(delivered_at) FROM d WHERE key_ids IS NULL GROUP BY consent_id
		ORDER BY 1, 2`, consentIDs, consentIDs).Scan(&out).Error
	for i := range out {
		out[i].First, out[i].Last = out[i].First.UTC(), out[i].Last.UTC()
	}
	return out, errs.Wrap(err, "sent keys")
}

// RequestIDFilter selects ledger records for RequestIDs.
type RequestIDFilter struct {
	ProviderID    int64
	Kind          string
	ClientID      int64     // 0: any
	RecordedSince time.Time // zero: any
	Suffix        string    // "": any
}

// RequestIDs lists the request ids of a provider's records (checks that
// compare what was answered or pushed with what was recorded).
func (s *Service) RequestIDs(ctx context.Context, f RequestIDFilter) ([]string, error) {
	q := `SELECT request_id FROM delivery_ledger WHERE provider_id = ? AND kind = ?`
	args := []any{f.ProviderID, f.Kind}
	if f.ClientID != 0 {
		q += " AND client_id = ?"
		args = append(args, f.ClientID)
	}
	if !f.RecordedSince.IsZero() {
		q += " AND recorded_at >= ?"
		args = append(args, f.RecordedSince)
	}
	if f.Suffix != "" {
		q += " AND request_id LIKE ?"
		args = append(args, "%"+f.Suffix)
	}
	var out []string
	err := s.DB.WithContext(ctx).Raw(q, args...).Scan(&out).Error
	return out, errs.Wrap(err, "ledger request ids")
}

// CountDeliveries counts a provider's records of a kind ("" any).
func (s *Service) CountDeliveries(ctx context.Context, providerID int64, kind string) (int64, error) {
	q := `SELECT count(*) FROM delivery_ledger WHERE provider_id = ?`
	args := []any{providerID}
	if kind != "" {
		q += " AND kind = ?"
		args = append(args, kind)
	}
	var n int64
	err := s.DB.WithContext(ctx).Raw(q, args...).Scan(&n).Error
	return n, errs.Wrap(err, "count deliveries")
}

// Coverage is one provider's records of a kind delivered in a range, and
// how many of them no live (not discarded) invoice's claim covers.
type Coverage struct {
	ProviderID int64
	Kind       string
	Records    int64
	Uncovered  int64
}

// LedgerCoverage counts every provider's records delivered in [from, to)
// by kind, with those no invoice covers (reconciliation checks).
func (s *Service) LedgerCoverage(ctx context.Context, from, to time.Time) ([]Coverage, error) {
	var out []Coverage
	err := s.DB.WithContext(ctx).Raw(`SELECT provider_id, kind, count(*) AS records,
			count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM ledger_claims c JOIN invoices i ON i.id = c.invoice_id
				WHERE c.provider_id = l.provider_id AND l.id <= c.high_id AND l.delivered_at < c.ends_at AND i.status <> 'discarded')) AS uncovered
		FROM delivery_ledger l WHERE delivered_at >= ? AND delivered_at < ? GROUP BY provider_id, kind ORDER BY 1, 2`, from, to).Scan(&out).Error
	return out, errs.Wrap(err, "ledger coverage")
}

// ledgerSQL is the query of a provider's records in table that f selects,
// after the cursor position at (0: from the start), without the order.
func ledgerSQL(table string, providerID int64, f LedgerFilter, at int64) (string, []any) {
	invoiced := `EXISTS (SELECT 1 FROM ledger_claims lc WHERE lc.provider_id = l.provider_id AND lc.invoice_id IS NOT NULL
		           AND l.id <= lc.high_id AND l.delivered_at < lc.ends_at) AS invoiced`
	if table != "delivery_ledger" {
		invoiced = "false AS invoiced" // the sandbox is never billed
	}
	q := `SELECT l.id, l.kind, c.client_id, l.vin, l.container_id, l.container_version, l.consent_id, l.keys_delivered, l.key_ids,
		l.event_id, l.event_type, l.bytes, l.request_id, l.delivered_at, ` + invoiced + `
		FROM ` + table + ` l LEFT JOIN api_clients c ON c.id = l.client_id
		WHERE l.provider_id = ? AND l.delivered_at >= ? AND l.delivered_at < ?`
	args := []any{providerID, f.From, f.To}
	switch {
	case f.Oldest:
		q += " AND l.id > ?"
		args = append(args, at)
	case at > 0:
		q += " AND l.id < ?"
		args = append(args, at)
	}
	if f.Kind != "" {
		q += " AND l.kind = ?"
		args = append(args, f.Kind)
	}
	if f.VIN != "" {
		q += " AND l.vin = ?"
		args = append(args, f.VIN)
	}
	return q, args
}

// EachLedger calls fn for every record of providerID's ledger in f's time
// range (cursor and limit ignored), newest first (Oldest: oldest first),
// reading one at a time: the delivery log's CSV export. The provider is a
// condition of the query.
func (s *Service) EachLedger(ctx context.Context, providerID int64, f LedgerFilter, fn func(*LedgerEntry) error) error {
	q, args := ledgerSQL("delivery_ledger", providerID, f, 0)
	if f.Oldest {
		q += " ORDER BY l.id"
	} else {
		q += " ORDER BY l.id DESC"
	}
	return listsort.Each[LedgerEntry](s.DB.WithContext(ctx).Raw(q, args...), func(e *LedgerEntry) error {
		e.KeysKnown = e.KeyIDs != nil
		e.Keys = NameKeys(e.KeyIDs)
		return fn(e)
	})
}

// LedgerCSVHeader is the column ids of a delivery-log export (staff and
// portal); LedgerEntry.CSVRow gives a record's row.
var LedgerCSVHeader = []string{"delivery_id", "delivered_at", "kind", "client_id", "vin", "container_id", "container_version",
	"consent_id", "values_delivered", "keys", "bytes", "event_id", "event_type", "invoiced"}

// CSVRow is the record's row of a delivery-log export: times RFC 3339 in
// UTC, keys by their catalog names (empty when the record did not name them).
func (e *LedgerEntry) CSVRow() []string {
	keys := make([]string, len(e.Keys))
	for i, k := range e.Keys {
		keys[i] = k.Key
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	invoiced := "no"
	if e.Invoiced {
		invoiced = "yes"
	}
	return []string{e.RequestID, e.DeliveredAt.UTC().Format(time.RFC3339), e.Kind, str(e.ClientID), e.VIN,
		strconv.FormatInt(e.ContainerID, 10), strconv.Itoa(e.ContainerVersion), strconv.FormatInt(e.ConsentID, 10),
		strconv.Itoa(e.KeysDelivered), strings.Join(keys, " "), strconv.FormatInt(e.Bytes, 10), str(e.EventID), str(e.EventType), invoiced}
}
