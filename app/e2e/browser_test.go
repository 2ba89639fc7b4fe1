package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/policies"
)

// A staff member signs in through a real browser, sees the navigation of
// their roles only, is refused another role's page, and signs out.
func TestBrowserStaffLoginNavigationAndLogout(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	base := tt.Serve(t)
	ctx := apptest.Browser(t)

	var nav, who, forbidden, afterLogout string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/admin/users"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "otto@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		// the login returns to the page asked for
		chromedp.WaitVisible(`table.list`, chromedp.ByQuery),
		chromedp.Text(`nav.sidenav`, &nav, chromedp.ByQuery),
		chromedp.Text(`[data-testid=who]`, &who, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if who != "otto" || !strings.Contains(nav, "Audit trail") || !strings.Contains(nav, "Staff users") {
		t.Fatalf("auditor navigation: who=%q nav=%q", who, nav)
	}

	// Sam (support) sees no system navigation and is refused the audit trail.
	ctx2 := apptest.Browser(t)
	err = chromedp.Run(ctx2,
		chromedp.Navigate(base+"/admin/login"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "sam@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`nav.sidenav`, chromedp.ByQuery),
		chromedp.Text(`nav.sidenav`, &nav, chromedp.ByQuery),
		chromedp.Navigate(base+"/admin/audit"),
		chromedp.WaitVisible(`.error-page`, chromedp.ByQuery),
		chromedp.Text(`.error-page`, &forbidden, chromedp.ByQuery),
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(`#logout`, chromedp.ByQuery),
		chromedp.Click(`#logout`, chromedp.ByQuery),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.Text(`main`, &afterLogout, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(nav, "Audit trail") || strings.Contains(nav, "Staff users") {
		t.Fatalf("support sees system navigation: %q", nav)
	}
	if !strings.Contains(forbidden, "403") || !strings.Contains(forbidden, "Forbidden") {
		t.Fatalf("audit page as support: %q", forbidden)
	}
	if !strings.Contains(afterLogout, "signed out") {
		t.Fatalf("after logout: %q", afterLogout)
	}
	// Signed out for real: the dashboard sends back to the login.
	var loc string
	if err := chromedp.Run(ctx2, chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(`#f-email`, chromedp.ByQuery), chromedp.Location(&loc)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "/admin/login") {
		t.Fatalf("after logout /admin went to %s", loc)
	}
}

// A form whose CSRF token was removed is rejected by the server.
func TestBrowserFormWithoutCSRFTokenIsRejected(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	base := tt.Serve(t)
	ctx := apptest.Browser(t)
	var body string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/admin/login"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "ada@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`nav.sidenav`, chromedp.ByQuery),
		chromedp.Navigate(base+"/admin/users/new"),
		chromedp.WaitVisible(`#f-name`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-name`, "Mallory", chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "mallory@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, "a-long-password", chromedp.ByQuery),
		chromedp.Click(`input[value=admin]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('main form input[name=_csrf]').remove()`, nil),
		chromedp.Submit(`#f-name`, chromedp.ByQuery),
		chromedp.WaitVisible(`.error-page`, chromedp.ByQuery),
		chromedp.Text(`.error-page`, &body, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "403") || !strings.Contains(body, "did not come from this site") {
		t.Fatalf("csrf rejection page: %q", body)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM staff_users WHERE email = 'mallory@test.local'").Scan(&n)
	if n != 0 {
		t.Fatal("user created without CSRF token")
	}
}
