package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/providerapi"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding/vehicles"
	"cardata/onboarding/webhooks"
	"cardata/policies"
)

// Keys of the sandbox tests' container: mileage and the position (pushed
// as vehicle.positionUpdated when the simulated vehicle moves).
const (
	sbxKeyLat = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
	sbxKeyLon = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
)

// sbxContainer creates a container through the API with client c (a
// sandbox client's: a sandbox container, approved at once) and returns its id.
func sbxContainer(t *testing.T, c *http.Client, name string) int64 {
	t.Helper()
	res, body := apiSend(t, c, "POST", apiBase+"/api/v1/containers", fmt.Sprintf(
		`{"name":%q,"purpose":"Insurance premium from the distance driven.","purposeCode":"insurance_usage","technicalDescriptors":[%q,%q,%q]}`,
		name, apiKeyMileage, sbxKeyLat, sbxKeyLon), nil)
	if res.StatusCode != 201 {
		t.Fatalf("create container: %d %s", res.StatusCode, body)
	}
	var ct struct {
		ID    int64
		State string
	}
	_ = json.Unmarshal([]byte(body), &ct)
	return ct.ID
}

// sbxRequest asks for consent for vin in container and returns the answer.
func sbxRequest(t *testing.T, c *http.Client, vin string, container int64) (int, string) {
	t.Helper()
	res, body := apiSend(t, c, "POST", apiBase+"/api/v1/consent-requests", fmt.Sprintf(`{"vin":%q,"containerId":%d}`, vin, container), nil)
	return res.StatusCode, body
}

// sbxConsentID reads the id of a consent request's answer.
func sbxConsentID(t *testing.T, body string) int64 {
	t.Helper()
	var k struct{ ID int64 }
	if err := json.Unmarshal([]byte(body), &k); err != nil || k.ID == 0 {
		t.Fatalf("consent answer: %s", body)
	}
	return k.ID
}

// sbxWebhook registers a receiver through the API and returns the
// endpoint as the API answered it.
func sbxWebhook(t *testing.T, c *http.Client, u string, types ...string) providerapi.WebhookEndpoint {
	t.Helper()
	tj, _ := json.Marshal(types)
	res, body := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks", fmt.Sprintf(`{"url":%q,"eventTypes":%s}`, u, tj), nil)
	if res.StatusCode != 201 {
		t.Fatalf("create endpoint: %d %s", res.StatusCode, body)
	}
	var ep providerapi.WebhookEndpoint
	_ = json.Unmarshal([]byte(body), &ep)
	return ep
}

// A provider that has only registered (not yet approved) builds against the
// sandbox as a developer would: a sandbox client from the portal, a token
// from the same /oauth/token, a sandbox container, consent requests for
// simulated vehicles answered by the simulated customers' rule, data read,
// a signed push received, deliveries paged, never billed.
func TestSandboxBeforeApprovalEndToEnd(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	r := mustRegisterProvider(t, tt, "Sandkasten Telematik GmbH", "AT", "ATU13585627")
	pid := r.Provider.ID
	pc := loginProvider(t, tt, r.Admin.Email, providerPassword)

	// The portal offers a sandbox client before approval; the first one
	// creates the simulated fleet.
	page := pc.Get("/portal/clients")
	obMustContain(t, page.Body, `id="create-sandbox-client"`)
	if strings.Contains(page.Body, `id="create-client"`) {
		t.Fatalf("a production client is offered before approval")
	}
	res := pc.PostForm("/portal/clients", url.Values{"name": {"integration tests"}, "sandbox": {"1"}})
	if res.Status != http.StatusCreated {
		t.Fatalf("create sandbox client: %d %s", res.Status, res.Body)
	}
	clientID, secret := shownSecret(t, res.Body)
	if !strings.HasPrefix(clientID, "cdsbx_") {
		t.Fatalf("sandbox client id %s", clientID)
	}
	vin1 := vehicles.SandboxVIN(pid, 1, vehicles.BMW)  // ends in 1: the simulated customer grants
	vin2 := vehicles.SandboxVIN(pid, 2, vehicles.BMW)  // ends in 2: denies
	vin5 := vehicles.SandboxVIN(pid, 5, vehicles.MINI) // a MINI in Norway: not eligible
	obMustContain(t, pc.Get("/portal/sandbox").Body, vin1, vin5, "not eligible: MINI outside the EU")

	c := apiClient(t, tt, &apiWorld{ClientID: clientID, Secret: secret})
	container := sbxContainer(t, c, "Sandbox pay as you drive")
	res2, body := apiGet(t, c, fmt.Sprintf("%s/api/v1/containers/%d", apiBase, container))
	if res2.StatusCode != 200 || !strings.Contains(body, `"state":"approved"`) {
		t.Fatalf("sandbox container: %d %s", res2.StatusCode, body)
	}

	// A receiver of the sandbox's pushes.
	hooks := tt.App.Webhooks
	recv := &apiFlakyReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	ep := sbxWebhook(t, c, srv.URL+"/hooks", webhooks.TypePositionUpdated, webhooks.TypeConsentGranted)
	if !ep.Sandbox {
		t.Fatalf("an endpoint of a sandbox client is a sandbox endpoint: %+v", ep)
	}
	recv.mu.Lock()
	recv.secret = ep.Secret
	recv.mu.Unlock()

	// Requests: two eligible vehicles, one refused with production's reason.
	status, body := sbxRequest(t, c, vin1, container)
	if status != 201 || !strings.Contains(body, `"state":"requested"`) {
		t.Fatalf("request %s: %d %s", vin1, status, body)
	}
	granted := sbxConsentID(t, body)
	if status, body = sbxRequest(t, c, vin2, container); status != 201 {
		t.Fatalf("request %s: %d %s", vin2, status, body)
	}
	denied := sbxConsentID(t, body)
	if status, body = sbxRequest(t, c, vin5, container); status != 422 || !strings.Contains(body, "mini_outside_eu") {
		t.Fatalf("request for a MINI in Norway: %d %s", status, body)
	}

	// A moment later the simulated customers answer by the rule.
	tt.DB.Exec("UPDATE consents SET requested_at = requested_at - interval '1 minute' WHERE provider_id = ?", pid)
	run, err := tt.App.RunSandbox(tt.Ctx)
	if err != nil || run.Granted != 1 || run.Denied != 1 || run.Readings == 0 {
		t.Fatalf("sandbox run: %+v %v", run, err)
	}
	res2, body = apiGet(t, c, apiBase+"/api/v1/consents")
	if res2.StatusCode != 200 || !strings.Contains(body, fmt.Sprintf(`{"id":%d,"vin":%q`, granted, vin1)) {
		t.Fatalf("consents: %d %s", res2.StatusCode, body)
	}
	var consents struct {
		Consents []struct {
			ID    int64
			State string
		}
	}
	_ = json.Unmarshal([]byte(body), &consents)
	states := map[int64]string{}
	for _, k := range consents.Consents {
		states[k.ID] = k.State
	}
	if states[granted] != "granted" || states[denied] != "denied" {
		t.Fatalf("simulated answers: %v", states)
	}

	// The simulator's readings are there to read; the denied vehicle is not.
	dataURL := func(vin string) string {
		return fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, vin, container)
	}
	res2, body = apiGet(t, c, dataURL(vin1))
	if res2.StatusCode != 200 || !strings.Contains(body, `"vehicle.vehicle.travelledDistance":{"value":`) ||
		res2.Header.Get(providerapi.DeliveryHeader) == "" {
		t.Fatalf("read %s: %d %s", vin1, res2.StatusCode, body)
	}
	if res2, body = apiGet(t, c, dataURL(vin2)); res2.StatusCode != 403 || !strings.Contains(body, `"code":"no_consent"`) {
		t.Fatalf("read of the denied vehicle: %d %s", res2.StatusCode, body)
	}

	// The position update is pushed, signed, to the sandbox endpoint.
	if _, err := hooks.FanOut(tt.Ctx, 1000); err != nil {
		t.Fatal(err)
	}
	apptest.WaitFor(t, apptest.Patience, "a signed position push at the sandbox receiver", func() bool {
		if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
			t.Fatal(err)
		}
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for i, b := range recv.bodies {
			if recv.verified[i] == nil && strings.Contains(string(b), `"type":"vehicle.positionUpdated"`) && strings.Contains(string(b), vin1) {
				return true
			}
		}
		return false
	})
	apptest.WaitFor(t, apptest.Patience, "the push recorded as a sandbox delivery", func() bool {
		return billingtest.CountSandboxDeliveries(t, tt.DB, pid, billing.KindPush) > 0
	})

	// Deliveries page like the ledger, marked sandbox; usage counts, never priced.
	res2, body = apiGet(t, c, apiBase+"/api/v1/deliveries?limit=1")
	var pg providerapi.DeliveriesPage
	_ = json.Unmarshal([]byte(body), &pg)
	if res2.StatusCode != 200 || !pg.Sandbox || len(pg.Deliveries) != 1 || pg.NextCursor == nil {
		t.Fatalf("deliveries page 1: %d %s", res2.StatusCode, body)
	}
	first := pg.Deliveries[0].ID
	res2, body = apiGet(t, c, apiBase+"/api/v1/deliveries?limit=1&cursor="+url.QueryEscape(*pg.NextCursor))
	pg = providerapi.DeliveriesPage{}
	_ = json.Unmarshal([]byte(body), &pg)
	if res2.StatusCode != 200 || len(pg.Deliveries) != 1 || pg.Deliveries[0].ID >= first || pg.Deliveries[0].Invoiced {
		t.Fatalf("deliveries page 2: %d %s", res2.StatusCode, body)
	}
	res2, body = apiGet(t, c, apiBase+"/api/v1/usage")
	var usage billing.Usage
	_ = json.Unmarshal([]byte(body), &usage)
	if res2.StatusCode != 200 || len(usage.Items) != 2 || usage.Items[0].Count < 1 || usage.Items[1].Count < 1 || !usage.Total.IsZero() {
		t.Fatalf("sandbox usage: %d %s", res2.StatusCode, body)
	}
	if n := billingtest.CountRecords(t, tt.DB, billingtest.RecordFilter{ProviderID: pid}); n != 0 {
		t.Fatalf("the sandbox wrote %d ledger records", n)
	}
	// The portal shows the sandbox's usage, not billed.
	obMustContain(t, pc.Get("/portal/sandbox").Body, "sandbox-delivery-", "not billed")
	obMustContain(t, pc.Get("/portal/deliveries").Body, `id="sandbox-usage"`, "not billed")
}

// The portal's buttons let the simulated customer answer at once; another
// provider's request is not found.
func TestSandboxPortalButtonsAnswerForTheSimulatedCustomer(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	r := mustRegisterProvider(t, tt, "Sandkasten Flotten GmbH", "DE", "DE123456788")
	pid := r.Provider.ID
	ns, err := tt.App.Onboarding.CreateSandboxAPIClient(tt.Ctx, pid, "tests")
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, tt, &apiWorld{ClientID: ns.Client.ClientID, Secret: ns.Secret})
	container := sbxContainer(t, c, "Buttons")
	vin2 := vehicles.SandboxVIN(pid, 2, vehicles.BMW) // the rule would deny
	status, body := sbxRequest(t, c, vin2, container)
	if status != 201 {
		t.Fatalf("request: %d %s", status, body)
	}
	id := sbxConsentID(t, body)
	pc := loginProvider(t, tt, r.Admin.Email, providerPassword)
	obMustContain(t, pc.Get("/portal/sandbox").Body, fmt.Sprintf(`id="grant-%d"`, id))
	res := pc.PostForm(fmt.Sprintf("/portal/sandbox/consents/%d/grant", id), url.Values{})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("grant button: %d %s", res.Status, res.Body)
	}
	res2, body := apiGet(t, c, apiBase+"/api/v1/consents?state=granted")
	if res2.StatusCode != 200 || !strings.Contains(body, fmt.Sprintf(`"id":%d`, id)) {
		t.Fatalf("granted by the button: %s", body)
	}
	if res := pc.PostForm(fmt.Sprintf("/portal/sandbox/consents/%d/deny", id), url.Values{}); res.Status != http.StatusNotFound {
		t.Fatalf("answering an answered request: %d", res.Status)
	}
	other := mustRegisterProvider(t, tt, "Andere GmbH", "DE", "DE811907980")
	oc := loginProvider(t, tt, other.Admin.Email, providerPassword)
	if res := oc.PostForm(fmt.Sprintf("/portal/sandbox/consents/%d/deny", id), url.Values{}); res.Status != http.StatusNotFound {
		t.Fatalf("another provider answered: %d", res.Status)
	}
}

// Isolation both ways on every read endpoint, for a provider with a
// production client and a sandbox client side by side; then the invoice run
// bills the production traffic only and reconciles clean.
func TestSandboxIsolationBothWaysAndNeverBilled(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	ctx, bs := tt.Ctx, tt.App.Billing
	if _, err := bs.UpdateSeller(ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bs.EnsureInitialPriceList(ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	pid := w.Provider.Provider.ID
	apiIngest(t, tt, w.VIN, apiKeyMileage, "4100", time.Now().Add(-time.Minute))
	prod := apiClient(t, tt, w)
	ns, err := tt.App.Onboarding.CreateSandboxAPIClient(ctx, pid, "sandbox")
	if err != nil {
		t.Fatal(err)
	}
	sbx := apiClient(t, tt, &apiWorld{ClientID: ns.Client.ClientID, Secret: ns.Secret})
	sbxContainerID := sbxContainer(t, sbx, "Sandbox container")
	vin1 := vehicles.SandboxVIN(pid, 1, vehicles.BMW)
	vin3 := vehicles.SandboxVIN(pid, 3, vehicles.MINI)
	status, body := sbxRequest(t, sbx, vin1, sbxContainerID)
	if status != 201 {
		t.Fatalf("sandbox request: %d %s", status, body)
	}
	sbxConsent := sbxConsentID(t, body)
	if err := tt.App.Consents.AnswerSandboxRequest(ctx, pid, sbxConsent, true); err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, vin1, apiKeyMileage, "777", time.Now().Add(-time.Minute))

	get := func(c *http.Client, path string) (int, string) {
		t.Helper()
		res, body := apiGet(t, c, apiBase+path)
		return res.StatusCode, body
	}
	data := func(vin string, container int64) string {
		return fmt.Sprintf("/api/v1/vehicles/%s/telematicData?containerId=%d", vin, container)
	}
	// telematicData: each realm reads its own; the other realm's vehicle
	// reads as unknown, the other realm's container as none.
	for _, c := range []struct {
		name   string
		client *http.Client
		path   string
		status int
		code   string
	}{
		{"production reads its vehicle", prod, data(w.VIN, w.ContainerID), 200, ""},
		{"sandbox reads its simulated vehicle", sbx, data(vin1, sbxContainerID), 200, ""},
		{"sandbox reads a real vehicle (sandbox container)", sbx, data(w.VIN, sbxContainerID), 403, "no_consent"},
		{"sandbox reads a real vehicle (production container)", sbx, data(w.VIN, w.ContainerID), 403, "container_not_approved"},
		{"production reads a simulated vehicle (production container)", prod, data(vin1, w.ContainerID), 403, "no_consent"},
		{"production reads a simulated vehicle (sandbox container)", prod, data(vin1, sbxContainerID), 403, "container_not_approved"},
		{"capabilities: production of a simulated vehicle", prod, "/api/v1/vehicles/" + vin1 + "/capabilities", 404, "vehicle_not_found"},
		{"capabilities: sandbox of a real vehicle", sbx, "/api/v1/vehicles/" + w.VIN + "/capabilities", 404, "vehicle_not_found"},
		{"capabilities: sandbox of its own", sbx, "/api/v1/vehicles/" + vin3 + "/capabilities", 200, ""},
		{"capabilities: production of its own", prod, "/api/v1/vehicles/" + w.VIN + "/capabilities", 200, ""},
		{"containers: sandbox gets a production container", sbx, fmt.Sprintf("/api/v1/containers/%d", w.ContainerID), 404, "container_not_found"},
		{"containers: production gets a sandbox container", prod, fmt.Sprintf("/api/v1/containers/%d", sbxContainerID), 404, "container_not_found"},
	} {
		status, body := get(c.client, c.path)
		if status != c.status || (c.code != "" && !strings.Contains(body, `"code":"`+c.code+`"`)) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	// Consent requests across realms find neither the vehicle nor the container.
	for _, c := range []struct {
		name      string
		client    *http.Client
		vin       string
		container int64
		code      string
	}{
		{"sandbox asks for a real vehicle", sbx, w.VIN, sbxContainerID, "vehicle_not_found"},
		{"production asks for a simulated vehicle", prod, vin3, w.ContainerID, "vehicle_not_found"},
		{"sandbox uses a production container", sbx, vin3, w.ContainerID, "container_not_found"},
		{"production uses a sandbox container", prod, w.VIN, sbxContainerID, "container_not_found"},
	} {
		status, body := sbxRequest(t, c.client, c.vin, c.container)
		if status != 422 || !strings.Contains(body, c.code) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	// Lists: each realm sees its own containers and consents only.
	_, body = get(sbx, "/api/v1/containers")
	if !strings.Contains(body, fmt.Sprintf(`"id":%d`, sbxContainerID)) || strings.Contains(body, fmt.Sprintf(`"id":%d,`, w.ContainerID)) {
		t.Errorf("sandbox containers: %s", body)
	}
	_, body = get(prod, "/api/v1/containers")
	if strings.Contains(body, fmt.Sprintf(`"id":%d,`, sbxContainerID)) || !strings.Contains(body, fmt.Sprintf(`"id":%d`, w.ContainerID)) {
		t.Errorf("production containers: %s", body)
	}
	_, body = get(sbx, "/api/v1/consents")
	if !strings.Contains(body, vin1) || strings.Contains(body, w.VIN) {
		t.Errorf("sandbox consents: %s", body)
	}
	_, body = get(prod, "/api/v1/consents")
	if strings.Contains(body, vin1) || !strings.Contains(body, w.VIN) {
		t.Errorf("production consents: %s", body)
	}

	// Webhooks: each realm's endpoints, and each realm's events only.
	prodRecv, sbxRecv := &apiFlakyReceiver{}, &apiFlakyReceiver{}
	prodSrv, sbxSrv := httptest.NewServer(prodRecv), httptest.NewServer(sbxRecv)
	defer prodSrv.Close()
	defer sbxSrv.Close()
	prodEP := sbxWebhook(t, prod, prodSrv.URL+"/hooks", webhooks.TypeServiceCall)
	sbxEP := sbxWebhook(t, sbx, sbxSrv.URL+"/hooks", webhooks.TypeServiceCall)
	if prodEP.Sandbox || !sbxEP.Sandbox {
		t.Fatalf("endpoint realms: production %v, sandbox %v", prodEP.Sandbox, sbxEP.Sandbox)
	}
	for _, c := range []struct {
		client *http.Client
		own    int64
		other  int64
	}{{prod, prodEP.ID, sbxEP.ID}, {sbx, sbxEP.ID, prodEP.ID}} {
		_, body = get(c.client, "/api/v1/webhooks")
		if !strings.Contains(body, fmt.Sprintf(`"id":%d`, c.own)) || strings.Contains(body, fmt.Sprintf(`"id":%d,`, c.other)) {
			t.Errorf("webhook list: %s", body)
		}
		for _, path := range []string{fmt.Sprintf("/api/v1/webhooks/%d", c.other), fmt.Sprintf("/api/v1/webhooks/%d/deliveries", c.other)} {
			if status, body := get(c.client, path); status != 404 {
				t.Errorf("%s of the other realm: %d %s", path, status, body)
			}
		}
		res, body := apiSend(t, c.client, "POST", fmt.Sprintf("%s/api/v1/webhooks/%d/test", apiBase, c.other), "", nil)
		if res.StatusCode != 404 {
			t.Errorf("test event to the other realm's endpoint: %d %s", res.StatusCode, body)
		}
	}
	hooks := tt.App.Webhooks
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"real"}`, time.Now().Add(-time.Second))
	apiIngest(t, tt, vin1, apiKeyServiceCall, `{"reason":"simulated"}`, time.Now().Add(-time.Second))
	if _, err := hooks.FanOut(ctx, 100); err != nil {
		t.Fatal(err)
	}
	// The sandbox container lacks the service call key: its consent gets no
	// service-call push; the production one does, at the production endpoint only.
	ds, _, _ := hooks.FindDeliveries(ctx, pid, webhooks.DeliveryFilter{EndpointID: sbxEP.ID})
	if len(ds) != 0 {
		t.Errorf("the sandbox endpoint got a production event: %+v", ds)
	}
	ds, _, _ = hooks.FindDeliveries(ctx, pid, webhooks.DeliveryFilter{EndpointID: prodEP.ID})
	if len(ds) != 1 {
		t.Errorf("production endpoint deliveries: %+v", ds)
	}

	// Deliveries: each realm lists its own.
	_, body = get(prod, "/api/v1/deliveries")
	if !strings.Contains(body, w.VIN) || strings.Contains(body, vin1) || !strings.Contains(body, `"sandbox":false`) {
		t.Errorf("production deliveries: %s", body)
	}
	_, body = get(sbx, "/api/v1/deliveries")
	if strings.Contains(body, w.VIN) || !strings.Contains(body, vin1) || !strings.Contains(body, `"sandbox":true`) {
		t.Errorf("sandbox deliveries: %s", body)
	}

	// Staff see the sandbox's activity on the provider page.
	tt.MustCreateStaff(t, "pm-sandbox@cardata.example", policies.RolePartnerManager)
	staff := tt.LoginStaff(t, "pm-sandbox@cardata.example")
	obMustContain(t, staff.Get(fmt.Sprintf("/admin/providers/%d", pid)).Body, `id="sandbox-pulls">1 `, "not billed")

	// The invoice run of this month bills the production reads only and
	// reconciles clean; the sandbox's deliveries stay where they are.
	prodRecords := billingtest.CountRecords(t, tt.DB, billingtest.RecordFilter{ProviderID: pid})
	sandboxRecords := billingtest.CountSandboxDeliveries(t, tt.DB, pid, "")
	if prodRecords != 1 || sandboxRecords != 1 {
		t.Fatalf("records: ledger %d, sandbox %d", prodRecords, sandboxRecords)
	}
	period := billing.PeriodOf(time.Now(), tt.App.Cfg.BillingTimezone)
	bs.Now = func() time.Time { return period.End.Add(time.Hour) }
	run, err := bs.RunPeriod(ctx, period.String(), billing.RunOptions{Trigger: billing.TriggerTest})
	if err != nil || run.RecordsBilled != prodRecords || run.InvoicesCreated != 1 {
		t.Fatalf("invoice run: %+v %v", run, err)
	}
	rep, err := bs.Reconcile(ctx, period.String())
	if err != nil || !rep.OK() || rep.Records != prodRecords || rep.Pending != 0 {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	if n := billingtest.CountSandboxDeliveries(t, tt.DB, pid, ""); n != sandboxRecords {
		t.Fatalf("sandbox deliveries changed by the run: %d", n)
	}
}
