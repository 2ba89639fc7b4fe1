package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
)

// A vehicle owner on a phone (390 px wide) sees the Revoke button of an
// active consent on /my without scrolling sideways (issue 18, item 7). With
// SCREENSHOTS=dir set, the test also saves /my, /my/transactions and
// /register at 1366 and 390 px for people to look at.
func TestBrowserCustomerOnAPhoneSeesRevoke(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Pay-as-you-drive", csMileage, csWeekly, csLat, csLon)
	k := w.granted(t, vin, v.ContainerID, anna)
	base := w.tt.Serve(t)
	ctx := apptest.Browser(t)

	revoke := fmt.Sprintf(`#revoke-%d`, k.ID)
	var inView bool
	var pageWidth, viewWidth int
	err := chromedp.Run(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/my"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "anna@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, csPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(revoke, chromedp.ByQuery),
		chromedp.ScrollIntoView(revoke, chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect();
			return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && r.top >= 0 && r.bottom <= window.innerHeight; })()`, revoke), &inView),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &pageWidth),
		chromedp.Evaluate(`window.innerWidth`, &viewWidth),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !inView {
		t.Fatalf("the Revoke button is not inside the 390 px viewport")
	}
	if pageWidth > viewWidth {
		t.Errorf("/my is %d px wide in a %d px viewport", pageWidth, viewWidth)
	}

	dir := os.Getenv("SCREENSHOTS")
	if dir == "" {
		return
	}
	for _, width := range []int64{1366, 390} {
		for name, path := range map[string]string{"my": "/my", "my-transactions": "/my/transactions", "my-consent": fmt.Sprintf("/my/consents/%d", k.ID), "register": "/register"} {
			var png []byte
			if err := chromedp.Run(ctx, chromedp.EmulateViewport(width, 900), chromedp.Navigate(base+path),
				chromedp.WaitVisible(`main`, chromedp.ByQuery), chromedp.FullScreenshot(&png, 80)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
