package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/billing"
)

// In a real browser, finance finalizes October's drafts in one action: the
// list's "Finalize all" button, the confirmation page naming the count, the
// total and the numbers, then the result listing each invoice.
func TestBrowserFinanceFinalizesAMonthInOneAction(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, false)
	base := w.tt.Serve(t)
	var button, effect, done string
	var rows int
	ctx := apptest.Browser(t)
	err := chromedp.Run(ctx,
		signInAs(base, "/admin/login", "fiona@fin.test", apptest.Password),
		chromedp.Navigate(base+"/admin/billing/invoices?period=2026-10"),
		chromedp.WaitVisible(`#bulk-finalize-all`, chromedp.ByQuery),
		chromedp.Text(`#bulk-finalize-all`, &button, chromedp.ByQuery),
		screenshots(t, "bulk-invoice-list"),
		chromedp.Click(`#bulk-finalize-all`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-yes`, chromedp.ByQuery),
		chromedp.Text(`#confirm-effect`, &effect, chromedp.ByQuery),
		screenshots(t, "bulk-finalize-confirm"),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#bulk-done`, chromedp.ByQuery),
		chromedp.Text(`#bulk-done`, &done, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#bulk-done tbody tr").length`, &rows),
		screenshots(t, "bulk-finalize-result"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(button, "Finalize all 2 drafts of") || !strings.Contains(effect, "-000001 to CD-") || rows != 2 {
		t.Fatalf("button %q effect %q rows %d", button, effect, rows)
	}
	for _, id := range []int64{w.deInv.ID, w.atInv.ID} {
		if s, n := bulkStatus(t, w, id); s != billing.StatusFinalized || !strings.Contains(done, n) {
			t.Fatalf("invoice %d: %s %q not in %q", id, s, n, done)
		}
	}
}
