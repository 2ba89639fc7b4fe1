package billing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
)

// The run counts usage in one pass over the ledger for a large group of
// providers and provider by provider otherwise; both must bill the same.
// The history mixes what makes claims interesting: a price list change
// mid-month, late records of a finalized month, a provider that had
// nothing one month, one that starts late, a discarded and re-run draft,
// and November records delivered before October's run: every record ends
// on exactly one invoice line either way.
func TestBulkAndAloneCountingAgree(t *testing.T) {
	t.Parallel()
	seed := func(gdb *gorm.DB, bulkMin int) *billing.Service {
		dir := billingtest.NewDirectory()
		for id := int64(1); id <= 6; id++ {
			dir.Put(billingtest.German(id))
		}
		s := billingtest.MustSetup(t, gdb, dir)
		billing.SetBulkMin(s, bulkMin)
		early := &billing.Service{DB: gdb, Location: s.Location, Now: func() time.Time { return utc("2026-10-01T08:00:00Z") }}
		next := billing.DefaultPrices(time.Date(2026, 10, 15, 0, 0, 0, 0, s.Location))
		next.Telematics = []billing.Tier{{From: 1, UnitPrice: decimal.RequireFromString("0.0300")}, {From: 10_001, UnitPrice: decimal.RequireFromString("0.0250")}}
		if _, err := early.CreateVersion(billingtest.Ctx(), next); err != nil {
			t.Fatal(err)
		}
		return s
	}
	history := func(s *billing.Service, gdb *gorm.DB) {
		ctx := billingtest.Ctx()
		for id := int64(1); id <= 4; id++ {
			billingtest.MustDeliveries(t, gdb, id, billing.KindPull, utc("2026-09-03T10:00:00Z"), time.Minute, int(1000*id), fmt.Sprint("sep", id))
		}
		mustRun(t, s, "2026-09")
		for _, inv := range []*billing.Invoice{invoiceFor(t, s, 1, "2026-09"), invoiceFor(t, s, 2, "2026-09")} {
			if _, err := s.Finalize(ctx, inv.ID); err != nil {
				t.Fatal(err)
			}
		}
		// October: provider 3 uses nothing, 5 starts, 1 crosses the tier
		// and the price change; late September records for 1 and 4.
		billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-01T06:00:00Z"), 3*time.Minute, 12_000, "oct1")
		billingtest.MustDeliveries(t, gdb, 1, billing.KindPush, utc("2026-10-02T06:00:00Z"), time.Hour, 30, "oct1p")
		billingtest.MustDeliveries(t, gdb, 2, billing.KindPull, utc("2026-10-20T06:00:00Z"), time.Minute, 700, "oct2")
		billingtest.MustDeliveries(t, gdb, 4, billing.KindPull, utc("2026-10-05T06:00:00Z"), time.Minute, 40, "oct4")
		billingtest.MustDeliveries(t, gdb, 5, billing.KindPull, utc("2026-10-30T06:00:00Z"), time.Minute, 90, "oct5")
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 1, At: utc("2026-09-30T21:00:00Z"), RequestID: "late-sep-1"})
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 4, At: utc("2026-09-12T21:00:00Z"), RequestID: "late-sep-4"})
		// The first hours of November are delivered before October's run.
		billingtest.MustDeliveries(t, gdb, 2, billing.KindPull, utc("2026-10-31T23:30:00Z"), time.Minute, 20, "nov-early")
		mustRun(t, s, "2026-10")
		// Provider 4's October draft is discarded and the month run again.
		inv4 := invoiceFor(t, s, 4, "2026-10")
		if err := s.Discard(ctx, inv4.ID, "test"); err != nil {
			t.Fatal(err)
		}
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 4, At: utc("2026-10-31T22:00:00Z"), RequestID: "late-oct-4"})
		mustRun(t, s, "2026-10")
		// November, with October stragglers.
		for id := int64(1); id <= 6; id++ {
			billingtest.MustDeliveries(t, gdb, id, billing.KindPull, utc("2026-11-04T06:00:00Z"), time.Minute, int(100*id), fmt.Sprint("nov", id))
		}
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 3, At: utc("2026-10-15T10:00:00Z"), RequestID: "late-oct-3"})
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 5, At: utc("2026-10-31T10:00:00Z"), RequestID: "late-oct-5"})
		// Provider 4's stragglers span two months: counted on its own.
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 4, At: utc("2026-09-20T10:00:00Z"), RequestID: "late-sep-4b"})
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 4, At: utc("2026-10-20T10:00:00Z"), RequestID: "late-oct-4b"})
		mustRun(t, s, "2026-11")
	}
	bulkDB, aloneDB := dbtest.New(t), dbtest.New(t)
	bulk, alone := seed(bulkDB, 1), seed(aloneDB, 1000)
	history(bulk, bulkDB)
	history(alone, aloneDB)
	got, want := shapes(t, bulk), shapes(t, alone)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bulk:\n%v\nalone:\n%v", got, want)
	}
	// Spot checks of the expected lines (independent of either path).
	wantLines(t, invoiceFor(t, bulk, 1, "2026-10"),
		"telematics 2026-09 1001-1001 1@0.02=0.02",   // late September, after its 1,000 units
		"telematics 2026-10 1-6560 6560@0.02=131.20", // before 15 October (Berlin): 6,560 reads every 3 minutes
		"telematics 2026-10 6561-10000 3440@0.03=103.20",
		"telematics 2026-10 10001-12000 2000@0.025=50.00",
		"push 2026-10 1-30 30@0.01=0.30")
	wantLines(t, invoiceFor(t, bulk, 4, "2026-11"),
		"telematics 2026-09 4002-4002 1@0.02=0.02",
		"telematics 2026-10 42-42 1@0.03=0.03",
		"telematics 2026-11 1-400 400@0.03=12.00")
	wantLines(t, invoiceFor(t, bulk, 3, "2026-11"),
		"telematics 2026-10 1-1 1@0.03=0.03",
		"telematics 2026-11 1-300 300@0.03=9.00")
	for _, gdb := range []*gorm.DB{bulkDB, aloneDB} {
		var all int64
		gdb.Raw(`SELECT count(*) FROM delivery_ledger WHERE delivered_at < '2026-11-30T23:00:00Z'`).Scan(&all)
		var billed int64
		gdb.Raw(`SELECT COALESCE(sum(quantity), 0) FROM invoice_usage_details d JOIN invoices i ON i.id = d.invoice_id
			WHERE i.status <> 'discarded'`).Scan(&billed)
		if billed != all {
			t.Fatalf("%d records billed of %d", billed, all)
		}
	}
	for _, s := range []*billing.Service{bulk, alone} {
		for _, p := range []string{"2026-09", "2026-10", "2026-11"} {
			rep, err := s.Reconcile(context.Background(), p)
			if err != nil || !rep.OK() || rep.Pending != 0 {
				t.Fatalf("reconcile %s: %v %+v", p, err, rep)
			}
		}
	}
}

// The watermark waits for ledger writes in flight: a record whose
// transaction is open when the run starts is either on this run's invoice
// (committed before the seal) or above the watermark (next invoice), never
// lost between the two.
func TestWatermarkWaitsForRecordsInFlight(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-05T10:00:00Z"), time.Minute, 10, "a")
	tx := gdb.Begin()
	if err := tx.Exec(`INSERT INTO delivery_ledger (provider_id, client_id, vin, container_id, container_version, consent_id, kind,
		keys_delivered, bytes, request_id, delivered_at, key_ids) VALUES (1, 1, 'WBA12345678901234', 10, 1, 100, 'pull', 2, 10, 'in-flight', '2026-10-31T20:00:00Z', '{1,2}')`).Error; err != nil {
		t.Fatal(err)
	}
	done := make(chan *billing.InvoiceRun)
	go func() {
		r, err := s.RunPeriod(billingtest.Ctx(), "2026-10", billing.RunOptions{Trigger: billing.TriggerTest})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	// The run is sealing the ledger: its lock waits behind the open write.
	var waiting int64
	for deadline := time.Now().Add(2 * time.Minute); waiting == 0; time.Sleep(10 * time.Millisecond) {
		select {
		case <-done:
			t.Fatal("the run did not wait for the open ledger write")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never asked for the ledger lock")
		}
		// every test database is a clone, with the same table oids: name the database too
		gdb.Raw(`SELECT count(*) FROM pg_locks WHERE relation = 'delivery_ledger'::regclass AND mode = 'ShareLock' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if r := <-done; r == nil || r.RecordsBilled != 11 {
		t.Fatalf("run: %+v", r)
	}
	wantLines(t, invoiceFor(t, s, 1, "2026-10"), "telematics 2026-10 1-11 11@0.02=0.22")
}
