package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/onboarding/webhooks"
	"cardata/policies"
)

// confirmStep clicks a destructive button, checks that the confirmation page
// names what will happen, and then either cancels (nothing happened) or
// confirms.
func confirmStep(button string, title, effect *string, yes bool) chromedp.Action {
	last := `#confirm-cancel`
	if yes {
		last = `#confirm-yes`
	}
	return chromedp.Tasks{
		chromedp.Click(button, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`),
		chromedp.Text(`#confirm-title`, title, chromedp.ByQuery),
		chromedp.Text(`#confirm-effect`, effect, chromedp.ByQuery),
		chromedp.Click(last, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") === null && document.readyState === "complete"`),
	}
}

// Destructive and irreversible actions ask first, in a real browser, on the
// server's confirmation page (no JavaScript needed): it names what will
// happen, cancel leaves everything as it was, yes does it. Covered: revoking
// an API client and deleting a webhook endpoint (provider admin), approving
// a provider, the second approval of a sensitive container and pausing a
// market (partner managers), finalizing an invoice (finance).
func TestBrowserDestructiveActionsAskFirst(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	var pid, clientID, alpen, draft, bonus int64
	tt.DB.Raw(`SELECT id FROM providers WHERE legal_name = 'Demo Insurance AG'`).Scan(&pid)
	tt.DB.Raw(`SELECT id FROM api_clients WHERE client_id = ?`, demo.InsurerClientID).Scan(&clientID)
	tt.DB.Raw(`SELECT id FROM providers WHERE legal_name = 'Alpen Versicherung AG'`).Scan(&alpen)
	tt.DB.Raw(`SELECT id FROM invoices WHERE status = 'draft' AND provider_id = ? ORDER BY id LIMIT 1`, pid).Scan(&draft)
	tt.DB.Raw(`SELECT container_id FROM container_versions WHERE name = 'Driving style bonus'`).Scan(&bonus)
	if pid == 0 || clientID == 0 || alpen == 0 || draft == 0 || bonus == 0 {
		t.Fatalf("demo data: provider %d client %d alpen %d draft %d container %d", pid, clientID, alpen, draft, bonus)
	}
	pctx := policies.WithPrincipal(tt.Ctx, policies.System("test"))
	ep, err := tt.App.Webhooks.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: "http://127.0.0.1:9/hooks", EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}
	base := tt.Serve(t)
	ctx := apptest.Browser(t)
	var title, effect string
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	expect := func(what string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(title+" "+effect, w) {
				t.Errorf("%s: the confirmation %q / %q does not say %q", what, title, effect, w)
			}
		}
	}
	count := func(q string, args ...any) (n int64) {
		tt.DB.Raw(q, args...).Scan(&n)
		return n
	}

	// The provider's administrator: revoke the API client, delete the endpoint.
	run("portal sign-in", browserSignIn(base, demoLogin{login: "/portal/login", email: demo.InsurerAdmin}),
		chromedp.Navigate(base+"/portal/clients"),
		confirmStep(fmt.Sprintf("#revoke-%d", clientID), &title, &effect, false))
	expect("revoke client", "Revoke the API client “Demo insurer backend”?", demo.InsurerClientID, "refused")
	if count(`SELECT count(*) FROM api_clients WHERE id = ? AND revoked_at IS NULL`, clientID) != 1 {
		t.Fatal("cancel revoked the client")
	}
	run("revoke client", chromedp.Click(fmt.Sprintf("#revoke-%d", clientID), chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`),
		screenshots(t, "confirm-revoke-client"),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector(".flash-success") !== null`))
	if count(`SELECT count(*) FROM api_clients WHERE id = ? AND revoked_at IS NOT NULL`, clientID) != 1 {
		t.Fatal("the client was not revoked after yes")
	}
	run("delete endpoint", chromedp.Navigate(fmt.Sprintf("%s/portal/webhooks/%d", base, ep.ID)),
		confirmStep(`#delete`, &title, &effect, false))
	expect("delete endpoint", "http://127.0.0.1:9/hooks", "dropped")
	if count(`SELECT count(*) FROM webhook_endpoints WHERE id = ? AND status = 'deleted'`, ep.ID) != 0 {
		t.Fatal("cancel deleted the endpoint")
	}
	run("delete endpoint", confirmStep(`#delete`, &title, &effect, true))
	if count(`SELECT count(*) FROM webhook_endpoints WHERE id = ? AND status = 'deleted'`, ep.ID) != 1 {
		t.Fatal("the endpoint was not deleted after yes")
	}

	// A partner manager claims (no question) and approves (asked) a provider.
	// Each user gets a browser of their own (each is bounded by BrowserPatience).
	ctx = apptest.Browser(t)
	run("manager", browserSignIn(base, demoLogin{login: "/admin/login", email: "manager@demo.local"}),
		chromedp.Navigate(fmt.Sprintf("%s/admin/providers/%d", base, alpen)),
		chromedp.WaitVisible(`#action-claim`, chromedp.ByQuery),
		chromedp.Click(`#action-claim`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#action-approve") !== null`),
		confirmStep(`#action-approve`, &title, &effect, false))
	expect("approve provider", "Approve Alpen Versicherung AG?", "active partner")
	if count(`SELECT count(*) FROM providers WHERE id = ? AND status = 'in_review'`, alpen) != 1 {
		t.Fatal("cancel changed the provider")
	}
	run("approve provider", confirmStep(`#action-approve`, &title, &effect, true))
	if count(`SELECT count(*) FROM providers WHERE id = ? AND status = 'active'`, alpen) != 1 {
		t.Fatal("the provider was not approved after yes")
	}
	// Pausing a market names it.
	run("pause market", chromedp.Navigate(base+"/admin/markets"), confirmStep(`#pause-LU`, &title, &effect, false))
	expect("pause market", "Pause the market Luxembourg?", "No provider receives data")
	if count(`SELECT count(*) FROM markets WHERE code = 'LU' AND active`) != 1 {
		t.Fatal("cancel paused the market")
	}
	run("pause market", confirmStep(`#pause-LU`, &title, &effect, true))
	if count(`SELECT count(*) FROM markets WHERE code = 'LU' AND active`) != 0 {
		t.Fatal("the market was not paused after yes")
	}

	// The second partner manager gives the second approval of a sensitive container.
	ctx = apptest.Browser(t)
	run("second approval", browserSignIn(base, demoLogin{login: "/admin/login", email: "manager2@demo.local"}),
		chromedp.Navigate(fmt.Sprintf("%s/admin/containers/%d", base, bonus)),
		confirmStep(`#approve-1`, &title, &effect, false))
	expect("second approval", "Driving style bonus", "second approval", "usable at once")
	if count(`SELECT count(*) FROM container_versions WHERE container_id = ? AND state = 'approved'`, bonus) != 0 {
		t.Fatal("cancel approved the container")
	}
	run("second approval", confirmStep(`#approve-1`, &title, &effect, true))
	if count(`SELECT count(*) FROM container_versions WHERE container_id = ? AND state = 'approved'`, bonus) != 1 {
		t.Fatal("the container was not approved after yes")
	}

	// Finance finalizes a draft: the confirmation names the buyer and the amount.
	ctx = apptest.Browser(t)
	run("finalize", browserSignIn(base, demoLogin{login: "/admin/login", email: "finance@demo.local"}),
		chromedp.Navigate(fmt.Sprintf("%s/admin/billing/invoices/%d", base, draft)),
		confirmStep(`#finalize`, &title, &effect, false))
	expect("finalize", "Finalize invoice", "Demo Insurance AG", "EUR", "only a credit note")
	if count(`SELECT count(*) FROM invoices WHERE id = ? AND status = 'draft'`, draft) != 1 {
		t.Fatal("cancel finalized the invoice")
	}
	run("finalize", confirmStep(`#finalize`, &title, &effect, true))
	if count(`SELECT count(*) FROM invoices WHERE id = ? AND status = 'finalized'`, draft) != 1 {
		t.Fatal("the invoice was not finalized after yes")
	}
}
