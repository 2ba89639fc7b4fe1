package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
)

// signInAs signs someone in through a surface's login form in the browser.
func signInAs(base, login, email, password string) chromedp.Action {
	return chromedp.Tasks{
		chromedp.Navigate(base + login),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#logout") !== null`),
	}
}

// In a real browser, finance books part of an invoice's amount (typed the
// German way): the page then says what is still open, the invoice is
// "partially paid" in the list and its filter, and the provider sees the
// same open amount in the portal.
func TestBrowserFinanceBooksAPartialPaymentAndSeesTheOpenAmount(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, true)
	base := w.tt.Serve(t)
	path := fmt.Sprintf("%s/admin/billing/invoices/%d", base, w.deInv.ID)
	var flash, open, status, row string
	ctx := apptest.Browser(t)
	err := chromedp.Run(ctx,
		signInAs(base, "/admin/login", "fiona@fin.test", apptest.Password),
		chromedp.Navigate(path),
		chromedp.WaitVisible(`#f-pay-amount`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-pay-amount`, "50,00", chromedp.ByQuery),
		chromedp.SendKeys(`#f-reference`, "SEPA 4711", chromedp.ByQuery),
		chromedp.Click(`#book-payment`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector(".flash-success") !== null && document.readyState === "complete"`),
		chromedp.Text(`.flash-success`, &flash, chromedp.ByQuery),
		chromedp.Text(`#open-amount`, &open, chromedp.ByQuery),
		chromedp.Text(`.head h1 [data-status]`, &status, chromedp.ByQuery),
		screenshots(t, "finance-partial-payment"),
		chromedp.Navigate(base+"/admin/billing/invoices?status=partially_paid"),
		chromedp.WaitVisible(`#invoices tbody`, chromedp.ByQuery),
		chromedp.Text(`#invoices tbody`, &row, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "Payment of €50.00 booked; €69.00 is still open.") || strings.TrimSpace(open) != "€69.00" || strings.TrimSpace(status) != "partially paid" {
		t.Fatalf("after the payment: flash %q open %q status %q", flash, open, status)
	}
	if !strings.Contains(row, *w.deInv.Number) || !strings.Contains(row, "partially paid") || !strings.Contains(row, "€69.00") || strings.Contains(row, *w.atInv.Number) {
		t.Fatalf("partially paid list: %q", row)
	}

	var portal string
	pctx := apptest.Browser(t)
	err = chromedp.Run(pctx,
		signInAs(base, "/portal/login", w.de.Admin.Email, providerPassword),
		chromedp.Navigate(base+"/portal/invoices"),
		chromedp.WaitVisible(`#invoices`, chromedp.ByQuery),
		chromedp.Text(fmt.Sprintf(`#invoice-%d`, w.deInv.ID), &portal, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(portal, "partially paid") || !strings.Contains(portal, "€69.00") || !strings.Contains(portal, "€50.00") {
		t.Fatalf("portal row: %q", portal)
	}
}
