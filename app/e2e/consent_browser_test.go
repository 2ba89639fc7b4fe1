package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/consent"
)

func staffSignIn(base, email string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(base + "/admin/login"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`nav.sidenav`, chromedp.ByQuery),
	}
}

// Two partner managers review a container with a sensitive key in real
// browsers: the first approval leaves it waiting, the first manager cannot
// approve twice, the second approval approves it.
func TestBrowserTwoPartnerManagersApproveASensitiveContainer(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	v, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Pay-as-you-drive", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage, csWeekly, csLat, csLon}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	base := w.tt.Serve(t)
	page := fmt.Sprintf("%s/admin/containers/%d", base, v.ContainerID)

	var queue, keys, approvals, waiting string
	ctx1 := apptest.Browser(t)
	err = chromedp.Run(ctx1, staffSignIn(base, w.pm1Email),
		chromedp.Navigate(base+"/admin/containers"),
		chromedp.WaitVisible(`#container-queue`, chromedp.ByQuery),
		chromedp.Text(`#container-queue`, &queue, chromedp.ByQuery),
		chromedp.Click(`#container-queue a`, chromedp.ByQuery),
		chromedp.WaitVisible(`#approve-1`, chromedp.ByQuery),
		chromedp.Text(`#keys-1`, &keys, chromedp.ByQuery),
		chromedp.Click(`#approve-1`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`), // approving asks first
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#waiting-second`, chromedp.ByQuery),
		chromedp.Text(`#approvals-1`, &approvals, chromedp.ByQuery),
		chromedp.Text(`#waiting-second`, &waiting, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(queue, "Pay-as-you-drive") || !strings.Contains(queue, "sensitive") || !strings.Contains(queue, "0 of 2") {
		t.Fatalf("queue: %q", queue)
	}
	if !strings.Contains(keys, "location") || !strings.Contains(keys, "unusual for Insurance by usage") {
		t.Fatalf("keys and hints: %q", keys)
	}
	if !strings.Contains(approvals, "1 of 2") || !strings.Contains(waiting, "second partner manager") {
		t.Fatalf("after the first approval: %q %q", approvals, waiting)
	}
	if got, _ := w.ct.FindVersion(w.tt.Ctx, 0, v.ID); got.State != containers.Submitted {
		t.Fatalf("after one approval: %s", got.State)
	}

	var state string
	ctx2 := apptest.Browser(t)
	err = chromedp.Run(ctx2, staffSignIn(base, w.pm2Email),
		chromedp.Navigate(page),
		chromedp.WaitVisible(`#approve-1`, chromedp.ByQuery),
		chromedp.Click(`#approve-1`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#deprecate-1`, chromedp.ByQuery),
		chromedp.Text(`#state`, &state, chromedp.ByQuery),
		chromedp.Text(`#approvals-1`, &approvals, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(state, "approved") || !strings.Contains(approvals, "2 of 2") {
		t.Fatalf("after the second approval: %q %q", state, approvals)
	}
	if got, _ := w.ct.FindVersion(w.tt.Ctx, 0, v.ID); got.State != containers.Approved || len(got.Approvals) != 2 ||
		got.Approvals[0].StaffID == got.Approvals[1].StaffID {
		t.Fatalf("stored: %s %+v", got.State, got.Approvals)
	}
}

// A customer grants a request and then revokes it in two clicks, in a real
// browser; the decision follows at once.
func TestBrowserCustomerGrantsAndRevokes(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Mileage check", csMileage, csWeekly)
	k := w.request(t, vin, v.ContainerID)
	base := w.tt.Serve(t)
	ctx := apptest.Browser(t)

	var pending, purpose, keyList, state string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/my"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "anna@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, csPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#pending-note`, chromedp.ByQuery),
		chromedp.Text(`table.pending`, &pending, chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`#review-%d`, k.ID), chromedp.ByQuery),
		chromedp.WaitVisible(`#grant`, chromedp.ByQuery),
		chromedp.Text(`#purpose`, &purpose, chromedp.ByQuery),
		chromedp.Text(`#keys`, &keyList, chromedp.ByQuery),
		chromedp.Click(`#grant`, chromedp.ByQuery),
		chromedp.WaitVisible(`#revoke`, chromedp.ByQuery),
		chromedp.Text(`#consent-state`, &state, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pending, "Alpen Versicherung AG") || !strings.Contains(pending, "Insurance by usage") {
		t.Fatalf("pending: %q", pending)
	}
	if purpose != csPurpose || !strings.Contains(keyList, "distance") {
		t.Fatalf("purpose %q keys %q", purpose, keyList)
	}
	if state != "granted" {
		t.Fatalf("state after grant: %q", state)
	}
	if r := w.decide(t, vin, v.ContainerID); r != policies.ReasonAllowed {
		t.Fatalf("decision after grant: %s", r)
	}

	var confirm, active string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/my"),
		chromedp.WaitVisible(fmt.Sprintf(`#revoke-%d`, k.ID), chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`#revoke-%d`, k.ID), chromedp.ByQuery), // click 1
		chromedp.WaitVisible(`#confirm-yes`, chromedp.ByQuery),
		chromedp.Text(`#confirm-action`, &confirm, chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery), // click 2
		chromedp.WaitVisible(`table.active`, chromedp.ByQuery),
		chromedp.Text(`table.active`, &active, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(confirm, "Alpen Versicherung AG") || !strings.Contains(active, "No provider receives data") {
		t.Fatalf("confirm %q active %q", confirm, active)
	}
	if r := w.decide(t, vin, v.ContainerID); r != policies.ReasonConsentRevoked {
		t.Fatalf("decision after revoke: %s", r)
	}
	got, _ := w.cs.FindProviderConsent(context.Background(), w.pid, k.ID)
	if got.State != consent.Revoked {
		t.Fatalf("stored state %s", got.State)
	}
}
