package billing_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
)

// finalizedFixture bills October for a German (S), an Austrian (AE) and a
// Norwegian (O) provider, with support and a manual line, and finalizes.
func finalizedFixture(t *testing.T) (*billing.Service, *gorm.DB, map[string]*billing.Invoice) {
	t.Helper()
	gdb := dbtest.New(t)
	dir := billingtest.NewDirectory(billingtest.German(1), billingtest.Austrian(2), billingtest.Norwegian(3))
	s := billingtest.MustSetup(t, gdb, dir)
	ctx := billingtest.Ctx()
	for id := int64(1); id <= 3; id++ {
		billingtest.MustDeliveries(t, gdb, id, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 1234, "d")
		billingtest.MustDeliveries(t, gdb, id, billing.KindPush, utc("2026-10-03T07:00:00Z"), time.Minute, 17, "dp")
		if err := gdb.Transaction(func(tx *gorm.DB) error {
			return billing.RecordSupportItem(ctx, tx, billing.SupportItem{ProviderID: id, TicketID: 100 + id, TicketRef: "T-10" + string(rune('0'+id)),
				Kind: billing.SupportTime, Priority: "P2", Minutes: 30, OccurredAt: utc("2026-10-20T10:00:00Z"), SourceKey: "te:" + string(rune('0'+id))})
		}); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, s, "2026-10")
	out := map[string]*billing.Invoice{}
	for id, cc := range map[int64]string{1: "DE", 2: "AT", 3: "NO"} {
		inv := invoiceFor(t, s, id, "2026-10")
		if _, err := s.AddManualLine(ctx, inv.ID, billing.ManualLine{Description: "Goodwill discount", Amount: "-5.00", Reason: "late onboarding"}); err != nil {
			t.Fatal(err)
		}
		fin, err := s.Finalize(ctx, inv.ID)
		if err != nil {
			t.Fatalf("finalize %s: %v", cc, err)
		}
		out[cc] = fin
	}
	return s, gdb, out
}

func writeDoc(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The UBL documents of all three tax cases and of a credit note pass the
// official EN 16931 rules (the validator is run as a program).
func TestDocumentsPassEN16931(t *testing.T) {
	t.Parallel()
	s, _, invs := finalizedFixture(t)
	ctx := context.Background()
	if invs["DE"].TaxCategory != "S" || invs["AT"].TaxCategory != "AE" || invs["NO"].TaxCategory != "O" {
		t.Fatalf("categories: %s %s %s", invs["DE"].TaxCategory, invs["AT"].TaxCategory, invs["NO"].TaxCategory)
	}
	// A credit note for the Austrian invoice: drafted by one finance user,
	// issued by another.
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), invs["AT"].ID, billing.CreditRequest{Reason: "Duplicate deliveries on 3 October", Amount: "12.34"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(billingtest.StaffCtx(11, "fiona@test"), cn.ID); err == nil || !strings.Contains(err.Error(), "second finance user") {
		t.Fatalf("four eyes: %v", err)
	}
	cnFinal, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*cnFinal.Number, "CN-2027-") {
		t.Fatalf("credit note number %s", *cnFinal.Number)
	}
	// A full credit note of the German invoice (copies its lines).
	full, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), invs["DE"].ID, billing.CreditRequest{Reason: "Invoice cancelled"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), full.ID); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for name, id := range map[string]int64{"de": invs["DE"].ID, "at": invs["AT"].ID, "no": invs["NO"].ID, "cn-at": cn.ID, "cn-de": full.ID} {
		d, err := s.Document(ctx, id, "ubl")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, writeDoc(t, dir, name+".xml", d.Content))
		p, err := s.Document(ctx, id, "pdf")
		if err != nil || !bytes.HasPrefix(p.Content, []byte("%PDF-")) {
			t.Fatalf("pdf of %s: %v", name, err)
		}
	}
	xmlAT, _ := os.ReadFile(filepath.Join(dir, "at.xml"))
	for _, want := range []string{"<cbc:ID>AE</cbc:ID>", "VATEX-EU-AE", "Reverse charge", "ATU12345675", "DE987654328"} {
		if !bytes.Contains(xmlAT, []byte(want)) {
			t.Errorf("AT invoice lacks %q", want)
		}
	}
	xmlNO, _ := os.ReadFile(filepath.Join(dir, "no.xml"))
	if bytes.Contains(xmlNO, []byte("DE987654328")) || !bytes.Contains(xmlNO, []byte("<cbc:ID>O</cbc:ID>")) {
		t.Errorf("NO invoice must use category O without VAT IDs")
	}
	out := billingtest.Validate(t, files...)
	if strings.Count(out, "conforms to EN 16931") != len(files) {
		t.Fatalf("validator output:\n%s", out)
	}
}

// Finalized documents re-render byte-identical, match their stored sha256,
// and the database refuses changes to a finalized invoice.
func TestFinalizedDocumentsAreReproducibleAndFrozen(t *testing.T) {
	t.Parallel()
	s, gdb, invs := finalizedFixture(t)
	ctx := context.Background()
	for cc, inv := range invs {
		again, err := s.Rerender(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range again {
			stored, err := s.Document(ctx, inv.ID, d.Format)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(stored.Content)
			if hex.EncodeToString(sum[:]) != stored.SHA256 {
				t.Fatalf("%s %s: stored sha256 does not match content", cc, d.Format)
			}
			if !bytes.Equal(d.Content, stored.Content) || d.SHA256 != stored.SHA256 {
				t.Fatalf("%s %s: re-render differs from the stored document", cc, d.Format)
			}
		}
	}
	de := invs["DE"]
	for _, stmt := range []string{
		"UPDATE invoices SET net_total = net_total + 1 WHERE id = ?",
		"UPDATE invoices SET buyer_name = 'Someone else' WHERE id = ?",
		"UPDATE invoices SET status = 'draft' WHERE id = ?",
		"UPDATE invoice_lines SET net_amount = 0 WHERE invoice_id = ?",
		"DELETE FROM invoice_lines WHERE invoice_id = ?",
		"UPDATE invoice_documents SET content = 'x' WHERE invoice_id = ?",
		"UPDATE ledger_claims SET high_id = high_id + 1 WHERE invoice_id = ?",
		"DELETE FROM ledger_claims WHERE invoice_id = ?",
		"UPDATE delivery_ledger SET keys_delivered = 9 WHERE provider_id = (SELECT provider_id FROM invoices WHERE id = ?)",
		"DELETE FROM delivery_ledger WHERE provider_id = (SELECT provider_id FROM invoices WHERE id = ?)",
		"DELETE FROM invoices WHERE id = ?",
	} {
		if err := gdb.Exec(stmt, de.ID).Error; err == nil {
			t.Errorf("database accepted %q on a finalized invoice", stmt)
		}
	}
	// Payment fields may move: a partial payment, then the rest.
	if _, err := s.BookPayment(billingtest.Ctx(), de.ID, billing.NewPayment{Amount: "50.00", ReceivedOn: "2027-01-10", Reference: "SEPA 1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BookPayment(billingtest.Ctx(), de.ID, billing.NewPayment{Amount: "999999.00", ReceivedOn: "2027-01-10"}); err == nil {
		t.Fatal("overpayment accepted")
	}
	inv, _ := s.FindInvoice(ctx, de.ID)
	rest := inv.GrossTotal.Sub(inv.PaidTotal)
	if _, err := s.BookPayment(billingtest.Ctx(), de.ID, billing.NewPayment{Amount: rest.StringFixed(2), ReceivedOn: "2027-01-12"}); err != nil {
		t.Fatal(err)
	}
	if inv, _ = s.FindInvoice(ctx, de.ID); inv.Status != billing.StatusPaid || !inv.PaidTotal.Equal(inv.GrossTotal) {
		t.Fatalf("after payments: %s paid %s of %s", inv.Status, inv.PaidTotal, inv.GrossTotal)
	}
	// Documents are still byte-identical after payments.
	again, _ := s.Rerender(ctx, de.ID)
	stored, _ := s.Document(ctx, de.ID, "pdf")
	for _, d := range again {
		if d.Format == "pdf" && !bytes.Equal(d.Content, stored.Content) {
			t.Fatal("PDF changed after payment")
		}
	}
}
