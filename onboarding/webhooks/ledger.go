package webhooks

import (
	"context"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// LedgerEntry is one delivery-ledger record as its provider sees it (the
// ledger itself is billing's table; this is the read view the API, the
// portal and the staff pages share).
type LedgerEntry struct {
	ID               int64     `json:"id"`
	Kind             string    `json:"kind"` // pull (API response) or push
	ClientID         *string   `json:"clientId"`
	VIN              string    `gorm:"column:vin" json:"vin"`
	ContainerID      int64     `json:"containerId"`
	ContainerVersion int       `json:"containerVersion"`
	ConsentID        int64     `json:"consentId"`
	KeysDelivered    int       `json:"keysDelivered"`
	Bytes            int64     `json:"bytes"`
	RequestID        string    `json:"deliveryId"`
	DeliveredAt      time.Time `json:"deliveredAt"`
	Invoiced         bool      `json:"invoiced"`
}

// LedgerFilter selects a provider's records in [From, To), oldest first.
type LedgerFilter struct {
	From, To time.Time
	Kind     string // "", pull or push
	VIN      string
	Cursor   string // opaque, from the previous page
	Limit    int
}

// EncodeCursor and DecodeCursor make the page position opaque to clients.
func EncodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("l" + strconv.FormatInt(id, 10)))
}

// DecodeCursor reads a cursor; a broken one is a 400.
func DecodeCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) > 1 && b[0] == 'l' {
		if id, err := strconv.ParseInt(string(b[1:]), 10, 64); err == nil && id >= 0 {
			return id, nil
		}
	}
	return 0, errs.New(errs.BadRequest, "cursor_invalid", "the cursor is not one this API returned")
}

// FindLedger pages through a provider's ledger records ordered by id (the
// order they were recorded); next is "" on the last page. Records are
// committed in groups, so a page ending at "now" may later gain records
// with a smaller time; ask for ranges that ended a few seconds ago.
func (s *Service) FindLedger(ctx context.Context, providerID int64, f LedgerFilter) (out []LedgerEntry, next string, err error) {
	after, err := DecodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q := `SELECT l.id, l.kind, c.client_id, l.vin, l.container_id, l.container_version, l.consent_id, l.keys_delivered, l.bytes,
		l.request_id, l.delivered_at, EXISTS (SELECT 1 FROM ledger_claims lc WHERE lc.provider_id = l.provider_id AND lc.invoice_id IS NOT NULL
		           AND l.id <= lc.high_id AND l.delivered_at < lc.ends_at) AS invoiced
		FROM delivery_ledger l LEFT JOIN api_clients c ON c.id = l.client_id
		WHERE l.provider_id = ? AND l.delivered_at >= ? AND l.delivered_at < ? AND l.id > ?`
	args := []any{providerID, f.From, f.To, after}
	if f.Kind != "" {
		q += " AND l.kind = ?"
		args = append(args, f.Kind)
	}
	if f.VIN != "" {
		q += " AND l.vin = ?"
		args = append(args, f.VIN)
	}
	q += " ORDER BY l.id LIMIT ?"
	args = append(args, f.Limit+1)
	if err := s.DB.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, "", errs.Wrap(err, "list ledger")
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = EncodeCursor(out[len(out)-1].ID)
	}
	if out == nil {
		out = []LedgerEntry{}
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
