package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// The example program, run against a real server as a developer would run
// it: it reads a consented vehicle's data, then receives a test push and
// verifies it, and refuses a forged one. Every exchange it has with the API
// is checked against the OpenAPI document.
func TestExampleReadsAVehicleAndVerifiesPushes(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := seed(t, tt)
	base := tt.Serve(t)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient,
		&http.Client{Transport: apptest.ValidatingTransport(t, nil), Timeout: apptest.Patience})
	env := map[string]string{"CARDATA_URL": base, "CARDATA_CLIENT_ID": w.clientID, "CARDATA_CLIENT_SECRET": w.secret}
	getenv := func(k string) string { return env[k] }
	args := []string{"-vin", w.vin, "-container", strconv.FormatInt(w.containerID, 10)}

	var out lockedBuffer
	if err := run(ctx, args, getenv, &out); err != nil {
		t.Fatalf("example: %v\n%s", err, out.String())
	}
	for _, want := range []string{w.vin + " (BMW, market AT): eligible true",
		"vehicle.vehicle.travelledDistance = 12345 km (read " + w.readAt.UTC().Format(time.RFC3339) + ")",
		"vehicle.isMoving: no value received yet", "delivery "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the example's output lacks %q:\n%s", want, out.String())
		}
	}

	// Pushes: the provider registers the example's receiver (with the
	// generated client too), then the example listens with the endpoint's
	// secret.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	creds := clientcredentials.Config{ClientID: w.clientID, ClientSecret: w.secret, TokenURL: base + "/oauth/token"}
	api, err := client.NewClientWithResponses(base, client.WithHTTPClient(creds.Client(ctx)))
	if err != nil {
		t.Fatal(err)
	}
	created, err := api.CreateWebhookWithResponse(ctx, nil, client.CreateWebhookJSONRequestBody{Url: "http://" + addr + "/webhook",
		EventTypes: []client.EventType{client.VehicleServiceCall}})
	if err != nil || created.JSON201 == nil || created.JSON201.Secret == "" {
		t.Fatalf("create endpoint: %v %s", err, created.Body)
	}
	env["CARDATA_WEBHOOK_SECRET"] = created.JSON201.Secret

	listenCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(listenCtx, append(args, "-listen", addr), getenv, &out) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("example: %v", err)
			}
		case <-time.After(apptest.Patience):
			t.Error("the example did not stop")
		}
	}()
	apptest.WaitFor(t, apptest.Patience, "the example to listen", func() bool {
		return strings.Contains(out.String(), "listening for pushes at http://"+addr+"/webhook")
	})
	test, err := api.TestWebhookWithResponse(ctx, created.JSON201.Id, nil)
	if err != nil || test.StatusCode() != http.StatusAccepted {
		t.Fatalf("test event: %v %s", err, test.Body)
	}
	apptest.WaitFor(t, apptest.Patience, "the test push to arrive verified", func() bool {
		return strings.Contains(out.String(), "verified: webhook.test")
	})

	// A forged push (no valid signature) is refused and not trusted.
	body := []byte(`{"type":"vehicle.serviceCall","timestamp":"2026-12-05T09:00:00Z","data":{}}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook", bytes.NewReader(body))
	req.Header.Set("webhook-id", "msg_forged")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("webhook-signature", "v1,Zm9yZ2VkLXNpZ25hdHVyZS1mb3JnZWQtc2lnbmF0dXJlIQ==")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || strings.Contains(out.String(), "msg_forged verified") ||
		!strings.Contains(out.String(), "push refused: webhook: signature does not verify") {
		t.Fatalf("forged push: %d\n%s", res.StatusCode, out.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type world struct {
	clientID, secret string
	vin              string
	containerID      int64
	readAt           time.Time
}

// seed makes, through the real services, what a provider has before its
// first read: an approved company with an API client and market AT, an
// approved container, and a customer's BMW with a granted consent and one
// mileage reading.
func seed(t *testing.T, tt *apptest.T) world {
	t.Helper()
	s, ctx := tt.App.Services, tt.Ctx
	reg, err := s.Onboarding.Register(ctx, onboarding.Registration{LegalName: "Alpen Versicherung AG", LegalForm: "AG", Street: "Ring 1",
		PostalCode: "1010", City: "Wien", Country: "AT", VATID: "ATU13585627", RegisterNumber: "FN 1", ContactName: "Admin",
		ContactEmail: "admin@alpen.example", BillingEmail: "billing@alpen.example", IntendedServices: "Usage-based insurance.",
		TermsVersion: "2025-01", AcceptTerms: true, AdminPassword: "provider-password-1", ClientAddr: "192.0.2.9",
		Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	pid := reg.Provider.ID
	for _, a := range []onboarding.Action{onboarding.ActionClaim, onboarding.ActionApprove} {
		if _, err := s.Onboarding.Review(ctx, pid, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := s.Onboarding.CreateAPIClient(ctx, pid, "backend")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Onboarding.RequestMarkets(ctx, pid, []string{"AT"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Onboarding.DecideMarketAccess(ctx, pid, "AT", true, ""); err != nil {
		t.Fatal(err)
	}
	w := world{clientID: ns.Client.ClientID, secret: ns.Secret, vin: "WBA00000000070001", readAt: time.Now().Add(-time.Minute).Truncate(time.Second)}

	dev := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ID: 1, ProviderID: pid,
		Roles: []string{"provider_developer"}, Email: "dev@alpen.example"})
	v, err := s.Containers.Create(dev, pid, containers.Input{Name: "Pay as you drive", Purpose: "Insurance premium from the distance driven.",
		PurposeCode: "insurance_usage", Keys: []string{"vehicle.vehicle.travelledDistance", "vehicle.isMoving"}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	w.containerID = v.ContainerID
	pm := tt.MustCreateStaff(t, "pm@cardata.example", policies.RolePartnerManager)
	if _, ok, err := s.Containers.Approve(policies.WithPrincipal(context.Background(), pm.Principal(0)), v.ID); err != nil || !ok {
		t.Fatalf("approve container: %v %v", ok, err)
	}

	if _, err := s.Vehicles.RegisterVehicle(ctx, vehicles.NewVehicle{VIN: w.vin, Brand: "BMW", Model: "320d", Drivetrain: "combustion",
		Market: "AT", TelematicsCapable: true, SIMActive: true}); err != nil {
		t.Fatal(err)
	}
	acc, err := s.Vehicles.CreateAccount(ctx, vehicles.NewAccount{Email: "anna@example.com", Name: "Anna"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Vehicles.AssignHolder(ctx, w.vin, acc.ID, vehicles.RolePrimary); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Vehicles.Subscribe(ctx, w.vin, vehicles.NewSubscription{Service: "cd_basic", StartsAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	req, err := s.Consents.Request(dev, pid, consent.NewRequest{VIN: w.vin, ContainerID: w.containerID})
	if err != nil {
		t.Fatal(err)
	}
	anna := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindCustomer, ID: acc.ID})
	if err := s.Consents.Grant(anna, acc.ID, req.ID, nil); err != nil {
		t.Fatal(err)
	}

	body, _ := json.Marshal(map[string]any{"signals": []map[string]string{{"vin": w.vin, "key": "vehicle.vehicle.travelledDistance",
		"value": "12345", "timestamp": w.readAt.UTC().Format(time.RFC3339)}}})
	sigs, err := ingest.DecodeJSON(body, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.Ingest.Ingest(ctx, sigs); err != nil || res.Accepted != 1 {
		t.Fatalf("reading: %+v %v", res, err)
	}
	return w
}
