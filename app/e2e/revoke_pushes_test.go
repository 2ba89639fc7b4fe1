package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/providerapi/client"
	"cardata/onboarding/webhooks"
	"cardata/policies"
)

// revokeThroughMy signs the world's customer in on /my and revokes the
// world's consent there: the app's own consent service, wired as in
// production.
func revokeThroughMy(t *testing.T, tt *apptest.T, w *apiWorld) {
	t.Helper()
	if err := apiConsents(tt).SetCustomerPassword(tt.Ctx, w.AccountID, csPassword); err != nil {
		t.Fatal(err)
	}
	var email string
	tt.DB.Raw("SELECT email FROM customer_accounts WHERE id = ?", w.AccountID).Scan(&email)
	c := tt.Client(t)
	if res := c.PostForm("/my/login", url.Values{"email": {email}, "password": {csPassword}}); res.Status != http.StatusSeeOther {
		t.Fatalf("customer login: %d %s", res.Status, res.Body)
	}
	if res := c.PostForm(fmt.Sprintf("/my/consents/%d/revoke", w.ConsentID), nil); res.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", res.Status, res.Body)
	}
}

// apiDeliveries lists an endpoint's deliveries through the provider API.
func apiDeliveries(t *testing.T, api *client.ClientWithResponses, endpointID int64) []client.WebhookDelivery {
	t.Helper()
	res := call(api.ListWebhookDeliveriesWithResponse(t.Context(), int(endpointID), nil)).must(t)
	if res.JSON200 == nil {
		t.Fatalf("deliveries: %d %s", res.StatusCode(), res.Body)
	}
	return res.JSON200.Deliveries
}

// A revoke drops the consent's queued and retrying pushes in its own
// transaction: the provider's delivery list shows them dropped with
// consent_revoked at once, not at their next retry.
func TestRevokeDropsQueuedAndRetryingPushesAtOnce(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	hooks := tt.App.Webhooks
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	pid := w.Provider.Provider.ID
	pctx := policies.WithPrincipal(tt.Ctx, &policies.Principal{Kind: policies.KindProvider, ProviderID: pid})
	ep, err := hooks.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: down.URL, EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}

	// One push fails once and waits for its retry, a second one is queued.
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"breakdown"}`, time.Now().Add(-time.Minute))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"oil"}`, time.Now().Add(-time.Second))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("second fan-out: %d %v", n, err)
	}
	c := apiGen(t, tt, w)
	before := apiDeliveries(t, c, ep.ID)
	if len(before) != 2 || before[0].Status != "pending" || before[0].Attempts != 0 || before[1].Status != "pending" || before[1].Attempts != 1 {
		t.Fatalf("before the revoke: %+v", before)
	}

	revokeThroughMy(t, tt, w)
	after := apiDeliveries(t, c, ep.ID)
	if len(after) != 2 {
		t.Fatalf("after the revoke: %+v", after)
	}
	for _, d := range after {
		if d.Status != "dropped" || d.StatusReason == nil || *d.StatusReason != "consent_revoked" {
			t.Fatalf("right after the revoke: %+v", after)
		}
	}
	if after[1].Attempts != 1 || after[0].Attempts != 0 {
		t.Fatalf("the drop made attempts: %+v", after)
	}
	for _, r := range apiLedgerRows(t, tt, pid) {
		if r.Kind == "push" {
			t.Fatalf("a dropped push was billed: %+v", r)
		}
	}
}

// A push already on the wire when the revoke commits reaches its receiver
// (it cannot be called back) but is not billed: the ledger record is
// written only while the consent is still granted.
func TestPushInFlightDuringRevokeIsNotBilled(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	hooks := tt.App.Webhooks
	// No per-attempt timeout worth the name: the receiver answers only
	// after the revoke, however long a loaded machine takes for it.
	hooks.HTTP = &http.Client{Timeout: 5 * time.Minute}
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	pid := w.Provider.Provider.ID
	pctx := policies.WithPrincipal(tt.Ctx, &policies.Principal{Kind: policies.KindProvider, ProviderID: pid})
	ep, err := hooks.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: recv.URL, EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"breakdown"}`, time.Now().Add(-time.Second))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	done := make(chan error, 1)
	go func() { _, err := hooks.DeliverDue(tt.Ctx); done <- err }()
	select {
	case <-arrived: // passed the send-time check, now on the wire
	case <-time.After(2 * time.Minute):
		t.Fatal("the push never reached the receiver")
	}
	revokeThroughMy(t, tt, w)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the delivery never finished")
	}
	ds := apiDeliveries(t, apiGen(t, tt, w), ep.ID)
	if len(ds) != 1 || ds[0].Status != "succeeded" || ds[0].Attempts != 1 {
		t.Fatalf("the receiver answered 204: %+v", ds)
	}
	for _, r := range apiLedgerRows(t, tt, pid) {
		if r.Kind == "push" {
			t.Fatalf("a push sent while the consent was revoked was billed: %+v", r)
		}
	}
}

// The expiry job ends a grant past its end date like a revoke: its queued
// pushes are dropped in the job's transaction, with consent_expired.
func TestConsentExpiryDropsQueuedPushes(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	ending := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	hooks := tt.App.Webhooks
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	pid := ending.Provider.Provider.ID
	pctx := policies.WithPrincipal(tt.Ctx, &policies.Principal{Kind: policies.KindProvider, ProviderID: pid})
	ep, err := hooks.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: down.URL, EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, ending.VIN, apiKeyServiceCall, `{"reason":"breakdown"}`, time.Now().Add(-time.Minute))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	// The end date passes (the job compares it with the clock).
	tt.DB.Exec("UPDATE consents SET ends_at = now() - interval '1 second' WHERE id = ?", ending.ConsentID)
	res, err := tt.App.Jobs.RunAndWait(tt.Ctx, "consent.expire")
	if err != nil || res.Outcome != "succeeded" {
		t.Fatalf("job: %v %+v", err, res)
	}
	ds := apiDeliveries(t, apiGen(t, tt, ending), ep.ID)
	if len(ds) != 1 || ds[0].Status != "dropped" || ds[0].StatusReason == nil || *ds[0].StatusReason != "consent_expired" {
		t.Fatalf("after the expiry job: %+v", ds)
	}
}
