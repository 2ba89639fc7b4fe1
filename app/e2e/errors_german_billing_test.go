package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Billing's error messages reach a German staff page in German, with their
// values: finalizing an invoice that is final already names its state in
// German (a word of the product, passed as errs.Term), and a payment above
// the open amount names that amount in the field's error.
func TestBillingErrorsWithValuesInGerman(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, true)
	w.fiona.Header.Set("Accept-Language", "de")
	path := fmt.Sprintf("/admin/billing/invoices/%d", w.deInv.ID)

	res := w.fiona.PostForm(path+"/finalize", nil)
	if res.Status != http.StatusSeeOther {
		t.Fatalf("second finalize: status %d: %.400s", res.Status, res.Body)
	}
	body := w.fiona.Get(location(res)).Body
	if !strings.Contains(body, "Nur Entwürfe können finalisiert werden; dieses Dokument hat den Status „finalisiert“") ||
		strings.Contains(body, "only drafts can be finalized") || strings.Contains(body, "this one is finalized") {
		t.Errorf("the refused finalize is not German:\n%s", flashOf(body))
	}

	today := time.Now().In(w.tt.App.Cfg.BillingTimezone).Format("2006-01-02")
	res = w.fiona.PostForm(path+"/payments", url.Values{"amount": {"500,00"}, "received_on": {today}})
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("overpayment: status %d: %.400s", res.Status, res.Body)
	}
	if !strings.Contains(res.Body, "Offen sind nur 119,00\u00a0€") || strings.Contains(res.Body, "is open") {
		t.Errorf("the refused payment's field error is not German:\n%s", res.Body[max(0, strings.Index(res.Body, `class="error"`)-300):])
	}
}
