package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/demo"
)

// browserSignIn signs a demo user in through their surface's login form.
func browserSignIn(base string, u demoLogin) chromedp.Action {
	return chromedp.Tasks{
		chromedp.Navigate(base + u.login),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, u.email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, demo.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#logout") !== null`),
	}
}

// screenshots saves the current page at 1366 and 390 px wide into the
// directory UX_SCREENSHOTS names (nothing when unset), for people to look at.
func screenshots(t *testing.T, name string) chromedp.Action {
	dir := os.Getenv("UX_SCREENSHOTS")
	return chromedp.ActionFunc(func(ctx context.Context) error {
		if dir == "" {
			return nil
		}
		for _, w := range []int64{1366, 390} {
			var png []byte
			if err := chromedp.Run(ctx, chromedp.EmulateViewport(w, 900), chromedp.FullScreenshot(&png, 100)); err != nil {
				return err
			}
			file := filepath.Join(dir, name+"-"+map[int64]string{1366: "1366", 390: "390"}[w]+".png")
			if err := os.WriteFile(file, png, 0o644); err != nil {
				return err
			}
			t.Logf("screenshot %s", file)
		}
		return chromedp.EmulateViewport(1280, 900).Do(ctx)
	})
}
