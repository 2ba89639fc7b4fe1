package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/policies"
)

// In a real browser, with administrators required to use an authenticator
// app (the default of STAFF_TOTP_REQUIRED_ROLES): the administrator's first
// password sign-in leads to the set-up, where the secret beside the QR code
// is read and its code typed; the recovery codes are shown; the dashboard
// follows. Signed out and in again, the password asks for the code: a wrong
// one is refused, the right one signs in.
func TestBrowserTOTPRequiredAdminEnrolsAndSignsInWithCode(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) { c.StaffTOTPRequiredRoles = []string{policies.RoleAdmin} })
	clock := useTOTPClock(tt)
	tt.MustCreateStaff(t, "ada@totp.local", policies.RoleAdmin)
	base := tt.Serve(t)
	ctx := apptest.Browser(t)

	signIn := chromedp.Tasks{
		chromedp.Navigate(base + "/admin/login"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "ada@totp.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
	}
	var secret, qr, required, codesText, loc string
	var ok bool
	err := chromedp.Run(ctx, signIn,
		apptest.WaitJS(`location.pathname === "/admin/login/enrol" && document.querySelector("#totp-secret") !== null`),
		chromedp.AttributeValue(`#totp-secret`, "data-secret", &secret, &ok, chromedp.ByQuery),
		chromedp.AttributeValue(`#totp-qr`, "src", &qr, &ok, chromedp.ByQuery),
		chromedp.Text(`#totp-required`, &required, chromedp.ByQuery),
		// The QR code is drawn: an image the browser decoded.
		apptest.WaitJS(`document.querySelector("#totp-qr").complete && document.querySelector("#totp-qr").naturalWidth >= 100`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || len(secret) < 16 || !strings.HasPrefix(qr, "data:image/png;base64,") || !strings.Contains(required, "requires") {
		t.Fatalf("enrolment page: secret %q, qr %.30q, note %q", secret, qr, required)
	}
	err = chromedp.Run(ctx,
		chromedp.SendKeys(`#f-code`, clock.code(t, secret), chromedp.ByQuery),
		chromedp.Click(`#confirm-totp`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#recovery-codes") !== null`),
		chromedp.Text(`#recovery-codes`, &codesText, chromedp.ByQuery),
		chromedp.Click(`#continue`, chromedp.ByQuery),
		apptest.WaitJS(`location.pathname === "/admin" && document.querySelector("#logout") !== null`),
		chromedp.Click(`#logout`, chromedp.ByQuery),
		apptest.WaitJS(`location.pathname === "/admin/login" && document.querySelector("#f-email") !== null`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(codesText)); n != 10 {
		t.Fatalf("%d recovery codes shown: %q", n, codesText)
	}

	var refusal string
	code := clock.next(t, secret)
	err = chromedp.Run(ctx, signIn,
		apptest.WaitJS(`location.pathname === "/admin/login/code" && document.querySelector("#f-code") !== null`),
		chromedp.SendKeys(`#f-code`, wrongCode(code), chromedp.ByQuery),
		chromedp.Click(`#verify`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector(".field.invalid .error") !== null`),
		chromedp.Text(`.field.invalid .error`, &refusal, chromedp.ByQuery),
		chromedp.SendKeys(`#f-code`, code, chromedp.ByQuery),
		chromedp.Click(`#verify`, chromedp.ByQuery),
		apptest.WaitJS(`location.pathname === "/admin" && document.querySelector("#logout") !== null`),
		chromedp.Location(&loc),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(refusal, "wrong") {
		t.Fatalf("wrong code: %q", refusal)
	}
}
