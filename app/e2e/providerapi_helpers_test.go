package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"cardata/app/apptest"
	"cardata/app/ingest"
	"cardata/app/providerapi/client"
	"cardata/onboarding"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/consent"
)

// Keys of the API tests' container: mileage (sent), "is moving" (never
// sent, so it must read null) and the automatic service call (pushable).
const (
	apiKeyMileage     = "vehicle.vehicle.travelledDistance"
	apiKeyMoving      = "vehicle.isMoving"
	apiKeyServiceCall = "vehicle.status.automaticServiceCall"
)

var apiSeq atomic.Int64

// apiWorld is one provider with an API client, an approved container, a
// customer's vehicle with a granted consent, and readings.
type apiWorld struct {
	Provider    *onboarding.Registered
	ClientID    string
	Secret      string
	ContainerID int64
	VIN         string
	VehicleID   int64
	AccountID   int64
	ConsentID   int64
}

// apiTestVIN returns a fresh valid VIN (no I, O, Q).
func apiTestVIN() string {
	return fmt.Sprintf("WBA%014d", 10_000_000+apiSeq.Add(1))
}

func apiConsents(tt *apptest.T) *consent.Service {
	return &consent.Service{DB: tt.DB, IsEU: onboarding.IsEU}
}

// mustAPIWorld seeds everything through the real services.
func mustAPIWorld(t *testing.T, tt *apptest.T, name, country, vat string) *apiWorld {
	t.Helper()
	ctx := tt.Ctx
	w := &apiWorld{Provider: mustActiveProvider(t, tt, name, country, vat)}
	pid := w.Provider.Provider.ID
	ob := onboardingFor(tt)
	ns, err := ob.CreateAPIClient(ctx, pid, "backend")
	if err != nil {
		t.Fatal(err)
	}
	w.ClientID, w.Secret = ns.Client.ClientID, ns.Secret
	if _, err := ob.RequestMarkets(ctx, pid, []string{"AT"}); err != nil {
		t.Fatal(err)
	}
	if err := ob.DecideMarketAccess(ctx, pid, "AT", true, ""); err != nil {
		t.Fatal(err)
	}

	provCtx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ID: 1, ProviderID: pid,
		Roles: []string{"provider_developer"}, Email: "dev@" + name})
	cs := apiConsents(tt)
	ct := &containers.Service{DB: tt.DB, Consents: cs}
	v, err := ct.Create(provCtx, pid, containers.Input{Name: "Pay as you drive", Purpose: "Insurance premium from the distance driven.",
		PurposeCode: "insurance_usage", Keys: []string{apiKeyMileage, apiKeyMoving, apiKeyServiceCall}, Submit: true})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	w.ContainerID = v.ContainerID
	pm := tt.MustCreateStaff(t, fmt.Sprintf("pm%d@cardata.example", apiSeq.Add(1)), policies.RolePartnerManager)
	if _, ok, err := ct.Approve(policies.WithPrincipal(context.Background(), pm.Principal(0)), v.ID); err != nil || !ok {
		t.Fatalf("approve container: %v %v", ok, err)
	}

	veh := &vehicles.Service{DB: tt.DB}
	w.VIN = apiTestVIN()
	vv, err := veh.RegisterVehicle(ctx, vehicles.NewVehicle{VIN: w.VIN, Brand: "BMW", Model: "320d", Drivetrain: "combustion", Market: "AT",
		TelematicsCapable: true, SIMActive: true})
	if err != nil {
		t.Fatal(err)
	}
	w.VehicleID = vv.ID
	acc, err := veh.CreateAccount(ctx, vehicles.NewAccount{Email: fmt.Sprintf("anna%d@example.com", apiSeq.Add(1)), Name: "Anna"})
	if err != nil {
		t.Fatal(err)
	}
	w.AccountID = acc.ID
	if err := veh.AssignHolder(ctx, w.VIN, acc.ID, vehicles.RolePrimary); err != nil {
		t.Fatal(err)
	}
	if _, err := veh.Subscribe(ctx, w.VIN, vehicles.NewSubscription{Service: "cd_basic", StartsAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	req, err := cs.Request(provCtx, pid, consent.NewRequest{VIN: w.VIN, ContainerID: w.ContainerID})
	if err != nil {
		t.Fatalf("request consent: %v", err)
	}
	w.ConsentID = req.ID
	custCtx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindCustomer, ID: acc.ID})
	if err := cs.Grant(custCtx, acc.ID, req.ID, nil); err != nil {
		t.Fatalf("grant consent: %v", err)
	}
	return w
}

// apiIngest stores one reading through the real ingest.
func apiIngest(t *testing.T, tt *apptest.T, vin, key, value string, at time.Time) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"signals": []map[string]string{{"vin": vin, "key": key, "value": value,
		"timestamp": at.UTC().Format(time.RFC3339)}}})
	sigs, err := ingest.DecodeJSON(body, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tt.App.Ingest.Ingest(tt.Ctx, sigs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 {
		t.Fatalf("reading %s=%s not accepted: %+v", key, value, res)
	}
}

// apiTokenConfig gets tokens with the real OAuth2 client library.
func apiTokenConfig(apiBase string, w *apiWorld, style oauth2.AuthStyle) *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: w.ClientID, ClientSecret: w.Secret, TokenURL: apiBase + "/oauth/token", AuthStyle: style}
}

// apiInProcess is an http.RoundTripper that serves requests with the app
// itself (no listener, so no background workers race the test).
type apiInProcess struct{ tt *apptest.T }

func (p apiInProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	return p.tt.App.Fiber.Test(req, -1)
}

// apiInProcessClient is a plain HTTP client on the app; every exchange
// is checked against the OpenAPI document (apptest.ValidatingTransport).
func apiInProcessClient(t testing.TB, tt *apptest.T) *http.Client {
	return &http.Client{Transport: apptest.ValidatingTransport(t, apiInProcess{tt})}
}

// apiClient returns an HTTP client that authenticates with OAuth client
// credentials through golang.org/x/oauth2 (client_secret_basic).
func apiClient(t *testing.T, tt *apptest.T, w *apiWorld) *http.Client {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, apiInProcessClient(t, tt))
	cfg := apiTokenConfig("http://cardata.test", w, oauth2.AuthStyleInHeader)
	c := cfg.Client(ctx)
	return c
}

// apiGet sends an authenticated GET through a real HTTP client.
func apiGet(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func apiSend(t *testing.T, c *http.Client, method, u, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// apiGen is the generated client (app/providerapi/client) as a provider's
// program uses it: tokens from golang.org/x/oauth2/clientcredentials
// (apiClient), every exchange checked against the OpenAPI document.
func apiGen(t *testing.T, tt *apptest.T, w *apiWorld) *client.ClientWithResponses {
	t.Helper()
	return apiGenOver(t, apiClient(t, tt, w))
}

// apiGenOver is the generated client on an HTTP client of the test's making.
func apiGenOver(t testing.TB, hc *http.Client) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(apiBase, client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// call holds a generated client's answer and its transport error, so that
// call(api.GetX(...)).must(t) fails the test on the error and gives the
// answer.
func call[R any](res R, err error) called[R] { return called[R]{res, err} }

type called[R any] struct {
	res R
	err error
}

func (c called[R]) must(t testing.TB) R {
	t.Helper()
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.res
}

// apiProblem is the code of a problem document ("" when body is none).
func apiProblem(body []byte) string {
	var p client.Problem
	_ = json.Unmarshal(body, &p)
	return p.Code
}

func ptr[T any](v T) *T { return &v }
