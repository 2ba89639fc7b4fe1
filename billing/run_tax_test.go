package billing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// A provider whose tax category cannot be determined (an Austrian buyer
// without VAT ID: reverse charge needs it) gets no draft: the run fails for
// that provider with an error that says why, the other providers get their
// drafts, and nothing is claimed for it, so the run after the data was
// completed bills its records. Both ways of writing drafts: in bulk (the
// batch's providers counted in one pass) and provider by provider.
func TestRunFailsProviderWhoseTaxCategoryIsUnknown(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		bulkMin int
	}{{"bulk", 1}, {"one by one", 1000}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gdb := dbtest.New(t)
			dir := billingtest.NewDirectory()
			for id := int64(1); id <= 4; id++ {
				dir.Put(billingtest.German(id))
			}
			bad := billingtest.Austrian(5)
			bad.VATID = ""
			dir.Put(bad)
			s := billingtest.MustSetup(t, gdb, dir)
			billing.SetBulkMin(s, c.bulkMin)
			for id := int64(1); id <= 5; id++ {
				billingtest.MustDeliveries(t, gdb, id, billing.KindPull, utc("2026-10-10T10:00:00Z"), time.Minute, int(10*id), fmt.Sprint("t", id))
			}

			r, err := s.RunPeriod(billingtest.Ctx(), "2026-10", billing.RunOptions{Trigger: billing.TriggerTest})
			if !errs.Is(err, "run_incomplete") {
				t.Fatalf("run with a provider without VAT ID: %v", err)
			}
			msg := errs.As(err).Message
			for _, want := range []string{"provider 5:", "tax category of Alpen Versicherung AG 5 cannot be determined", "no VAT ID"} {
				if !strings.Contains(msg, want) {
					t.Fatalf("run error %q does not say %q", msg, want)
				}
			}
			// In German, down to the nested reason.
			if de := errs.As(err).Text(templates.Translator(i18n.DE)); !strings.Contains(de, "1 Anbieter konnte(n) nicht abgerechnet werden: Anbieter 5: "+
				"Die Steuerkategorie von Alpen Versicherung AG 5 lässt sich nicht bestimmen: Der Anbieter hat seinen Sitz in AT, aber keine USt-IdNr.") {
				t.Fatalf("run error in German: %q", de)
			}
			if r.Status != "failed" || r.ProvidersFailed != 1 || r.InvoicesCreated != 4 || !strings.Contains(r.Error, "no VAT ID") {
				t.Fatalf("run row: %+v", r)
			}
			if got := countInvoices(t, gdb); got["5/2026-10"] != 0 || len(got) != 4 {
				t.Fatalf("invoices: %v", got)
			}
			var claims, untaxed int64
			gdb.Raw(`SELECT count(*) FROM ledger_claims WHERE provider_id = 5`).Scan(&claims)
			gdb.Raw(`SELECT count(*) FROM invoices WHERE tax_category = '' OR tax_category IS NULL`).Scan(&untaxed)
			if claims != 0 || untaxed != 0 {
				t.Fatalf("provider 5 has %d claims; %d invoices without tax category", claims, untaxed)
			}

			// With the VAT ID in the directory the next run bills provider 5.
			dir.Put(billingtest.Austrian(5))
			r = mustRun(t, s, "2026-10")
			if r.Status != "succeeded" || r.InvoicesCreated != 1 {
				t.Fatalf("second run: %+v", r)
			}
			inv := invoiceFor(t, s, 5, "2026-10")
			if inv.TaxCategory != billing.TaxReverseCharge || inv.Lines[0].Quantity.IntPart() != 50 {
				t.Fatalf("provider 5's draft: %s, %v", inv.TaxCategory, lineSummary(inv))
			}
			rep, err := s.Reconcile(context.Background(), "2026-10")
			if err != nil || !rep.OK() {
				t.Fatalf("reconcile: %v %v", err, rep.Differences)
			}
		})
	}
}

// Regenerating a draft refreshes the buyer; when the buyer's tax category
// can no longer be determined the draft stays as it was and the error says why.
func TestRegenerateRefusesUnknownTaxCategory(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	dir := billingtest.NewDirectory(billingtest.German(1))
	s := billingtest.MustSetup(t, gdb, dir)
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-05T00:00:00Z"), time.Minute, 10, "r")
	mustRun(t, s, "2026-10")
	inv := invoiceFor(t, s, 1, "2026-10")
	p := billingtest.German(1)
	p.Country = ""
	dir.Put(p)
	if _, err := s.Regenerate(billingtest.Ctx(), inv.ID); !errs.Is(err, "buyer_country_missing") ||
		!strings.Contains(errs.As(err).Message, "tax category of Werkstatt Nord GmbH 1 cannot be determined") {
		t.Fatalf("regenerate with a buyer without country: %v", err)
	}
	after := invoiceFor(t, s, 1, "2026-10")
	if after.BuyerCountry != "DE" || after.TaxCategory != inv.TaxCategory || !after.GrossTotal.Equal(inv.GrossTotal) ||
		strings.Join(lineSummary(after), "|") != strings.Join(lineSummary(inv), "|") {
		t.Fatalf("draft changed: %+v", after)
	}
}
