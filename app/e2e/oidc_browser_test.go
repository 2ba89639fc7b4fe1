package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/devidp"
)

// In a real browser, through the real redirects: a partner manager signs
// in at the company's identity provider and sees the partner manager's
// navigation; signs out (the provider's session ends too and the browser
// comes back); is removed from the group on the provider's page and is
// refused at the next sign-in.
func TestBrowserOIDCStaffSignInAndRemovedGroup(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	base := w.serve(t)
	ctx := apptest.Browser(t)

	manager := `button[data-subject="dev-manager"]`
	var nav, who, loc string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/admin/login"),
		chromedp.WaitVisible(`#signin-oidc`, chromedp.ByQuery),
		chromedp.Click(`#signin-oidc`, chromedp.ByQuery),
		chromedp.WaitVisible(manager, chromedp.ByQuery),
		chromedp.Click(manager, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#logout") !== null`),
		chromedp.Text(`nav.sidenav`, &nav, chromedp.ByQuery),
		chromedp.Text(`.who`, &who, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nav, "Review queue") || !strings.Contains(who, "Maria Manager") || !strings.Contains(who, "Partner manager") {
		t.Fatalf("after sign-in: nav %q who %q", nav, who)
	}

	err = chromedp.Run(ctx,
		chromedp.Click(`#logout`, chromedp.ByQuery),
		apptest.WaitJS(`location.pathname === "/admin/login" && document.querySelector("#signin-oidc") !== null`),
		chromedp.Location(&loc),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, base) {
		t.Fatalf("after logout at %q", loc)
	}

	var refusal string
	err = chromedp.Run(ctx,
		chromedp.Click(`#signin-oidc`, chromedp.ByQuery),
		chromedp.WaitVisible(manager, chromedp.ByQuery),
		chromedp.Click(`form:has(`+manager+`) input[value="cardata-partner-managers"]`, chromedp.ByQuery),
		chromedp.Click(manager, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector(".flash-error") !== null`),
		chromedp.Text(`.flash-error`, &refusal, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(refusal, "none of the groups that give access to CarData") {
		t.Fatalf("refusal: %q", refusal)
	}
}

// A vehicle owner signs in to /my through the customer identity's page
// and grants a consent; the decision records the identity's subject.
func TestBrowserOIDCCustomerGrants(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	cw := consentWorldOn(t, w.tt)
	anna := identity(t, devidp.Customers(), "dev-anna")
	acc := cw.customer(t, anna.Email)
	vin := cw.vehicle(t, "BMW", "AT", true, acc)
	v := cw.approvedContainer(t, "Pay-as-you-drive", csMileage)
	k := cw.request(t, vin, v.ContainerID)
	base := w.serve(t)
	ctx := apptest.Browser(t)

	button := `button[data-subject="dev-anna"]`
	var state string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/my"),
		chromedp.WaitVisible(`#signin-oidc`, chromedp.ByQuery),
		chromedp.Click(`#signin-oidc`, chromedp.ByQuery),
		chromedp.WaitVisible(button, chromedp.ByQuery),
		chromedp.Click(button, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#pending-note") !== null`),
		chromedp.Click(fmt.Sprintf(`#review-%d`, k.ID), chromedp.ByQuery),
		chromedp.WaitVisible(`#grant`, chromedp.ByQuery),
		chromedp.Click(`#grant`, chromedp.ByQuery),
		chromedp.WaitVisible(`#revoke`, chromedp.ByQuery),
		chromedp.Text(`#consent-state`, &state, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if state != "granted" {
		t.Fatalf("state after grant: %q", state)
	}
	var subject string
	w.tt.DB.Raw("SELECT actor_subject FROM consent_changes WHERE consent_id = ? AND to_state = 'granted'", k.ID).Scan(&subject)
	if subject != anna.Subject {
		t.Fatalf("the grant records subject %q", subject)
	}
}
