package billingtest

import (
	"testing"

	"gorm.io/gorm"

	"cardata/billing"
)

// RecordFilter selects ledger records for a test that checks what was
// recorded; a zero field matches every record.
type RecordFilter struct {
	ProviderID      int64
	Kind            string // billing.KindPull or billing.KindPush
	ConsentID       int64
	RequestIDPrefix string
	VINs            []string // only records of these vehicles (none: any)
}

func (f RecordFilter) query(gdb *gorm.DB) *gorm.DB {
	q := gdb.Model(&billing.LedgerRecord{})
	if f.ProviderID != 0 {
		q = q.Where("provider_id = ?", f.ProviderID)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.ConsentID != 0 {
		q = q.Where("consent_id = ?", f.ConsentID)
	}
	if f.RequestIDPrefix != "" {
		q = q.Where("starts_with(request_id, ?)", f.RequestIDPrefix)
	}
	if len(f.VINs) > 0 {
		q = q.Where("vin IN ?", f.VINs)
	}
	return q
}

// CountRecords counts the ledger records f selects.
func CountRecords(t testing.TB, gdb *gorm.DB, f RecordFilter) int64 {
	t.Helper()
	var n int64
	if err := f.query(gdb).Count(&n).Error; err != nil {
		t.Fatalf("count ledger records: %v", err)
	}
	return n
}

// Record is a ledger record as tests compare it: its container, how many
// and which keys (catalog ids, comma-separated) it names, and the vehicle
// event a push carried ("" for a pull).
type Record struct {
	ContainerID   int64
	KeysDelivered int
	Keys          string
	EventType     string
	EventID       string
}

// Records are the ledger records f selects, in the order they were written.
func Records(t testing.TB, gdb *gorm.DB, f RecordFilter) []Record {
	t.Helper()
	var out []Record
	if err := f.query(gdb).Select(`container_id, keys_delivered, array_to_string(key_ids, ',') AS keys,
			coalesce(event_type, '') AS event_type, coalesce(event_id, '') AS event_id`).Order("id").Scan(&out).Error; err != nil {
		t.Fatalf("ledger records: %v", err)
	}
	return out
}

// CountSandboxDeliveries counts provider providerID's sandbox deliveries
// (sandbox_deliveries: never billed) of kind ("" any kind).
func CountSandboxDeliveries(t testing.TB, gdb *gorm.DB, providerID int64, kind string) int64 {
	t.Helper()
	q := gdb.Table("sandbox_deliveries").Where("provider_id = ?", providerID)
	if kind != "" {
		q = q.Where("kind = ?", kind)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		t.Fatalf("count sandbox deliveries: %v", err)
	}
	return n
}
