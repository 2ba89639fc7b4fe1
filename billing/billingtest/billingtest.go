// Package billingtest helps tests of billing and its callers: an in-memory
// provider directory (the directory is billing's collaborator, not its
// database: tests use this one until onboarding's is wired), a complete
// seller identity, the published price list, and bulk ledger seeding
// through SQL for volume tests.
package billingtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/billing"
	"cardata/policies"
	"cardata/policies/errs"
)

// Directory is an in-memory ProviderDirectory.
type Directory struct {
	mu      sync.Mutex
	parties map[int64]billing.Party
}

// NewDirectory holds parties.
func NewDirectory(parties ...billing.Party) *Directory {
	d := &Directory{parties: map[int64]billing.Party{}}
	for _, p := range parties {
		d.Put(p)
	}
	return d
}

// Put adds or replaces a party.
func (d *Directory) Put(p billing.Party) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.parties[p.ProviderID] = p
}

// BillingParty implements billing.ProviderDirectory.
func (d *Directory) BillingParty(_ context.Context, id int64) (billing.Party, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.parties[id]
	if !ok {
		return billing.Party{}, errs.New(errs.NotFound, "provider_not_found", "provider not found")
	}
	return p, nil
}

// ActiveProviderIDs implements billing.ProviderDirectory.
func (d *Directory) ActiveProviderIDs(context.Context) ([]int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int64
	for id := range d.parties {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Typical buyers, one per tax case.
func German(id int64) billing.Party {
	return billing.Party{ProviderID: id, LegalName: fmt.Sprintf("Werkstatt Nord GmbH %d", id), Street: "Hafenstraße 12",
		PostalCode: "20457", City: "Hamburg", Country: "DE", VATID: "DE123456788", Email: fmt.Sprintf("billing%d@werkstatt.example", id)}
}

func Austrian(id int64) billing.Party {
	return billing.Party{ProviderID: id, LegalName: fmt.Sprintf("Alpen Versicherung AG %d", id), Street: "Ringstraße 1",
		PostalCode: "1010", City: "Wien", Country: "AT", VATID: "ATU12345675", Email: fmt.Sprintf("rechnung%d@alpen.example", id)}
}

func Norwegian(id int64) billing.Party {
	return billing.Party{ProviderID: id, LegalName: fmt.Sprintf("Fjord Flåte AS %d", id), Street: "Karl Johans gate 5",
		PostalCode: "0154", City: "Oslo", Country: "NO", VATID: "NO123456785MVA", Email: fmt.Sprintf("faktura%d@fjord.example", id)}
}

// Seller is a complete seller identity.
func Seller() billing.Seller {
	return billing.Seller{Name: "CarData Services GmbH", Street: "Petuelring 130", PostalCode: "80809", City: "München",
		Country: "DE", VATID: "DE987654328", TaxNumber: "143/123/45678", RegisterID: "HRB 123456, Amtsgericht München",
		IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX", BankName: "Commerzbank", Email: "billing@cardata.example",
		Phone: "+49 89 1234560", PaymentTermsDays: 30}
}

// Berlin is the billing zone.
func Berlin(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// Ctx carries a system principal.
func Ctx() context.Context {
	return policies.WithPrincipal(context.Background(), policies.System("test"))
}

// StaffCtx carries a finance user (credit notes need two of them).
func StaffCtx(id int64, email string) context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindStaff, ID: id, Email: email,
		Name: email, Roles: []string{policies.RoleFinance}})
}

// Now is MustSetup's clock: every month a test bills is over by then.
var Now = time.Date(2027, 1, 15, 9, 0, 0, 0, time.UTC)

// PriceListStart is when MustSetup's price list starts (before every test month).
var PriceListStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// MustSetup returns a service on gdb with the directory, a complete seller
// and the default price list valid from PriceListStart.
func MustSetup(t testing.TB, gdb *gorm.DB, dir billing.ProviderDirectory) *billing.Service {
	t.Helper()
	s := &billing.Service{DB: gdb, Directory: dir, Location: Berlin(t), PublicURL: "https://cardata.example",
		Now: func() time.Time { return Now }}
	ctx := Ctx()
	if _, err := s.UpdateSeller(ctx, Seller()); err != nil {
		t.Fatalf("seller: %v", err)
	}
	if _, _, err := s.EnsureInitialPriceList(ctx, billing.DefaultPrices(PriceListStart)); err != nil {
		t.Fatalf("price list: %v", err)
	}
	return s
}

// MustDeliveries inserts n billable records for a provider, spaced step
// apart from start, through SQL (volume tests). Request ids use tag.
func MustDeliveries(t testing.TB, gdb *gorm.DB, providerID int64, kind string, start time.Time, step time.Duration, n int, tag string) {
	t.Helper()
	err := gdb.Exec(`INSERT INTO delivery_ledger (provider_id, client_id, vin, container_id, container_version, consent_id, kind,
		keys_delivered, bytes, request_id, delivered_at, key_ids)
		SELECT ?, 1, 'WBA00000000000' || lpad((g % 1000)::text, 3, '0'), 10 + (g % 2), 1, 100 + (g % 5), ?, 3, 420,
		       ? || '-' || g, ?::timestamptz + (g - 1) * ?::interval, '{1,2,3}'
		FROM generate_series(1, ?) AS g`, providerID, kind, tag, start, fmt.Sprintf("%d microseconds", step.Microseconds()), n).Error
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
}

// MustDelivery records one delivery through the ledger.
func MustDelivery(t testing.TB, gdb *gorm.DB, d billing.Delivery) {
	t.Helper()
	if d.VIN == "" {
		d.VIN = "WBA12345678901234"
	}
	if d.ContainerID == 0 {
		d.ContainerID = 10
	}
	if d.ContainerVersion == 0 {
		d.ContainerVersion = 1
	}
	if d.ConsentID == 0 {
		d.ConsentID = 100
	}
	if d.Kind == "" {
		d.Kind = billing.KindPull
	}
	if d.KeysDelivered == 0 && len(d.KeyIDs) == 0 {
		d.KeysDelivered = 2
	}
	if len(d.KeyIDs) == 0 { // any catalog keys will do for billing: it counts deliveries
		for i := 1; i <= d.KeysDelivered; i++ {
			d.KeyIDs = append(d.KeyIDs, int16(i))
		}
	}
	if d.RequestID == "" {
		d.RequestID = fmt.Sprintf("req-%d-%d", d.ProviderID, d.At.UnixNano())
	}
	if err := gdb.Transaction(func(tx *gorm.DB) error { return billing.Ledger{}.Record(context.Background(), tx, d) }); err != nil {
		t.Fatalf("record delivery: %v", err)
	}
}

// MustLegacyDelivery writes a record the way the ledger did before it named
// keys (key_ids NULL, keys_delivered only): the check that pins such records
// to ids before the migration is dropped in this test database first.
// d.KeysDelivered is the count; d.KeyIDs is ignored. It returns the id.
func MustLegacyDelivery(t testing.TB, gdb *gorm.DB, d billing.Delivery) int64 {
	t.Helper()
	if err := gdb.Exec("ALTER TABLE delivery_ledger DROP CONSTRAINT IF EXISTS delivery_ledger_keys_named").Error; err != nil {
		t.Fatalf("drop keys_named: %v", err)
	}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	var id int64
	err := gdb.Raw(`INSERT INTO delivery_ledger (provider_id, client_id, vin, container_id, container_version, consent_id, kind,
		keys_delivered, bytes, request_id, delivered_at, key_ids) VALUES (?, NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) RETURNING id`,
		d.ProviderID, d.ClientID, d.VIN, d.ContainerID, d.ContainerVersion, d.ConsentID, d.Kind, d.KeysDelivered, d.Bytes,
		d.RequestID, d.At.UTC()).Scan(&id).Error
	if err != nil || id == 0 {
		t.Fatalf("legacy delivery: %v", err)
	}
	return id
}

// DeliveryKeyIDs returns the key ids a record names (nil: not recorded).
func DeliveryKeyIDs(t testing.TB, gdb *gorm.DB, id int64) []int16 {
	t.Helper()
	var r billing.LedgerRecord
	if err := gdb.Where("id = ?", id).Take(&r).Error; err != nil {
		t.Fatalf("ledger record %d: %v", id, err)
	}
	return r.KeyIDs
}

// Validator is the path of the EN 16931 validator script.
func Validator() string {
	if v := os.Getenv("EN16931_VALIDATOR"); v != "" {
		return v
	}
	_, file, _, _ := runtime.Caller(0)
	// billing/billingtest -> repo root -> ../shared/validators
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, p := range []string{
		filepath.Join(root, "..", "shared", "validators", "en16931", "validate"),
		"/work/shared/validators/en16931/validate",
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Validate runs the EN 16931 validator over files; it fails the test on
// any fatal rule. Without the validator the test is skipped, except with
// CI=true where that is a failure.
func Validate(t testing.TB, files ...string) string {
	t.Helper()
	v := Validator()
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("the EN 16931 validator is required (CI=true) but was not found")
		}
		t.Skip("EN 16931 validator not found; skipping")
	}
	out, err := exec.Command(v, files...).CombinedOutput()
	if err != nil {
		t.Fatalf("EN 16931 validation failed: %v\n%s", err, out)
	}
	return string(out)
}
