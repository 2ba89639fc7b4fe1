package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"cardata/app/providerapi/client"
	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
)

// A provider asks through the API; only the primary holder decides; every
// step is in the changelog; the provider lists its own consents.
func TestConsentRequestGrantDenyAndOnlyPrimaryHolder(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	ben := w.customer(t, "ben@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	if err := w.veh.AssignHolder(w.tt.Ctx, vin, ben, "secondary"); err != nil {
		t.Fatal(err)
	}
	v := w.approvedContainer(t, "Mileage", csMileage, csWeekly)

	// Bad requests are problems with fields; a vehicle without a holder is
	// not eligible (the capability service tells any provider as much).
	unmapped := w.vehicle(t, "BMW", "DE", true, 0)
	for _, tc := range []struct {
		body        any
		status      int
		field, code string
	}{
		{map[string]any{"vin": "123", "containerId": v.ContainerID}, 422, "vin", "vin_invalid"},
		{map[string]any{"vin": "WBATEST9999999999", "containerId": v.ContainerID}, 422, "vin", "vehicle_not_found"},
		{map[string]any{"vin": unmapped, "containerId": v.ContainerID}, 422, "vin", "not_mapped_to_account"},
		{map[string]any{"vin": vin, "containerId": 0}, 422, "containerId", "container_required"},
		{map[string]any{"vin": vin, "containerId": 999999}, 422, "containerId", "container_not_found"},
		{map[string]any{"vin": vin, "containerId": v.ContainerID, "validUntil": "2001-01-01T00:00:00Z"}, 422, "validUntil", "valid_until_past"},
		{`{"vin": 1}`, 400, "", ""},
	} {
		res := w.api.SendJSON("POST", "/api/v1/consent-requests", tc.body)
		if res.Status != tc.status {
			t.Fatalf("%v: %d %s", tc.body, res.Status, res.Body)
		}
		if tc.field != "" {
			if code, _ := csProblem(t, res.Body).field(tc.field); code != tc.code {
				t.Fatalf("%v: field %s code %q", tc.body, tc.field, code)
			}
		}
	}
	ctx := t.Context()
	created := call(w.gen.RequestConsentWithResponse(ctx, nil, client.NewConsentRequest{Vin: strings.ToLower(vin), ContainerId: int(v.ContainerID)})).must(t)
	if created.JSON201 == nil {
		t.Fatalf("request: %d %s", created.StatusCode(), created.Body)
	}
	kc := created.JSON201
	if kc.State != client.Requested || kc.Vin != vin || kc.ExpiresAt == nil {
		t.Fatalf("request: %+v", kc)
	}
	k := struct{ ID int64 }{int64(kc.Id)}
	if res := call(w.gen.RequestConsentWithResponse(ctx, nil, client.NewConsentRequest{Vin: vin, ContainerId: int(v.ContainerID)})).must(t); res.StatusCode() != 409 ||
		apiProblem(res.Body) != "consent_request_pending" {
		t.Fatalf("second request: %d %s", res.StatusCode(), res.Body)
	}
	var mails int64
	w.tt.DB.Raw("SELECT count(*) FROM email_outbox WHERE kind = 'consent.requested' AND to_addr = 'anna@test.local'").Scan(&mails)
	if mails != 1 {
		t.Fatalf("customer e-mails: %d", mails)
	}

	// The secondary user sees the request but cannot decide.
	benC := w.loginCustomer(t, "ben@test.local")
	page := benC.Get(fmt.Sprintf("/my/consents/%d", k.ID))
	if page.Status != 200 || strings.Contains(page.Body, `id="grant"`) || !strings.Contains(page.Body, "Only the vehicle's primary account holder") {
		t.Fatalf("secondary user's page: %d", page.Status)
	}
	if res := benC.PostForm(fmt.Sprintf("/my/consents/%d/grant", k.ID), nil); res.Status != http.StatusForbidden ||
		!strings.Contains(res.Body, "only the vehicle") {
		t.Fatalf("secondary grants: %d", res.Status)
	}
	if err := w.cs.Grant(w.customerCtx(t, ben), ben, k.ID, nil); !errs.Is(err, "only_primary_holder") {
		t.Fatalf("secondary grants (service): %v", err)
	}
	// A stranger does not even see it.
	w.customer(t, "eve@test.local")
	eve := w.loginCustomer(t, "eve@test.local")
	if res := eve.Get(fmt.Sprintf("/my/consents/%d", k.ID)); res.Status != 404 {
		t.Fatalf("stranger: %d", res.Status)
	}
	if res := eve.PostForm(fmt.Sprintf("/my/consents/%d/grant", k.ID), nil); res.Status != 404 {
		t.Fatalf("stranger grants: %d", res.Status)
	}

	// The primary holder grants with an end date, through the page.
	annaC := w.loginCustomer(t, "anna@test.local")
	csContains(t, annaC.Get("/my").Body, "waiting for your answer", "Mileage")
	page = annaC.Get(fmt.Sprintf("/my/consents/%d", k.ID))
	csContains(t, page.Body, "Insurance by usage", csPurpose, "total distance travelled", `id="grant"`)
	if res := annaC.PostForm(fmt.Sprintf("/my/consents/%d/grant", k.ID), url.Values{"ends_at": {"31.12.2099"}}); res.Status != 422 {
		t.Fatalf("bad date: %d", res.Status)
	}
	end := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
	if res := annaC.PostForm(fmt.Sprintf("/my/consents/%d/grant", k.ID), url.Values{"ends_at": {end}}); res.Status != http.StatusSeeOther {
		t.Fatalf("grant: %d %s", res.Status, res.Body)
	}
	if res := annaC.PostForm(fmt.Sprintf("/my/consents/%d/grant", k.ID), nil); res.Status != http.StatusConflict {
		t.Fatalf("grant twice: %d", res.Status)
	}
	if res := annaC.PostForm(fmt.Sprintf("/my/consents/%d/deny", k.ID), nil); res.Status != http.StatusConflict {
		t.Fatalf("deny a grant: %d", res.Status)
	}
	if r := w.decide(t, vin, v.ContainerID); r != policies.ReasonAllowed {
		t.Fatalf("after grant: %s", r)
	}

	// Deny a second request.
	v2 := w.approvedContainer(t, "Weekly", csWeekly)
	k2 := w.request(t, vin, v2.ContainerID)
	if res := annaC.PostForm(fmt.Sprintf("/my/consents/%d/deny", k2.ID), nil); res.Status != http.StatusSeeOther {
		t.Fatalf("deny: %d", res.Status)
	}
	if r := w.decide(t, vin, v2.ContainerID); r != policies.ReasonNoConsent {
		t.Fatalf("after deny: %s", r)
	}

	// The provider lists its own consents, filtered.
	list := call(w.gen.ListConsentsWithResponse(ctx, &client.ListConsentsParams{Vin: ptr(vin), State: ptr("granted")})).must(t)
	if l := list.JSON200; l == nil || len(l.Consents) != 1 || l.NextCursor != nil || int64(l.Consents[0].Id) != k.ID || l.Consents[0].ValidUntil == nil {
		t.Fatalf("granted list: %d %s", list.StatusCode(), list.Body)
	}
	if res := w.api.Get("/api/v1/consents?state=maybe"); res.Status != 422 {
		t.Fatalf("bad state filter: %d", res.Status)
	}
	other := mustActiveProvider(t, w.tt, "Nordlys Forsikring AS", "NO", "NO917345821")
	_, _, otherAPI := w.apiClients(t, other.Provider.ID)
	list = call(otherAPI.ListConsentsWithResponse(ctx, &client.ListConsentsParams{Vin: ptr(vin)})).must(t)
	if list.JSON200 == nil || len(list.JSON200.Consents) != 0 {
		t.Fatalf("another provider sees consents: %s", list.Body)
	}

	// The changelog: state, time, actor.
	changes, err := w.cs.Changes(w.tt.Ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	log := changes[k.ID]
	if len(log) != 2 || log[0].ToState != consent.Requested || log[0].ActorKind != policies.KindProvider ||
		log[1].ToState != consent.Granted || log[1].ActorKind != policies.KindCustomer || log[1].ActorLabel != "anna@test.local" {
		t.Fatalf("changelog: %+v", log)
	}
}

// Revoking takes effect on the very next provider read: the real
// telematicData endpoint answers, then refuses with consent_revoked.
func TestRevokeInTwoClicksFlipsTheDecisionAtOnce(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Mileage", csMileage)
	k := w.granted(t, vin, v.ContainerID, anna)
	read := func() (int, string) {
		res := call(w.gen.GetTelematicDataWithResponse(t.Context(), vin, &client.GetTelematicDataParams{ContainerId: int(v.ContainerID)})).must(t)
		if res.JSON200 != nil {
			return 200, "allowed"
		}
		return res.StatusCode(), apiProblem(res.Body)
	}
	if st, code := read(); st != 200 {
		t.Fatalf("read with consent: %d %s", st, code)
	}
	c := w.loginCustomer(t, "anna@test.local")
	home := c.Get("/my")
	csContains(t, home.Body, fmt.Sprintf(`href="/my/consents/%d/revoke"`, k.ID))
	confirm := c.Get(fmt.Sprintf("/my/consents/%d/revoke", k.ID)) // click 1
	csContains(t, confirm.Body, "Revoke this consent?", "Yes, revoke")
	if res := c.PostForm(fmt.Sprintf("/my/consents/%d/revoke", k.ID), nil); res.Status != http.StatusSeeOther { // click 2
		t.Fatalf("revoke: %d %s", res.Status, res.Body)
	}
	if st, code := read(); st != http.StatusForbidden || code != policies.ReasonConsentRevoked {
		t.Fatalf("read after revoke: %d %s", st, code)
	}
	if res := c.PostForm(fmt.Sprintf("/my/consents/%d/revoke", k.ID), nil); res.Status != http.StatusConflict {
		t.Fatalf("revoke twice: %d", res.Status)
	}
	csContains(t, c.Get("/my/history").Body, "consent revoked", "consent granted", "asked for your consent")
}

// Withdrawing a container ends its consents; suspending or terminating a
// provider ends its customers' consents. Both in the same transaction.
func TestWithdrawalAndProviderSuspensionEndConsents(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	vin2 := w.vehicle(t, "BMW", "DE", true, anna)
	v := w.approvedContainer(t, "Mileage", csMileage)
	k1 := w.granted(t, vin, v.ContainerID, anna)
	k2 := w.request(t, vin2, v.ContainerID)

	if _, err := w.ct.Deprecate(w.pctx, w.pid, v.ID, ""); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, vin, v.ContainerID); r != policies.ReasonAllowed {
		t.Fatalf("deprecated container, existing grant: %s", r)
	}
	got, _ := w.cs.FindProviderConsent(w.tt.Ctx, w.pid, k2.ID)
	if got.State != consent.Expired {
		t.Fatalf("open request of a deprecated container: %s", got.State)
	}
	if _, err := w.cs.Request(w.pctx, w.pid, consent.NewRequest{VIN: vin2, ContainerID: v.ContainerID}); !errs.Is(err, "container_not_approved") {
		t.Fatalf("new request to a deprecated container: %v", err)
	}
	if _, err := w.ct.Withdraw(w.pm1, 0, v.ID, "misuse of positions"); err != nil {
		t.Fatal(err)
	}
	got, _ = w.cs.FindProviderConsent(w.tt.Ctx, w.pid, k1.ID)
	if got.State != consent.Revoked {
		t.Fatalf("grant after withdrawal: %s", got.State)
	}
	changes, _ := w.cs.Changes(w.tt.Ctx, k1.ID)
	last := changes[k1.ID][len(changes[k1.ID])-1]
	if !strings.Contains(last.Note, "withdrawn: misuse of positions") || last.ActorKind != policies.KindStaff {
		t.Fatalf("withdrawal changelog: %+v", last)
	}
	if r := w.decide(t, vin, v.ContainerID); r != policies.ReasonContainerWithdrawn {
		t.Fatalf("after withdrawal: %s", r)
	}

	// Suspension: the provider's grants are revoked, its requests expire.
	v2 := w.approvedContainer(t, "Weekly", csWeekly)
	k3 := w.granted(t, vin, v2.ContainerID, anna)
	k4 := w.request(t, vin2, v2.ContainerID)
	pm := w.pm1
	if _, err := onboardingFor(w.tt).Review(pm, w.pid, onboarding.ActionSuspend, "unpaid invoices"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]consent.State{k3.ID: consent.Revoked, k4.ID: consent.Expired} {
		got, _ := w.cs.FindProviderConsent(w.tt.Ctx, w.pid, id)
		if got.State != want {
			t.Fatalf("consent %d after suspension: %s, want %s", id, got.State, want)
		}
	}
	if r := w.decide(t, vin, v2.ContainerID); r != policies.ReasonProviderNotActive {
		t.Fatalf("after suspension: %s", r)
	}
	// Reactivated, the provider must ask again.
	if _, err := onboardingFor(w.tt).Review(pm, w.pid, onboarding.ActionReactivate, ""); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, vin, v2.ContainerID); r != policies.ReasonConsentRevoked {
		t.Fatalf("after reactivation: %s", r)
	}
}

// The expiry job: requests unanswered for 30 days, grants past their end,
// consents of a former owner.
func TestConsentExpiryJob(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	ben := w.customer(t, "ben@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	vin2 := w.vehicle(t, "BMW", "DE", true, anna)
	v := w.approvedContainer(t, "Mileage", csMileage)
	v2 := w.approvedContainer(t, "Weekly", csWeekly)

	past := *w.cs
	past.Now = func() time.Time { return time.Now().Add(-csDays(31)) }
	old, err := past.Request(w.pctx, w.pid, consent.NewRequest{VIN: vin, ContainerID: v.ContainerID})
	if err != nil {
		t.Fatal(err)
	}
	fresh := w.request(t, vin2, v.ContainerID)
	end := time.Now().Add(-time.Hour)
	ending, err := past.Request(w.pctx, w.pid, consent.NewRequest{VIN: vin, ContainerID: v2.ContainerID, EndsAt: &end})
	if err != nil {
		t.Fatal(err)
	}
	if err := past.Grant(w.customerCtx(t, anna), anna, ending.ID, nil); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, vin, v2.ContainerID); r != policies.ReasonConsentExpired {
		t.Fatalf("past end date before the job: %s", r) // Decide compares the end date itself
	}
	owned := w.granted(t, vin2, v2.ContainerID, anna)

	// Anna sells the second car to Ben.
	if err := w.veh.RemoveHolder(w.tt.Ctx, vin2, anna); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, vin2, v2.ContainerID); r != policies.ReasonVehicleNotMapped {
		t.Fatalf("no holder: %s", r)
	}
	if err := w.veh.AssignHolder(w.tt.Ctx, vin2, ben, "primary"); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, vin2, v2.ContainerID); r != policies.ReasonNoConsent {
		t.Fatalf("new owner, old owner's consent: %s", r)
	}

	res, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.expire")
	if err != nil || res.Outcome != "succeeded" {
		t.Fatalf("job: %v %+v", err, res)
	}
	for id, want := range map[int64]consent.State{old.ID: consent.Expired, fresh.ID: consent.Expired, ending.ID: consent.Expired,
		owned.ID: consent.Revoked} {
		got, _ := w.cs.FindProviderConsent(w.tt.Ctx, w.pid, id)
		if got.State != want {
			t.Errorf("consent %d: %s, want %s", id, got.State, want)
		}
	}
	// fresh was asked of Anna, who no longer holds vin2: it lapses too.
	changes, _ := w.cs.Changes(w.tt.Ctx, old.ID)
	if n := changes[old.ID]; n[len(n)-1].Note != "unanswered for 30 days" || n[len(n)-1].ActorKind != policies.KindSystem {
		t.Fatalf("expiry changelog: %+v", n)
	}
	// Ben may now be asked afresh.
	if k := w.request(t, vin2, v2.ContainerID); k.AccountID != ben {
		t.Fatalf("new request goes to %d", k.AccountID)
	}
}

// Facts and policies.Decide together, on real data, for every reason code.
func TestDecisionOnRealDataForEveryReason(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t) // covers DE and AT
	w.coverMarkets(t, w.pid, "CH", "NO")
	anna := w.customer(t, "anna@test.local")
	v := w.approvedContainer(t, "Mileage", csMileage, csWeekly)

	bmwAT := w.vehicle(t, "BMW", "AT", true, anna)
	w.granted(t, bmwAT, v.ContainerID, anna)

	noTelematics := w.vehicle(t, "BMW", "DE", false, anna)
	w.granted(t, noTelematics, v.ContainerID, anna)

	miniCH := w.vehicle(t, "MINI", "CH", true, anna)
	w.granted(t, miniCH, v.ContainerID, anna)

	bmwUS := w.vehicle(t, "BMW", "US", true, anna)
	w.granted(t, bmwUS, v.ContainerID, anna)

	bmwFR := w.vehicle(t, "BMW", "FR", true, anna) // FR is not covered by the provider
	w.granted(t, bmwFR, v.ContainerID, anna)

	revoked := w.vehicle(t, "BMW", "DE", true, anna)
	kr := w.granted(t, revoked, v.ContainerID, anna)
	if err := w.cs.Revoke(w.customerCtx(t, anna), anna, kr.ID); err != nil {
		t.Fatal(err)
	}

	expired := w.vehicle(t, "BMW", "DE", true, anna)
	past := *w.cs
	past.Now = func() time.Time { return time.Now().Add(-csDays(40)) }
	if _, err := past.Request(w.pctx, w.pid, consent.NewRequest{VIN: expired, ContainerID: v.ContainerID}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cs.ExpireDue(policies.WithPrincipal(context.Background(), policies.System("test")), 100); err != nil {
		t.Fatal(err)
	}

	// Unmapped after the expiry job ran (which would end the consent of a
	// customer who no longer holds the vehicle).
	unmapped := w.vehicle(t, "BMW", "DE", true, anna)
	w.granted(t, unmapped, v.ContainerID, anna)
	if err := w.veh.RemoveHolder(w.tt.Ctx, unmapped, anna); err != nil {
		t.Fatal(err)
	}

	requested := w.vehicle(t, "BMW", "DE", true, anna)
	w.request(t, requested, v.ContainerID)
	nothing := w.vehicle(t, "BMW", "DE", true, anna)

	submitted, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "In review", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}

	withdrawnVIN := w.vehicle(t, "BMW", "AT", true, anna)
	wv := w.approvedContainer(t, "Ending", csMileage)
	w.granted(t, withdrawnVIN, wv.ContainerID, anna)
	if _, err := w.ct.Deprecate(w.pctx, w.pid, wv.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ct.Withdraw(w.pctx, w.pid, wv.ID, "ended"); err != nil {
		t.Fatal(err)
	}

	other := mustActiveProvider(t, w.tt, "Nordlys Forsikring AS", "NO", "NO917345821")
	foreign := w.approvedContainer(t, "Foreign check", csMileage) // belongs to w; read by another provider below

	cases := []struct {
		name      string
		provider  int64
		client    int64
		vin       string
		container int64
		keys      []string
		want      string
	}{
		{"allowed", w.pid, w.clientID, bmwAT, v.ContainerID, nil, policies.ReasonAllowed},
		{"allowed for one key", w.pid, w.clientID, bmwAT, v.ContainerID, []string{csWeekly}, policies.ReasonAllowed},
		{"key not in container", w.pid, w.clientID, bmwAT, v.ContainerID, []string{csLat}, policies.ReasonKeyNotInContainer},
		{"no consent", w.pid, w.clientID, nothing, v.ContainerID, nil, policies.ReasonNoConsent},
		{"only requested", w.pid, w.clientID, requested, v.ContainerID, nil, policies.ReasonNoConsent},
		{"unknown vehicle", w.pid, w.clientID, "WBATEST0000000000", v.ContainerID, nil, policies.ReasonNoConsent},
		{"revoked", w.pid, w.clientID, revoked, v.ContainerID, nil, policies.ReasonConsentRevoked},
		{"expired", w.pid, w.clientID, expired, v.ContainerID, nil, policies.ReasonConsentExpired},
		{"not telematics capable", w.pid, w.clientID, noTelematics, v.ContainerID, nil, policies.ReasonNotTelematicsCapable},
		{"MINI outside the EU", w.pid, w.clientID, miniCH, v.ContainerID, nil, policies.ReasonMiniOutsideEU},
		{"market not supported", w.pid, w.clientID, bmwUS, v.ContainerID, nil, policies.ReasonMarketNotSupported},
		{"market not covered", w.pid, w.clientID, bmwFR, v.ContainerID, nil, policies.ReasonMarketNotCovered},
		{"vehicle not mapped", w.pid, w.clientID, unmapped, v.ContainerID, nil, policies.ReasonVehicleNotMapped},
		{"container in review", w.pid, w.clientID, bmwAT, submitted.ContainerID, nil, policies.ReasonContainerNotApproved},
		{"unknown container", w.pid, w.clientID, bmwAT, 987654, nil, policies.ReasonContainerNotApproved},
		{"container withdrawn", w.pid, w.clientID, withdrawnVIN, wv.ContainerID, nil, policies.ReasonContainerWithdrawn},
		{"another provider's container", other.Provider.ID, 0, bmwAT, foreign.ContainerID, nil, policies.ReasonContainerNotApproved},
		{"push (no client)", w.pid, 0, bmwAT, v.ContainerID, nil, policies.ReasonAllowed},
	}
	for _, tc := range cases {
		d, _, refs, err := w.cs.Decide(context.Background(), tc.provider, tc.client, tc.vin, tc.container, tc.keys)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reason != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, d.Reason, tc.want)
		}
		if tc.want == policies.ReasonAllowed && (refs.ConsentID == 0 || refs.ContainerVersion != 1 || refs.VehicleID == 0) {
			t.Errorf("%s: refs %+v", tc.name, refs)
		}
	}

	// Client revoked, provider not active: the first two checks.
	if err := onboardingFor(w.tt).RevokeAPIClient(w.tt.Ctx, w.pid, w.clientID); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, bmwAT, v.ContainerID); r != policies.ReasonClientRevoked {
		t.Fatalf("revoked client: %s", r)
	}
	if _, err := onboardingFor(w.tt).Review(w.pm1, w.pid, onboarding.ActionTerminate, "contract ended"); err != nil {
		t.Fatal(err)
	}
	if r := w.decide(t, bmwAT, v.ContainerID); r != policies.ReasonProviderNotActive {
		t.Fatalf("terminated provider: %s", r)
	}
}

// Push recipients and the send-time check follow the consent: a reading of
// a key goes to the grants whose container has it, and a revocation stops
// what is queued.
func TestPushRecipientsAndSendTimeCheck(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Positions", csMileage, csLat, csLon)
	other := w.approvedContainer(t, "Mileage only", csMileage)
	k := w.granted(t, vin, v.ContainerID, anna)
	w.granted(t, vin, other.ContainerID, anna)
	veh, err := w.veh.FindByVIN(context.Background(), vin)
	if err != nil {
		t.Fatal(err)
	}
	id := func(key string) int16 {
		if k, ok := catalog.Default().Lookup(key); ok {
			return k.ID
		}
		return 9999 // no such key
	}
	recipients := func(keys ...string) ([]consent.Recipient, error) {
		ev := consent.VehicleEvent{VehicleID: veh.ID, At: time.Now()}
		for _, k := range keys {
			ev.KeyIDs = append(ev.KeyIDs, id(k))
		}
		rs, err := w.cs.RecipientsOf(context.Background(), w.tt.DB, []consent.VehicleEvent{ev})
		if err != nil {
			return nil, err
		}
		return rs[0], nil
	}
	rs, err := recipients(csLat)
	if err != nil || len(rs) != 1 || rs[0].ConsentID != k.ID || rs[0].ContainerID != v.ContainerID || rs[0].ContainerVersion != 1 ||
		!slices.Equal(rs[0].KeyIDs, []int16{id(csLat)}) {
		t.Fatalf("recipients of a position: %+v %v", rs, err)
	}
	if rs, _ := recipients(csMileage); len(rs) != 2 {
		t.Fatalf("recipients of the mileage: %+v", rs)
	}
	// An event of several keys: each grant with the keys its container has.
	const heading = "vehicle.cabin.infotainment.navigation.currentLocation.heading"
	rs, err = recipients(csLon, heading, csLat, csMileage)
	if err != nil || len(rs) != 2 {
		t.Fatalf("recipients of a whole event: %+v %v", rs, err)
	}
	for _, r := range rs {
		want := []int16{id(csMileage)}
		if r.ConsentID == k.ID {
			want = []int16{id(csMileage), id(csLat), id(csLon)}
		}
		slices.Sort(want)
		if !slices.Equal(r.KeyIDs, want) {
			t.Fatalf("recipient %d carries keys %v, want %v", r.ConsentID, r.KeyIDs, want)
		}
	}
	if rs, _ := recipients(heading); len(rs) != 0 {
		t.Fatalf("recipients of a key no container has: %+v", rs)
	}
	// The fan-out asks for a whole batch at once; each event keeps its own answer.
	batch, err := w.cs.RecipientsOf(context.Background(), w.tt.DB, []consent.VehicleEvent{
		{VehicleID: veh.ID, KeyIDs: []int16{id(csMileage)}, At: time.Now()}, {VehicleID: veh.ID + 1000, KeyIDs: []int16{id(csLat)}, At: time.Now()},
		{VehicleID: veh.ID, KeyIDs: []int16{id(csLat), id(csLat)}, At: time.Now()}, {VehicleID: veh.ID, KeyIDs: []int16{id("no.such.key")}, At: time.Now()}})
	if err != nil || len(batch) != 4 || len(batch[0]) != 2 || len(batch[1]) != 0 || len(batch[2]) != 1 ||
		batch[2][0].ConsentID != k.ID || !slices.Equal(batch[2][0].KeyIDs, []int16{id(csLat)}) || len(batch[3]) != 0 {
		t.Fatalf("recipients of a batch: %+v %v", batch, err)
	}
	if ok, reason, err := w.cs.ConsentActive(context.Background(), w.pid, k.ID, time.Now()); !ok || err != nil {
		t.Fatalf("active consent: %v %s %v", ok, reason, err)
	}
	if err := w.cs.Revoke(w.customerCtx(t, anna), anna, k.ID); err != nil {
		t.Fatal(err)
	}
	if ok, reason, _ := w.cs.ConsentActive(context.Background(), w.pid, k.ID, time.Now()); ok || reason != policies.ReasonConsentRevoked {
		t.Fatalf("after revoke: %v %s", ok, reason)
	}
	if rs, _ := recipients(csLat); len(rs) != 0 {
		t.Fatalf("recipients after revoke: %+v", rs)
	}
	// Another provider's consent id tells it nothing.
	nord := mustActiveProvider(t, w.tt, "Nordlys Forsikring AS", "NO", "NO917345821")
	if ok, reason, _ := w.cs.ConsentActive(context.Background(), nord.Provider.ID, k.ID, time.Now()); ok || reason != policies.ReasonNoConsent {
		t.Fatalf("foreign consent: %v %s", ok, reason)
	}
}
