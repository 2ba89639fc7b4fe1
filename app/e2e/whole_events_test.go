package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding/containers"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/consent"
)

const (
	weLat     = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
	weLon     = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
	weAlt     = "vehicle.cabin.infotainment.navigation.currentLocation.altitude"
	weHeading = "vehicle.cabin.infotainment.navigation.currentLocation.heading"
	weOil     = "vehicle.drivetrain.engine.oil.levelWarning"
	weTyre    = "vehicle.chassis.tirePressureMonitoring.warning"
)

// grantContainer creates and approves a container of w's provider with
// keys and has w's customer grant it for w's vehicle.
func grantContainer(t *testing.T, tt *apptest.T, w *apiWorld, name string, keys ...string) (containerID, consentID int64) {
	t.Helper()
	pid := w.Provider.Provider.ID
	provCtx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ID: 1, ProviderID: pid,
		Roles: []string{"provider_developer"}, Email: fmt.Sprintf("dev%d@provider.example", pid)})
	cs := apiConsents(tt)
	ct := &containers.Service{DB: tt.DB, Consents: cs}
	v, err := ct.Create(provCtx, pid, containers.Input{Name: name, Purpose: "Insurance premium from the distance driven.",
		PurposeCode: "insurance_usage", Keys: keys, Submit: true})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	for i := 0; i < v.ApprovalsRequired; i++ {
		pm := tt.MustCreateStaff(t, fmt.Sprintf("pm%d@cardata.example", apiSeq.Add(1)), policies.RolePartnerManager)
		if v, _, err = ct.Approve(policies.WithPrincipal(context.Background(), pm.Principal(0)), v.ID); err != nil {
			t.Fatalf("approve container: %v", err)
		}
	}
	if v.State != containers.Approved {
		t.Fatalf("container %s is %s", name, v.State)
	}
	req, err := cs.Request(provCtx, pid, consent.NewRequest{VIN: w.VIN, ContainerID: v.ContainerID})
	if err != nil {
		t.Fatalf("request consent: %v", err)
	}
	custCtx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindCustomer, ID: w.AccountID})
	if err := cs.Grant(custCtx, w.AccountID, req.ID, nil); err != nil {
		t.Fatalf("grant consent: %v", err)
	}
	return v.ContainerID, req.ID
}

// pushedEvent is a push as its receiver decoded it.
type pushedEvent struct {
	Type string
	Data webhooks.TelematicsData
}

func (p *pushReceiver) events(t *testing.T) []pushedEvent {
	t.Helper()
	var out []pushedEvent
	for _, b := range p.got() {
		var msg webhooks.Message
		var ev pushedEvent
		if err := json.Unmarshal([]byte(b), &msg); err != nil {
			t.Fatalf("push body %s: %v", b, err)
		}
		ev.Type = msg.Type
		if err := json.Unmarshal(msg.Data, &ev.Data); err != nil {
			t.Fatalf("push data %s: %v", msg.Data, err)
		}
		out = append(out, ev)
	}
	return out
}

func (ev pushedEvent) keys() []string {
	var ks []string
	for k := range ev.Data.TelematicData {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// pushLedgerRow is billingtest.Record, with the fields this file's
// comparisons list in order.
type pushLedgerRow struct {
	ContainerID   int64
	KeysDelivered int
	Keys          string
	EventType     string
	EventID       string
}

// pushLedger are the provider's push records in the ledger, oldest first.
func pushLedger(t *testing.T, tt *apptest.T, providerID int64) []pushLedgerRow {
	t.Helper()
	var out []pushLedgerRow
	for _, r := range billingtest.Records(t, tt.DB, billingtest.RecordFilter{ProviderID: providerID, Kind: billing.KindPush}) {
		out = append(out, pushLedgerRow(r))
	}
	return out
}

// pushesBilled is the month's push count the provider API's usage shows.
func pushesBilled(t *testing.T, tt *apptest.T, w *apiWorld) int64 {
	t.Helper()
	res := call(apiGen(t, tt, w).GetUsageWithResponse(t.Context(), nil)).must(t)
	if res.JSON200 == nil {
		t.Fatalf("usage: %d %s", res.StatusCode(), res.Body)
	}
	for _, it := range res.JSON200.Items {
		if string(it.Item) == string(billing.ItemPush) {
			return int64(it.Count)
		}
	}
	t.Fatalf("usage without pushes: %s", res.Body)
	return 0
}

// A vehicle event is one thing that happened at one reading time (issue
// 17): readings sent together through the ingest's HTTP endpoint become one
// push per subscribed endpoint, carrying the keys the container allows, one
// ledger record and one billed push once delivered.
func TestVehicleEventsArePushedWhole(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	b := mustAPIWorld(t, tt, "Provider B GmbH", "DE", "DE136695976")
	posA, _ := grantContainer(t, tt, a, "Fleet positions", weLat, weLon, weAlt, weHeading, weOil, weTyre)
	posB, _ := grantContainer(t, tt, b, "Latitude only", weLat)
	hooks := tt.App.Webhooks
	recvA, recvB := &pushReceiver{}, &pushReceiver{}
	srvA, srvB := httptest.NewServer(recvA), httptest.NewServer(recvB)
	defer srvA.Close()
	defer srvB.Close()
	for _, s := range []struct {
		w   *apiWorld
		url string
	}{{a, srvA.URL}, {b, srvB.URL}} {
		pid := s.w.Provider.Provider.ID
		pctx := policies.WithPrincipal(tt.Ctx, &policies.Principal{Kind: policies.KindProvider, ProviderID: pid})
		if _, err := hooks.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: s.url,
			EventTypes: []string{webhooks.TypePositionUpdated, webhooks.TypeTelematicsUpdated, webhooks.TypeServiceCall}}); err != nil {
			t.Fatal(err)
		}
	}
	_, token, err := tt.App.Ingest.CreateGateway(tt.Ctx, "test-gateway", "")
	if err != nil {
		t.Fatal(err)
	}
	env := &ingestEnv{tt: tt, token: token}
	send := func(signals ...string) {
		t.Helper()
		res := env.post(t, "application/json", batch(signals...))
		var r ingestResult
		if err := json.Unmarshal([]byte(res.Body), &r); res.Status != http.StatusOK || err != nil || r.Accepted != len(signals) {
			t.Fatalf("ingest: %d %s", res.Status, res.Body)
		}
	}
	deliver := func(wantEvents int) {
		t.Helper()
		if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != wantEvents {
			t.Fatalf("fan-out: %d vehicle events, %v; want %d", n, err, wantEvents)
		}
		if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Latitude, longitude, altitude and heading read at one time (with the
	// mileage, which is no part of the event) for both vehicles.
	t1 := time.Now().Add(-3 * time.Minute).Truncate(time.Second)
	send(signalJSON(a.VIN, weLat, "48.137154", t1), signalJSON(a.VIN, weLon, "11.576124", t1), signalJSON(a.VIN, weAlt, "519.5", t1),
		signalJSON(a.VIN, weHeading, "270", t1), signalJSON(a.VIN, apiKeyMileage, "12000", t1),
		signalJSON(b.VIN, weLat, "52.520008", t1), signalJSON(b.VIN, weLon, "13.404954", t1), signalJSON(b.VIN, weHeading, "90", t1))
	deliver(2)
	got := recvA.events(t)
	if len(got) != 1 || got[0].Type != webhooks.TypePositionUpdated || got[0].Data.VIN != a.VIN || got[0].Data.ContainerID != posA ||
		!slices.Equal(got[0].keys(), []string{weAlt, weHeading, weLat, weLon}) {
		t.Fatalf("pushes to A: %+v", got)
	}
	pos := got[0].Data.TelematicData
	if string(pos[weLat].Value) != "48.137154" || string(pos[weLon].Value) != "11.576124" || string(pos[weHeading].Value) != "270" ||
		string(pos[weAlt].Value) != "519.5" || !pos[weLat].Timestamp.Equal(t1) {
		t.Fatalf("position values: %+v", pos)
	}
	ledgerA := pushLedger(t, tt, a.Provider.Provider.ID)
	if len(ledgerA) != 1 || ledgerA[0] != (pushLedgerRow{posA, 4, "150,151,152,153", webhooks.TypePositionUpdated, ledgerA[0].EventID}) ||
		!strings.HasPrefix(ledgerA[0].EventID, "evt_") {
		t.Fatalf("ledger of A: %+v", ledgerA)
	}
	if n := pushesBilled(t, tt, a); n != 1 {
		t.Fatalf("A is billed %d pushes for one position update", n)
	}
	// B's container allows the latitude only: its push carries nothing else.
	gotB := recvB.events(t)
	if len(gotB) != 1 || gotB[0].Data.ContainerID != posB || !slices.Equal(gotB[0].keys(), []string{weLat}) ||
		string(gotB[0].Data.TelematicData[weLat].Value) != "52.520008" {
		t.Fatalf("pushes to B: %+v", gotB)
	}
	if l := pushLedger(t, tt, b.Provider.Provider.ID); len(l) != 1 || l[0].Keys != "150" || l[0].KeysDelivered != 1 {
		t.Fatalf("ledger of B: %+v", l)
	}

	// Only a latitude, without its partner: still one event, with it alone.
	t2 := t1.Add(time.Minute)
	send(signalJSON(a.VIN, weLat, "48.2", t2))
	deliver(1)
	if got = recvA.events(t); len(got) != 2 || !slices.Equal(got[1].keys(), []string{weLat}) || string(got[1].Data.TelematicData[weLat].Value) != "48.2" {
		t.Fatalf("pushes to A: %+v", got)
	}
	if l := pushLedger(t, tt, a.Provider.Provider.ID); len(l) != 2 || l[1].Keys != "150" || l[1].EventType != webhooks.TypePositionUpdated {
		t.Fatalf("ledger of A: %+v", l)
	}

	// Two check control warnings read at one time are one event.
	t3 := t2.Add(time.Minute)
	send(signalJSON(a.VIN, weOil, "true", t3), signalJSON(a.VIN, weTyre, "true", t3))
	deliver(1)
	if got = recvA.events(t); len(got) != 3 || got[2].Type != webhooks.TypeTelematicsUpdated || !slices.Equal(got[2].keys(), []string{weTyre, weOil}) ||
		string(got[2].Data.TelematicData[weOil].Value) != "true" {
		t.Fatalf("pushes to A: %+v", got)
	}
	if l := pushLedger(t, tt, a.Provider.Provider.ID); len(l) != 3 || l[2].Keys != "97,98" || l[2].KeysDelivered != 2 {
		t.Fatalf("ledger of A: %+v", l)
	}
	if n := pushesBilled(t, tt, a); n != 3 {
		t.Fatalf("A is billed %d pushes for three events", n)
	}
	if n := pushesBilled(t, tt, b); n != 1 {
		t.Fatalf("B is billed %d pushes for one event", n)
	}
	if len(recvB.got()) != 1 {
		t.Fatalf("B got pushes for keys its container does not have: %q", recvB.got())
	}
}

// A poisoned event is set aside whole, with all its keys and values, the
// events around it are pushed, and the staff retry queues it whole again.
func TestPoisonedWholeEventIsDeadLetteredWhole(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	hooks := tt.App.Webhooks
	rec := &pushReceiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	subscribe(t, tt, w, srv.URL)

	const tele = "vehicle.status.teleServiceCall"
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"before"}`, time.Now().Add(-3*time.Minute))
	// A service call of two keys whose first value jsonb refuses (the ingest
	// refuses it now; an older version could have stored it).
	if err := tt.DB.Exec(`INSERT INTO vehicle_events (vehicle_id, event_type, key_ids, key_values, read_at)
		SELECT v.id, 'service_call', ARRAY[a.id, b.id], ARRAY[?, ?], now() - interval '2 minutes'
		FROM vehicles v, catalog_keys a, catalog_keys b WHERE v.vin = ? AND a.key = ? AND b.key = ?`,
		`[{"t":"a\u0000b"}]`, `{"dtc":"P0300"}`, w.VIN, apiKeyServiceCall, tele).Error; err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"after"}`, time.Now().Add(-time.Minute))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 3 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 2 || !strings.Contains(got[0]+got[1], "before") || !strings.Contains(got[0]+got[1], "after") {
		t.Fatalf("pushes received: %q", got)
	}
	dead, n, err := hooks.DeadEvents(tt.Ctx, 10)
	if err != nil || n != 1 || len(dead) != 1 || dead[0].Key != apiKeyServiceCall+", "+tele ||
		dead[0].Value != `[{"t":"a\u0000b"}] | {"dtc":"P0300"}` || dead[0].EventType != "service_call" || !strings.Contains(dead[0].Error, "22P05") {
		t.Fatalf("dead letters: %+v %d %v", dead, n, err)
	}
	if err := hooks.RetryDeadEvent(tt.Ctx, dead[0].ID); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Keys, Vals string
	}
	tt.DB.Raw(`SELECT array_to_string(key_ids, ',') AS keys, array_to_string(key_values, '|') AS vals FROM vehicle_events WHERE id = ?`,
		dead[0].ID).Scan(&back)
	if back.Keys != "90,91" || back.Vals != `[{"t":"a\u0000b"}]|{"dtc":"P0300"}` {
		t.Fatalf("retried event: %+v", back)
	}
}
