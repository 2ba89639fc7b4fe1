package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/policies"
)

// A partner manager signs in, finds the application in the review queue,
// claims it and approves it; the provider is active afterwards.
func TestBrowserPartnerManagerApprovesAnApplication(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	r := mustRegisterProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	base := tt.Serve(t)
	ctx := apptest.Browser(t)
	id := r.Provider.ID
	var queue, status, timeline string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/admin/review-queue"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "pm@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#queue`, chromedp.ByQuery),
		chromedp.Text(`#queue`, &queue, chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`#claim-%d`, id), chromedp.ByQuery),
		chromedp.WaitVisible(`#action-approve`, chromedp.ByQuery),
		chromedp.Click(`#action-approve`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`), // approving asks first
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#action-suspend`, chromedp.ByQuery),
		chromedp.Text(`#status`, &status, chromedp.ByQuery),
		chromedp.Text(`#timeline`, &timeline, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(queue, "Alpen Versicherung AG") || status != "active" ||
		!strings.Contains(timeline, "claim") || !strings.Contains(timeline, "approve") {
		t.Fatalf("queue %q status %q timeline %q", queue, status, timeline)
	}
	if ok, _ := onboardingFor(tt).ProviderIsActive(tt.Ctx, id); !ok {
		t.Fatal("provider not active after approval")
	}
}

// A provider's administrator signs in to the portal, creates an API client
// and sees its secret exactly once.
func TestBrowserProviderCreatesAnAPIClientAndSeesTheSecretOnce(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	r := mustActiveProvider(t, tt, "Demo Insurance AG", "DE", "DE136695976")
	base := tt.Serve(t)
	ctx := apptest.Browser(t)
	var clientID, secret, later string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/portal/clients"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, r.Admin.Email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, providerPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#create-client`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-name`, "production backend", chromedp.ByQuery),
		chromedp.Click(`#create-client`, chromedp.ByQuery),
		chromedp.WaitVisible(`#client-secret`, chromedp.ByQuery),
		chromedp.Text(`#client-id`, &clientID, chromedp.ByQuery),
		chromedp.Text(`#client-secret`, &secret, chromedp.ByQuery),
		chromedp.Navigate(base+"/portal/clients"),
		chromedp.WaitVisible(`#clients`, chromedp.ByQuery),
		chromedp.Text(`main`, &later, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onboardingFor(tt).AuthenticateAPIClient(tt.Ctx, clientID, secret); err != nil {
		t.Fatalf("shown credentials do not authenticate: %v", err)
	}
	if strings.Contains(later, secret) || !strings.Contains(later, clientID) || !strings.Contains(later, secret[len(secret)-4:]) {
		t.Fatalf("after reload: %q", later)
	}
}
