package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/demo"
)

// A vehicle owner and an administrator switch to German with the header's
// switch (a plain form, no JavaScript needed) and read /my and /admin in
// German, on a desktop (1366 px) and a phone (390 px). Screenshots go to
// $SCREENSHOT_DIR when set (to look at them), else to the test's temp dir.
func TestBrowserGermanMyAndAdminAtTwoWidths(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	base := tt.Serve(t)
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, who := range []struct {
		name, login, email, home, want string
	}{
		{"my", "/my/login", demo.Customer1Email, "/my", "Meine Fahrzeuge und Einwilligungen"},
		{"admin", "/admin/login", "admin@demo.local", "/admin", "Übersicht"},
	} {
		ctx := apptest.Browser(t)
		var lang, text string
		err := chromedp.Run(ctx,
			chromedp.EmulateViewport(1366, 900),
			chromedp.Navigate(base+who.login),
			chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
			chromedp.Click(`.langswitch button[value=de]`, chromedp.ByQuery),
			chromedp.WaitVisible(`html[lang=de] #f-email`, chromedp.ByQuery),
			chromedp.SendKeys(`#f-email`, who.email, chromedp.ByQuery),
			chromedp.SendKeys(`#f-password`, demo.Password, chromedp.ByQuery),
			chromedp.Click(`#signin`, chromedp.ByQuery),
			chromedp.WaitVisible(`#logout`, chromedp.ByQuery),
			chromedp.AttributeValue(`html`, "lang", &lang, nil, chromedp.ByQuery),
			chromedp.Text(`body`, &text, chromedp.ByQuery),
		)
		if err != nil {
			t.Fatalf("%s: %v", who.name, err)
		}
		if lang != "de" || !strings.Contains(text, who.want) || !strings.Contains(text, "Abmelden") {
			t.Fatalf("%s in German: lang=%q, text:\n%s", who.name, lang, text)
		}
		for _, width := range []int64{1366, 390} {
			var png []byte
			if err := chromedp.Run(ctx,
				chromedp.EmulateViewport(width, 900),
				chromedp.Navigate(base+who.home),
				chromedp.WaitVisible(`html[lang=de] #logout`, chromedp.ByQuery),
				chromedp.FullScreenshot(&png, 80),
			); err != nil {
				t.Fatalf("%s at %d px: %v", who.name, width, err)
			}
			name := filepath.Join(dir, "de-"+who.name+"-"+map[int64]string{1366: "1366", 390: "390"}[width]+".jpg")
			if err := os.WriteFile(name, png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
