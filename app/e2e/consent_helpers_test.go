package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/providerapi/client"
	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/consent"
)

// consentWorld is a booted app with an active provider covering DE and AT,
// its API client with a bearer token, and two partner managers: the cast of
// the container and consent tests.
type consentWorld struct {
	tt       *apptest.T
	cs       *consent.Service
	ct       *containers.Service
	veh      *vehicles.Service
	provider *onboarding.Registered
	pid      int64
	clientID int64                       // api_clients.id
	api      *apptest.Client             // raw requests (deliberately malformed ones, security walks)
	gen      *client.ClientWithResponses // the same API client through the generated client, as a provider's program
	pctx     context.Context             // the provider's API client
	pm1, pm2 context.Context             // two partner managers
	pm1Email string
	pm2Email string
}

var csSeq atomic.Int64

// csVIN returns a fresh, well-formed VIN.
func csVIN() string { return fmt.Sprintf("WBATEST%010d", csSeq.Add(1)) }

// newConsentWorld boots the app and casts the world.
func newConsentWorld(t *testing.T) *consentWorld {
	t.Helper()
	return consentWorldOn(t, apptest.New(t))
}

// consentWorldOn casts the world on a booted app (one with identity
// providers, for instance).
func consentWorldOn(t *testing.T, tt *apptest.T) *consentWorld {
	t.Helper()
	w := &consentWorld{tt: tt, veh: &vehicles.Service{DB: tt.DB, Catalog: catalog.Default()}}
	w.cs = &consent.Service{DB: tt.DB, IsEU: onboarding.IsEU, BcryptCost: 4}
	w.ct = &containers.Service{DB: tt.DB, Catalog: catalog.Default(), Consents: w.cs}
	w.provider = mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU57318405")
	w.pid = w.provider.Provider.ID
	w.coverMarkets(t, w.pid, "DE", "AT")
	w.clientID, w.api, w.gen = w.apiClients(t, w.pid)
	w.pctx = policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ID: w.clientID,
		Name: "test-client", ProviderID: w.pid, Roles: []string{"provider_api"}})
	w.pm1Email, w.pm2Email = "pm1@test.local", "pm2@test.local"
	u1 := tt.MustCreateStaff(t, w.pm1Email, policies.RolePartnerManager)
	u2 := tt.MustCreateStaff(t, w.pm2Email, policies.RolePartnerManager)
	w.pm1 = policies.WithPrincipal(context.Background(), u1.Principal(0))
	w.pm2 = policies.WithPrincipal(context.Background(), u2.Principal(0))
	return w
}

// coverMarkets requests and approves markets for a provider.
func (w *consentWorld) coverMarkets(t *testing.T, pid int64, markets ...string) {
	t.Helper()
	svc := onboardingFor(w.tt)
	if _, err := svc.RequestMarkets(w.tt.Ctx, pid, markets); err != nil {
		t.Fatal(err)
	}
	for _, m := range markets {
		if err := svc.DecideMarketAccess(w.tt.Ctx, pid, m, true, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// apiClient creates an API client and returns its id and an HTTP client
// carrying a bearer token from the real /oauth/token.
func (w *consentWorld) apiClient(t *testing.T, pid int64) (int64, *apptest.Client) {
	t.Helper()
	id, raw, _ := w.apiClients(t, pid)
	return id, raw
}

// apiClients is apiClient with, beside the raw client, the generated client
// of the same API client, getting its own tokens through
// golang.org/x/oauth2/clientcredentials.
func (w *consentWorld) apiClients(t *testing.T, pid int64) (int64, *apptest.Client, *client.ClientWithResponses) {
	t.Helper()
	n := csSeq.Add(1)
	key, secret := fmt.Sprintf("cd_test_%d", n), fmt.Sprintf("secret-%d-abcdefghijklmnopqrstuvwxyz", n)
	ns, err := onboardingFor(w.tt).CreateAPIClientWithSecret(w.tt.Ctx, pid, "tests", key, secret)
	if err != nil {
		t.Fatal(err)
	}
	c := w.tt.Client(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {key}, "client_secret": {secret}}
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res := c.Do(req)
	if res.Status != http.StatusOK {
		t.Fatalf("token: %d %s", res.Status, res.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	res.JSON(t, &tok)
	c.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return ns.Client.ID, c, apiGenOver(t, apiClient(t, w.tt, &apiWorld{ClientID: key, Secret: secret}))
}

// customer creates a customer account with the demo-style password.
func (w *consentWorld) customer(t *testing.T, email string) int64 {
	t.Helper()
	a, err := w.veh.CreateAccount(w.tt.Ctx, vehicles.NewAccount{Email: email, Name: strings.Split(email, "@")[0]})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cs.SetCustomerPassword(w.tt.Ctx, a.ID, csPassword); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

const csPassword = "customer-password-1"

// vehicle registers a vehicle held by account as primary (0: nobody).
func (w *consentWorld) vehicle(t *testing.T, brand, market string, capable bool, account int64) string {
	t.Helper()
	vin := csVIN()
	if brand == "MINI" {
		vin = "WMW" + vin[3:]
	}
	if _, err := w.veh.RegisterVehicle(w.tt.Ctx, vehicles.NewVehicle{VIN: vin, Brand: brand, Model: "Test", Drivetrain: "combustion",
		Market: market, TelematicsCapable: capable, SIMActive: capable}); err != nil {
		t.Fatal(err)
	}
	if account != 0 {
		if err := w.veh.AssignHolder(w.tt.Ctx, vin, account, vehicles.RolePrimary); err != nil {
			t.Fatal(err)
		}
	}
	// The standard service, so that a consent request can pass the
	// eligibility check (a connected service must enable the container's keys).
	if _, err := w.veh.Subscribe(w.tt.Ctx, vin, vehicles.NewSubscription{Service: "cd_basic", StartsAt: time.Now().AddDate(-1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	return vin
}

const csPurpose = "Your premium follows how much you drive: we read the mileage and the weekly distance once a month."

// approvedContainer creates and approves a container of the world's provider.
func (w *consentWorld) approvedContainer(t *testing.T, name string, keys ...string) *containers.Version {
	t.Helper()
	v, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: name, Purpose: csPurpose, PurposeCode: "insurance_usage", Keys: keys, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, pm := range []context.Context{w.pm1, w.pm2} {
		if i >= v.ApprovalsRequired {
			break
		}
		if v, _, err = w.ct.Approve(pm, v.ID); err != nil {
			t.Fatal(err)
		}
	}
	if v.State != containers.Approved {
		t.Fatalf("container %s is %s", name, v.State)
	}
	return v
}

// customerCtx is the customer acting in /my.
func (w *consentWorld) customerCtx(t *testing.T, account int64) context.Context {
	t.Helper()
	c, err := w.cs.FindCustomer(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	return policies.WithPrincipal(context.Background(), c.Principal(0))
}

// request asks for consent through the service as the world's provider.
func (w *consentWorld) request(t *testing.T, vin string, containerID int64) *consent.Consent {
	t.Helper()
	k, err := w.cs.Request(w.pctx, w.pid, consent.NewRequest{VIN: vin, ContainerID: containerID})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// granted requests and grants a consent.
func (w *consentWorld) granted(t *testing.T, vin string, containerID, account int64) *consent.Consent {
	t.Helper()
	k := w.request(t, vin, containerID)
	if err := w.cs.Grant(w.customerCtx(t, account), account, k.ID, nil); err != nil {
		t.Fatal(err)
	}
	return k
}

// loginCustomer signs a customer in through the /my form.
func (w *consentWorld) loginCustomer(t *testing.T, email string) *apptest.Client {
	t.Helper()
	c := w.tt.Client(t)
	res := c.PostForm("/my/login", url.Values{"email": {email}, "password": {csPassword}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/my" {
		t.Fatalf("customer login %s: %d %s", email, res.Status, res.Body)
	}
	return c
}

// decide gathers the facts and decides for the world's API client.
func (w *consentWorld) decide(t *testing.T, vin string, containerID int64, keys ...string) string {
	t.Helper()
	d, _, _, err := w.cs.Decide(context.Background(), w.pid, w.clientID, vin, containerID, keys)
	if err != nil {
		t.Fatal(err)
	}
	return d.Reason
}

func csDays(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

const (
	csMileage = "vehicle.vehicle.travelledDistance"
	csWeekly  = "vehicle.vehicle.averageWeeklyDistanceShortTerm"
	csTrips   = "vehicle.vehicle.tripCount"
	csLat     = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
	csLon     = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
)

// csContains fails unless body contains every part.
func csContains(t *testing.T, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Fatalf("page lacks %q:\n%s", p, body)
		}
	}
}
