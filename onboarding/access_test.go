package onboarding_test

import (
	"context"
	"testing"
	"time"

	"cardata/onboarding"
	"cardata/policies/errs"
)

func TestAPIClientCreateRotateWithOverlapRevoke(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.mustRegister(t, "Client AG", "DE", "DE136695976")
	id := r.Provider.ID
	ctx := providerCtx(r.Admin)
	if _, err := f.svc.CreateAPIClient(ctx, id, "backend"); !errs.Is(err, "provider_not_active") {
		t.Fatalf("client for an application: %v", err)
	}
	f.mustActivate(t, id)
	ns, err := f.svc.CreateAPIClient(ctx, id, "backend")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Secret) < 40 || string(ns.Client.SecretHash) == ns.Secret || ns.Client.SecretHint != ns.Secret[len(ns.Secret)-4:] {
		t.Fatalf("secret %q stored as %x", ns.Secret, ns.Client.SecretHash)
	}
	var stored int64
	f.svc.DB.Raw("SELECT count(*) FROM api_clients WHERE secret_hash = convert_to(?, 'UTF8')", ns.Secret).Scan(&stored)
	if stored != 0 {
		t.Fatal("secret stored in clear")
	}
	if _, err := f.svc.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, ns.Secret); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, ns.Secret+"x"); !errs.Is(err, "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
	// Rotation: both secrets work during the overlap, only the new one after it.
	if _, err := f.svc.RotateAPIClientSecret(ctx, id, ns.Client.ID, 8*24*time.Hour); fieldCode(err, "overlap") != "overlap_invalid" {
		t.Fatalf("overlap too long: %v", err)
	}
	rot, err := f.svc.RotateAPIClientSecret(ctx, id, ns.Client.ID, time.Hour)
	if err != nil || rot.Secret == ns.Secret || rot.Client.PreviousValidUntil == nil {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	for _, s := range []string{ns.Secret, rot.Secret} {
		if _, err := f.svc.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, s); err != nil {
			t.Fatalf("during overlap: %v", err)
		}
	}
	later := *f.svc
	later.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := later.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, ns.Secret); !errs.Is(err, "invalid_client") {
		t.Fatalf("old secret after overlap: %v", err)
	}
	if _, err := later.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, rot.Secret); err != nil {
		t.Fatalf("new secret after overlap: %v", err)
	}
	// Suspension stops API access at once.
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionSuspend, "audit pending"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, rot.Secret); !errs.Is(err, "provider_not_active") {
		t.Fatalf("suspended provider's client: %v", err)
	}
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionReactivate, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RevokeAPIClient(ctx, id, ns.Client.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateAPIClient(f.ctx, ns.Client.ClientID, rot.Secret); !errs.Is(err, "invalid_client") {
		t.Fatalf("revoked client: %v", err)
	}
	if err := f.svc.RevokeAPIClient(ctx, id, ns.Client.ID); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("revoke twice: %v", err)
	}
	if _, err := f.svc.RotateAPIClientSecret(ctx, id, ns.Client.ID, 0); !errs.Is(err, "api_client_revoked") {
		t.Fatalf("rotate revoked: %v", err)
	}
}

// A provider's id scopes every query: another provider's records are not
// found, whatever ids are guessed.
func TestProviderCannotReachAnotherProvidersRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.mustRegister(t, "Provider A AG", "DE", "DE136695976")
	b := f.mustRegister(t, "Provider B AG", "AT", "ATU13585627")
	f.mustActivate(t, a.Provider.ID)
	f.mustActivate(t, b.Provider.ID)
	bClient, err := f.svc.CreateAPIClient(providerCtx(b.Admin), b.Provider.ID, "b-backend")
	if err != nil {
		t.Fatal(err)
	}
	bDocs, _ := f.svc.FindDocuments(f.ctx, b.Provider.ID)
	actx := providerCtx(a.Admin)
	aID := a.Provider.ID
	if list, _ := f.svc.FindAPIClients(actx, aID); len(list) != 0 {
		t.Fatalf("A sees clients: %+v", list)
	}
	checks := map[string]error{}
	_, checks["client"] = f.svc.FindAPIClient(actx, aID, bClient.Client.ID)
	_, checks["rotate"] = f.svc.RotateAPIClientSecret(actx, aID, bClient.Client.ID, 0)
	checks["revoke"] = f.svc.RevokeAPIClient(actx, aID, bClient.Client.ID)
	_, checks["document"] = f.svc.FindDocument(actx, aID, bDocs[0].ID)
	checks["deactivate user"] = f.svc.SetProviderUserActive(actx, aID, b.Admin.ID, false)
	for what, err := range checks {
		if errs.KindOf(err) != errs.NotFound {
			t.Errorf("%s of B through A: %v", what, err)
		}
	}
	users, _ := f.svc.FindProviderUsers(actx, aID)
	if len(users) != 1 || users[0].ID != a.Admin.ID {
		t.Fatalf("A's users: %+v", users)
	}
	if _, err := f.svc.AuthenticateAPIClient(f.ctx, bClient.Client.ClientID, bClient.Secret); err != nil {
		t.Fatalf("B's client was touched: %v", err)
	}
}

func TestMarketsRequestDecideAndCoverage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.mustRegister(t, "Alpen Versicherung AG", "AT", "ATU13585627")
	id := r.Provider.ID
	ctx := providerCtx(r.Admin)
	markets, _ := f.svc.FindMarkets(f.ctx)
	if len(markets) != 31 {
		t.Fatalf("%d markets seeded", len(markets))
	}
	if _, err := f.svc.RequestMarkets(ctx, id, []string{"AT"}); !errs.Is(err, "provider_not_active") {
		t.Fatalf("request before approval: %v", err)
	}
	f.mustActivate(t, id)
	if _, err := f.svc.RequestMarkets(ctx, id, []string{"IS"}); fieldCode(err, "markets") != "market_unknown" {
		t.Fatalf("Iceland is no market: %v", err)
	}
	got, err := f.svc.RequestMarkets(ctx, id, []string{"at", "DE", "CH"})
	if err != nil || join(got) != "AT DE CH" {
		t.Fatalf("request: %v %v", got, err)
	}
	if got, _ := f.svc.RequestMarkets(ctx, id, []string{"AT"}); len(got) != 0 {
		t.Fatalf("re-request created %v", got)
	}
	for _, m := range []string{"AT", "DE"} {
		if err := f.svc.DecideMarketAccess(f.staff, id, m, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.svc.DecideMarketAccess(f.staff, id, "CH", false, ""); fieldCode(err, "reason") != "reason_required" {
		t.Fatalf("reject without reason: %v", err)
	}
	if err := f.svc.DecideMarketAccess(f.staff, id, "CH", false, "no Swiss licence yet"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DecideMarketAccess(f.staff, id, "AT", true, ""); !errs.Is(err, "market_not_requested") {
		t.Fatalf("approve twice: %v", err)
	}
	if err := f.svc.DecideMarketAccess(f.staff, id, "FR", true, ""); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unrequested market: %v", err)
	}
	for m, want := range map[string]bool{"AT": true, "DE": true, "CH": false, "FR": false} {
		if got, err := f.svc.ProviderCovers(f.ctx, id, m); err != nil || got != want {
			t.Errorf("covers %s = %v %v", m, got, err)
		}
	}
	// A paused market serves nobody and takes no requests.
	if _, err := f.svc.SetMarketActive(f.staff, "DE", false); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.ProviderCovers(f.ctx, id, "DE"); got {
		t.Fatal("paused market still covered")
	}
	if _, err := f.svc.RequestMarkets(ctx, id, []string{"DE", "FR"}); fieldCode(err, "markets") != "market_paused" {
		t.Fatalf("request in paused market: %v", err)
	}
	f.svc.EligibleVehicles = func(_ context.Context, m string) (int64, error) { return int64(len(m)) * 10, nil }
	rows, err := f.svc.CoverageReport(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		switch row.Market.Code {
		case "AT":
			if len(row.Active) != 1 || row.Active[0].LegalName != "Alpen Versicherung AG" || row.Vehicles == nil || *row.Vehicles != 20 {
				t.Fatalf("AT row: %+v", row)
			}
		case "CH":
			if len(row.Active) != 0 || len(row.Pending) != 0 {
				t.Fatalf("CH row: %+v", row)
			}
		}
	}
}

func TestInviteUsersAndThrottleSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.mustRegister(t, "Team AG", "DE", "DE136695976")
	id := r.Provider.ID
	ctx := providerCtx(r.Admin)
	if _, err := f.svc.InviteProviderUser(ctx, id, onboarding.Invite{Email: "dev@example.com", Name: "Dev", Role: "wizard"}); fieldCode(err, "role") != "role_unknown" {
		t.Fatalf("unknown role: %v", err)
	}
	inv, err := f.svc.InviteProviderUser(ctx, id, onboarding.Invite{Email: "Dev@Example.com", Name: "Dana Dev", Role: onboarding.RoleProviderDeveloper})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.InviteProviderUser(ctx, id, onboarding.Invite{Email: "dev@example.com", Name: "Again", Role: onboarding.RoleProviderFinance}); fieldCode(err, "email") != "email_taken" {
		t.Fatalf("duplicate invite: %v", err)
	}
	token := inv.Link[len("http://cardata.test/portal/invitations/"):]
	expired := *f.svc
	expired.Now = func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }
	if _, err := expired.AcceptInvitation(f.ctx, token, "developer-password"); !errs.Is(err, "invitation_invalid") {
		t.Fatalf("expired link: %v", err)
	}
	u, err := f.svc.AcceptInvitation(f.ctx, token, "developer-password")
	if err != nil || u.Role != onboarding.RoleProviderDeveloper {
		t.Fatalf("accept: %+v %v", u, err)
	}
	p, err := f.svc.ResolvePrincipal(f.ctx, u.ID, 1)
	if err != nil || p == nil || p.ProviderID != id || !p.HasRole(onboarding.RoleProviderDeveloper) {
		t.Fatalf("principal: %+v %v", p, err)
	}
	if err := f.svc.SetProviderUserActive(ctx, id, r.Admin.ID, false); !errs.Is(err, "own_deactivation") {
		t.Fatalf("self deactivation: %v", err)
	}
	if err := f.svc.SetProviderUserActive(ctx, id, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.svc.ResolvePrincipal(f.ctx, u.ID, 1); p != nil {
		t.Fatal("deactivated user still resolves")
	}
	for i := 0; i < 5; i++ {
		if _, err := f.svc.Authenticate(f.ctx, r.Admin.Email, "wrong-password", "198.51.100.7"); !errs.Is(err, "login_failed") {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := f.svc.Authenticate(f.ctx, r.Admin.Email, "a-long-password", "198.51.100.8"); !errs.Is(err, "login_throttled") {
		t.Fatalf("throttle: %v", err)
	}
}
