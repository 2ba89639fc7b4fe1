package billing_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// A version in use never changes: the service refuses past start dates
// and the database refuses to touch a version whose validity started, or
// its items. Future versions can be withdrawn.
func TestPriceListVersionsInUseAreImmutable(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory())
	real := &billing.Service{DB: gdb, Location: s.Location}
	ctx := billingtest.Ctx()
	past := billing.DefaultPrices(time.Now().Add(-time.Hour))
	if _, err := real.CreateVersion(ctx, past); errs.FieldMap(err)["valid_from"] == "" {
		t.Fatalf("a version starting in the past was accepted: %v", err)
	}
	bad := billing.DefaultPrices(time.Now().Add(48 * time.Hour))
	bad.Telematics = []billing.Tier{{From: 5, UnitPrice: decimal.RequireFromString("0.01")}}
	if _, err := real.CreateVersion(ctx, bad); errs.FieldMap(err)["telematics"] == "" {
		t.Fatalf("tiers not starting at 1 accepted: %v", err)
	}
	future, err := real.CreateVersion(ctx, billing.DefaultPrices(time.Now().Add(72*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := real.PriceList(context.Background())
	inUse := pl[0]
	for _, stmt := range []string{
		"UPDATE price_list_versions SET note = 'changed' WHERE id = ?",
		"DELETE FROM price_list_versions WHERE id = ?",
		"UPDATE price_list_items SET unit_price = 0 WHERE version_id = ?",
		"DELETE FROM price_list_items WHERE version_id = ?",
		"INSERT INTO price_list_items (version_id, item, tier_from, unit_price) VALUES (?, 'push', 500000, 0)",
	} {
		if err := gdb.Exec(stmt, inUse.ID).Error; err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("database accepted %q on a version in use: %v", stmt, err)
		}
	}
	// The future version may still change in the database, and be withdrawn.
	if err := gdb.Exec("UPDATE price_list_items SET unit_price = 0.0199 WHERE version_id = ? AND item = 'telematics' AND tier_from = 1", future.ID).Error; err != nil {
		t.Fatalf("future version: %v", err)
	}
	if err := real.WithdrawVersion(ctx, future.ID); err != nil {
		t.Fatal(err)
	}
	if err := real.WithdrawVersion(ctx, inUse.ID); !errs.Is(err, "price_list_version_in_use") {
		t.Fatalf("withdrawing a version in use: %v", err)
	}
	pub, _ := real.Published(context.Background())
	if len(pub) != 1 || pub[0].ID != inUse.ID {
		t.Fatalf("published: %+v", pub)
	}
}

// Numbers come from a gapless series: concurrent finalizations get
// consecutive numbers without duplicates, and a finalization that fails
// after taking its number gives it back.
func TestGaplessNumbersUnderConcurrentFinalization(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	gdb, err := db.Open(u, 24)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	const n = 16
	dir := billingtest.NewDirectory()
	for id := int64(1); id <= n; id++ {
		dir.Put(billingtest.German(id))
	}
	s := billingtest.MustSetup(t, gdb, dir)
	for id := int64(1); id <= n; id++ {
		billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: id, At: utc("2026-10-12T12:00:00Z"), RequestID: fmt.Sprint("g", id)})
	}
	mustRun(t, s, "2026-10")
	list, _, _ := s.ListInvoices(context.Background(), billing.InvoiceFilter{Status: billing.StatusDraft})
	if len(list) != n {
		t.Fatalf("%d drafts", len(list))
	}
	// Every third finalization fails after its number was allocated.
	billing.SetBeforeFinalizeCommit(s, func(id int64) error {
		if id%3 == 0 {
			return errors.New("simulated failure after numbering")
		}
		return nil
	})
	var wg sync.WaitGroup
	for _, inv := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Finalize(billingtest.Ctx(), inv.ID)
		}()
	}
	wg.Wait()
	billing.SetBeforeFinalizeCommit(s, nil)
	for _, inv := range list { // the failed ones, again
		if inv.ID%3 == 0 {
			if _, err := s.Finalize(billingtest.Ctx(), inv.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	var numbers []string
	gdb.Raw(`SELECT number FROM invoices WHERE number IS NOT NULL`).Scan(&numbers)
	sort.Strings(numbers)
	if len(numbers) != n {
		t.Fatalf("%d numbers", len(numbers))
	}
	for i, num := range numbers {
		if want := fmt.Sprintf("CD-2027-%06d", i+1); num != want {
			t.Fatalf("numbers %v: position %d is %s, want %s", numbers, i, num, want)
		}
	}
}

// Reconcile re-rates the period in SQL: clean invoices agree; a tampered
// line amount, total or ledger position is reported.
func TestReconcileDetectsTampering(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	gdb, err := db.Open(u, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1), billingtest.Austrian(2)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-01T00:00:00Z"), 3*time.Minute, 10_010, "t1")
	billingtest.MustDeliveries(t, gdb, 2, billing.KindPush, utc("2026-10-04T00:00:00Z"), time.Minute, 33, "t2")
	mustRun(t, s, "2026-10")
	ctx := context.Background()
	rep, err := s.Reconcile(ctx, "2026-10")
	if err != nil || !rep.OK() || rep.Records != 10_043 || rep.Invoices != 2 {
		t.Fatalf("clean reconcile: %v %+v", err, rep)
	}
	inv := invoiceFor(t, s, 1, "2026-10")
	if _, err := s.Finalize(billingtest.Ctx(), inv.ID); err != nil {
		t.Fatal(err)
	}
	// Someone with superuser rights bypasses the triggers.
	su, err := db.Open(dbtest.SuperuserURL(t, u), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(su)
	tamper := func(stmts ...string) {
		t.Helper()
		if err := su.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SET LOCAL session_replication_role = replica").Error; err != nil {
				return err
			}
			for _, q := range stmts {
				if err := tx.Exec(q, inv.ID).Error; err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	tamper("UPDATE invoice_lines SET net_amount = net_amount - 0.01 WHERE invoice_id = ? AND position = 2",
		"UPDATE invoices SET net_total = net_total - 0.01, gross_total = gross_total - 0.01 WHERE id = ?")
	rep, err = s.Reconcile(ctx, "2026-10")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range rep.Differences {
		if d.Line == 2 && d.What == "net amount" && d.Stored == "0.14" && d.Expected == "0.15" {
			found = true
		}
	}
	if !found || rep.OK() {
		t.Fatalf("tampered amount not reported: %v", rep.Differences)
	}
	// Restore, then move a record across the tier boundary.
	tamper("UPDATE invoice_lines SET net_amount = net_amount + 0.01 WHERE invoice_id = ? AND position = 2",
		"UPDATE invoices SET net_total = net_total + 0.01, gross_total = gross_total + 0.01 WHERE id = ?")
	if rep, _ = s.Reconcile(ctx, "2026-10"); !rep.OK() {
		t.Fatalf("restored: %v", rep.Differences)
	}
	tamper("UPDATE invoices SET tax_total = tax_total + 1, gross_total = gross_total + 1 WHERE id = ?")
	rep, _ = s.Reconcile(ctx, "2026-10")
	if len(rep.Differences) != 1 || rep.Differences[0].What != "VAT amount" {
		t.Fatalf("tampered VAT: %v", rep.Differences)
	}
}

// Drafts: a manual line with a reason, discard releases the records,
// regenerate picks up late arrivals; finalization refuses while data is
// missing; sending enqueues the e-mail with links, not attachments.
func TestDraftLifecycle(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	dir := billingtest.NewDirectory(billingtest.German(1))
	s := billingtest.MustSetup(t, gdb, dir)
	ctx := billingtest.Ctx()
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-05T00:00:00Z"), time.Minute, 10, "l")
	mustRun(t, s, "2026-10")
	inv := invoiceFor(t, s, 1, "2026-10")
	if _, err := s.AddManualLine(ctx, inv.ID, billing.ManualLine{Description: "Setup fee", Amount: "12.5"}); errs.FieldMap(err)["reason"] == "" {
		t.Fatalf("manual line without reason: %v", err)
	}
	if _, err := s.AddManualLine(ctx, inv.ID, billing.ManualLine{Description: "Setup fee", Amount: "12.5", Reason: "contract annex"}); err != nil {
		t.Fatal(err)
	}
	// A late October record, then regenerate: it is billed on this draft.
	billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 1, At: utc("2026-10-30T00:00:00Z"), RequestID: "late"})
	inv, err := s.Regenerate(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, inv, "telematics 2026-10 1-11 11@0.02=0.22", "manual 2026-10 1@12.5=12.50")
	// Discard releases everything; a re-run bills it again.
	if err := s.Discard(ctx, inv.ID, ""); errs.FieldMap(err)["reason"] == "" {
		t.Fatalf("discard without reason: %v", err)
	}
	if err := s.Discard(ctx, inv.ID, "wrong customer data"); err != nil {
		t.Fatal(err)
	}
	var free int64
	gdb.Raw(`SELECT count(*) FROM delivery_ledger l WHERE NOT EXISTS (SELECT 1 FROM ledger_claims e
		WHERE e.provider_id = l.provider_id AND e.invoice_id IS NOT NULL AND l.id <= e.high_id AND l.delivered_at < e.ends_at)`).Scan(&free)
	if free != 11 {
		t.Fatalf("%d records released", free)
	}
	mustRun(t, s, "2026-10")
	inv = invoiceFor(t, s, 1, "2026-10")
	wantLines(t, inv, "telematics 2026-10 1-11 11@0.02=0.22")
	// Finalization refuses while the seller or buyer data is incomplete.
	p := billingtest.German(1)
	p.Email = ""
	dir.Put(p)
	_, err = s.Finalize(ctx, inv.ID)
	if !errs.Is(err, "buyer_incomplete") {
		t.Fatalf("finalize with incomplete buyer: %v", err)
	}
	// The composed message: English as before, German through and through.
	if en, de := errs.As(err).Message, errs.As(err).Text(templates.Translator(i18n.DE)); en != "the provider's invoicing data is incomplete: the provider has no billing e-mail address" ||
		de != "Die Rechnungsdaten des Anbieters sind unvollständig: Der Anbieter hat keine E-Mail-Adresse für Rechnungen" {
		t.Fatalf("incomplete buyer: %q / %q", en, de)
	}
	dir.Put(billingtest.German(1))
	gdb.Exec(`UPDATE billing_seller SET iban = '', tax_number = ''`)
	_, err = s.Finalize(ctx, inv.ID)
	if !errs.Is(err, "seller_incomplete") {
		t.Fatalf("finalize with incomplete seller: %v", err)
	}
	if de := errs.As(err).Text(templates.Translator(i18n.DE)); !strings.HasPrefix(de, "Die Verkäuferangaben sind unvollständig (geben Sie die Steuernummer an; die IBAN ist ungültig (Prüfziffern)); ergänzen Sie") ||
		!strings.Contains(errs.As(err).Message, "(the tax number (Steuernummer) is required; the IBAN is not valid (check digits))") {
		t.Fatalf("incomplete seller: %q / %q", errs.As(err).Message, de)
	}
	if _, err := s.UpdateSeller(ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	var mail struct{ ToAddr, Subject, BodyText string }
	gdb.Raw(`SELECT to_addr, subject, body_text FROM email_outbox WHERE kind = 'invoice.sent'`).Scan(&mail)
	if mail.ToAddr != "billing1@werkstatt.example" || !strings.Contains(mail.BodyText, "/portal/invoices/") || !strings.Contains(mail.Subject, "CD-2027-") {
		t.Fatalf("mail: %+v", mail)
	}
	if _, err := s.Send(ctx, inv.ID); !errs.Is(err, "invoice_not_sendable") {
		t.Fatalf("second send: %v", err)
	}
	// Overdue: a reminder, once a week.
	later := *s
	later.Now = func() time.Time { return billingtest.Now.AddDate(0, 2, 0) }
	if n, err := later.SendReminders(ctx); err != nil || n != 1 {
		t.Fatalf("reminders: %d %v", n, err)
	}
	if n, _ := later.SendReminders(ctx); n != 0 {
		t.Fatalf("second reminder the same day: %d", n)
	}
}
