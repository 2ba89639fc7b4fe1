package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/db/dbtest"
	"cardata/app/ingest"
	"cardata/onboarding/vehicles"
)

const (
	keyMileage = "vehicle.vehicle.travelledDistance"
	keyLat     = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
)

// ingestEnv is a booted app with a gateway token and registered vehicles.
type ingestEnv struct {
	tt    *apptest.T
	token string
	vins  []string
}

func newIngestEnv(t *testing.T, n int) *ingestEnv {
	t.Helper()
	tt := apptest.New(t)
	_, token, err := tt.App.Ingest.CreateGateway(tt.Ctx, "test-gateway", "")
	if err != nil {
		t.Fatal(err)
	}
	e := &ingestEnv{tt: tt, token: token}
	var fleet []vehicles.FleetVehicle
	for i := range n {
		vin := fmt.Sprintf("WBA11AA0X0E%06d", i)
		e.vins = append(e.vins, vin)
		fleet = append(fleet, vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{VIN: vin, Brand: "BMW", Model: "i4",
			Drivetrain: "bev", Market: "DE", TelematicsCapable: true, SIMActive: true}})
	}
	if _, err := tt.App.Vehicles.ImportFleet(tt.Ctx, fleet); err != nil {
		t.Fatal(err)
	}
	return e
}

type ingestResult struct {
	Received, Accepted int
	Rejected           []ingest.Rejection
}

type problem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (e *ingestEnv) post(t *testing.T, contentType string, body []byte, headers ...string) *apptest.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/ingest/v1/signals", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return e.tt.Client(t).Do(req)
}

func signalJSON(vin, key, value string, at time.Time) string {
	return fmt.Sprintf(`{"vin":%q,"key":%q,"value":%q,"timestamp":%q}`, vin, key, value, at.UTC().Format(time.RFC3339Nano))
}

func batch(signals ...string) []byte {
	return []byte(`{"signals":[` + strings.Join(signals, ",") + `]}`)
}

func wantProblem(t *testing.T, res *apptest.Response, status int, code string) {
	t.Helper()
	var p problem
	if res.Status != status || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("status %d (%s), want %d problem+json: %s", res.Status, res.Header.Get("Content-Type"), status, clipBody(res.Body))
	}
	res.JSON(t, &p)
	if p.Code != code {
		t.Fatalf("code %q, want %q: %s", p.Code, code, clipBody(res.Body))
	}
}

func clipBody(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func TestIngestAcceptsValidAndListsRejected(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 2)
	now := time.Now()
	res := e.post(t, "application/json; charset=utf-8", batch(
		signalJSON(e.vins[0], keyMileage, "1200", now.Add(-time.Minute)),
		signalJSON("WBA11AA0X0E999999", keyMileage, "1", now),
		signalJSON(e.vins[0], "vehicle.unknown.key", "1", now),
		signalJSON(e.vins[0], keyMileage, "1", now.Add(time.Hour)),
		signalJSON(e.vins[0], keyMileage, "many", now),
		`{"vin":"`+e.vins[1]+`","key":"`+keyLat+`","value":48.1372,"unit":"°","timestamp":"`+now.UTC().Format(time.RFC3339)+`"}`,
	))
	if res.Status != http.StatusOK {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	var r ingestResult
	res.JSON(t, &r)
	codes := map[int]string{}
	for _, rej := range r.Rejected {
		codes[rej.Index] = rej.Code
	}
	want := map[int]string{1: "unknown_vin", 2: "unknown_key", 3: "timestamp_in_future", 4: "value_type_mismatch"}
	if r.Received != 6 || r.Accepted != 2 || fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("result %+v, want rejected %v", r, want)
	}
	v, _ := e.tt.App.Vehicles.FindByVIN(e.tt.Ctx, e.vins[0])
	latest, err := e.tt.App.Vehicles.LatestValues(e.tt.Ctx, v.ID)
	if err != nil || len(latest) != 1 || latest[0].Value != "1200" || latest[0].Key.Name != keyMileage {
		t.Fatalf("latest values = %+v %v", latest, err)
	}
	// The newer reading arriving first and the older one second: the newer stays.
	e.post(t, "application/json", batch(signalJSON(e.vins[0], keyMileage, "1300", now)))
	e.post(t, "application/json", batch(signalJSON(e.vins[0], keyMileage, "1250", now.Add(-30*time.Second))))
	latest, _ = e.tt.App.Vehicles.LatestValues(e.tt.Ctx, v.ID)
	if latest[0].Value != "1300" {
		t.Fatalf("a late reading replaced the newer one: %+v", latest[0])
	}
}

func TestIngestNDJSONAndGzip(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 1)
	now := time.Now()
	nd := signalJSON(e.vins[0], keyMileage, "10", now) + "\n\n" + "{broken\n" + signalJSON(e.vins[0], keyLat, "48.1", now) + "\n"
	res := e.post(t, "application/x-ndjson", []byte(nd))
	var r ingestResult
	res.JSON(t, &r)
	if res.Status != 200 || r.Received != 3 || r.Accepted != 2 || len(r.Rejected) != 1 || r.Rejected[0].Index != 1 || r.Rejected[0].Code != "malformed_signal" {
		t.Fatalf("ndjson: %d %+v", res.Status, r)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(batch(signalJSON(e.vins[0], keyMileage, "11", now.Add(time.Second))))
	zw.Close()
	res = e.post(t, "application/json", zb.Bytes(), "Content-Encoding", "gzip")
	r = ingestResult{}
	res.JSON(t, &r)
	if res.Status != 200 || r.Accepted != 1 {
		t.Fatalf("gzip: %d %s", res.Status, res.Body)
	}
	wantProblem(t, e.post(t, "application/json", []byte("not gzip"), "Content-Encoding", "gzip"), 400, "malformed_body")
	wantProblem(t, e.post(t, "application/json", batch(), "Content-Encoding", "br"), 415, "unsupported_encoding")
	// A gzip bomb is cut off at 16 MiB, not inflated into memory.
	zb.Reset()
	zw = gzip.NewWriter(&zb)
	zw.Write([]byte(`{"signals":[`))
	zw.Write(bytes.Repeat([]byte(" "), 17<<20))
	zw.Close()
	wantProblem(t, e.post(t, "application/json", zb.Bytes(), "Content-Encoding", "gzip"), 413, "payload_too_large")
}

func TestIngestAuthentication(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 1)
	body := batch(signalJSON(e.vins[0], keyMileage, "1", time.Now()))
	for name, auth := range map[string]string{
		"no header": "", "wrong token": "Bearer not-the-token-at-all", "basic": "Basic dXNlcjpwYXNz", "empty bearer": "Bearer ",
	} {
		res := e.post(t, "application/json", body, "Authorization", auth)
		if res.Status != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: status %d, WWW-Authenticate %q", name, res.Status, res.Header.Get("WWW-Authenticate"))
		}
	}
	// A staff session cookie is no credential for the ingest (and needs no CSRF token either way).
	e.tt.MustCreateStaff(t, "admin@test.local", "admin")
	staff := e.tt.LoginStaff(t, "admin@test.local")
	req := httptest.NewRequest(http.MethodPost, "/ingest/v1/signals", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if res := staff.Do(req); res.Status != 401 {
		t.Fatalf("staff cookie: status %d", res.Status)
	}
	// The bearer token opens nothing else.
	req = httptest.NewRequest(http.MethodGet, "/admin", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if res := e.tt.Client(t).Do(req); res.Status != http.StatusSeeOther {
		t.Fatalf("token on /admin: status %d", res.Status)
	}
	// A disabled gateway is refused at its next request.
	g, err := e.tt.App.Ingest.FindGateway(e.tt.Ctx, "test-gateway")
	if err != nil {
		t.Fatal(err)
	}
	if res := e.post(t, "application/json", body); res.Status != 200 {
		t.Fatalf("active gateway: %d %s", res.Status, res.Body)
	}
	if err := e.tt.App.Ingest.SetGatewayActive(e.tt.Ctx, g.ID, false); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.post(t, "application/json", body), 401, "invalid_token")
}

func TestIngestRefusesMalformedRequests(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 1)
	good := batch(signalJSON(e.vins[0], keyMileage, "1", time.Now()))
	wantProblem(t, e.post(t, "", good), 415, "unsupported_media_type")
	wantProblem(t, e.post(t, "text/plain", good), 415, "unsupported_media_type")
	wantProblem(t, e.post(t, "application/x-www-form-urlencoded", []byte("signals=1")), 415, "unsupported_media_type")
	wantProblem(t, e.post(t, "application/json", nil), 400, "malformed_body")
	wantProblem(t, e.post(t, "application/json", []byte(`{"signals":5}`)), 400, "malformed_body")
	wantProblem(t, e.post(t, "application/json", []byte(`{"readings":[]}`)), 400, "signals_missing")
	wantProblem(t, e.post(t, "application/json", []byte(`{"signals":[{"vin":"A"`)), 400, "malformed_body")
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		garbage := make([]byte, r.IntN(2000))
		for j := range garbage {
			garbage[j] = byte(r.IntN(256))
		}
		if i%2 == 0 && len(garbage) > 12 {
			copy(garbage, `{"signals":[`)
		}
		for _, ct := range []string{"application/json", "application/x-ndjson"} {
			res := e.post(t, ct, garbage)
			if res.Status >= 500 {
				t.Fatalf("garbage (%s) gave %d: %s", ct, res.Status, res.Body)
			}
		}
	}
	// 50,000 signals are fine; one more is refused.
	var sb strings.Builder
	sb.WriteString(`{"signals":[`)
	sb.WriteString(strings.Repeat(`{},`, ingest.MaxSignals))
	sb.WriteString(`{}]}`)
	wantProblem(t, e.post(t, "application/json", []byte(sb.String())), 413, "too_many_signals")
	res := e.post(t, "application/json", []byte(strings.Replace(sb.String(), `{},{}]}`, `{}]}`, 1)))
	var rr ingestResult
	res.JSON(t, &rr)
	if res.Status != 200 || rr.Received != ingest.MaxSignals || len(rr.Rejected) != ingest.MaxSignals {
		t.Fatalf("exactly 50,000 signals: %d received %d", res.Status, rr.Received)
	}
	// Over 16 MiB (but under the server's hard limit).
	big := append([]byte(`{"signals":[],"pad":"`), bytes.Repeat([]byte("x"), 16<<20)...)
	big = append(big, `"}`...)
	wantProblem(t, e.post(t, "application/json", big), 413, "payload_too_large")
}

// Over the server's hard body limit the connection is refused before any
// handler runs; the answer is still a problem document, and the server lives on.
func TestIngestHugeBodyOverTheWire(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 1)
	base := e.tt.Serve(t)
	req, _ := http.NewRequest(http.MethodPost, base+"/ingest/v1/signals", bytes.NewReader(bytes.Repeat([]byte(" "), 18<<20)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 413 || !strings.Contains(string(body), "payload_too_large") {
			t.Fatalf("status %d: %s", res.StatusCode, clipBody(string(body)))
		}
	}
	// Whatever happened to that connection, the server still answers.
	res, err = http.Post(base+"/ingest/v1/signals", "application/json", bytes.NewReader(batch()))
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("after the huge body: %v %v", res, err)
	}
	res.Body.Close()
	// A client that sends its headers and then stalls holds one connection, not the server.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /ingest/v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"sig")
	res, err = http.Get(base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz while a client stalls: %v %v", res, err)
	}
	res.Body.Close()
}

// A shutdown during ingest never loses an acknowledged signal: every signal
// of every batch answered 200 is in the database afterwards.
func TestIngestShutdownKeepsAcknowledgedSignals(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 200)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.tt.App.ServeListener(ctx, ln, nil) }()
	url := "http://" + ln.Addr().String() + "/ingest/v1/signals"

	var mu sync.Mutex
	acked := map[string]bool{} // "vin|timestamp" of every acknowledged mileage reading
	var wg sync.WaitGroup
	start := time.Now().Add(-time.Hour)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: apptest.Patience}
			for b := 0; ; b++ {
				var sigs []string
				var keys []string
				for i := range 250 {
					vin := e.vins[(i+w*50)%len(e.vins)]
					at := start.Add(time.Duration(w*1_000_000+b*1000+i) * time.Millisecond)
					sigs = append(sigs, signalJSON(vin, keyMileage, fmt.Sprint(b), at))
					keys = append(keys, vin+"|"+at.UTC().Format(time.RFC3339Nano))
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(batch(sigs...)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+e.token)
				res, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var r ingestResult
				json.NewDecoder(res.Body).Decode(&r)
				res.Body.Close()
				if res.StatusCode != 200 {
					return
				}
				if r.Accepted != len(sigs) {
					t.Errorf("batch accepted %d of %d: %+v", r.Accepted, len(sigs), r.Rejected)
					return
				}
				mu.Lock()
				for _, k := range keys {
					acked[k] = true
				}
				mu.Unlock()
			}
		}()
	}
	// Shut down in the middle of the traffic: once a few batches are in,
	// with the writers still sending.
	apptest.WaitFor(t, apptest.Patience, "batches to be acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 3*250
	})
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(apptest.ShutdownTimeout + time.Minute):
		t.Fatal("shutdown did not complete")
	}
	wg.Wait()
	var stored []string
	err = e.tt.DB.Raw(`SELECT v.vin || '|' || to_char(r.read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') FROM vehicle_readings r
		JOIN vehicles v ON v.id = r.vehicle_id`).Scan(&stored).Error
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range stored {
		have[s] = true
	}
	missing := 0
	for k := range acked {
		vin, ts, _ := strings.Cut(k, "|")
		at, _ := time.Parse(time.RFC3339Nano, ts)
		if !have[vin+"|"+at.UTC().Format("2006-01-02T15:04:05.000")] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged signals are not stored", missing, len(acked))
	}
	t.Logf("%d acknowledged signals, all stored", len(acked))
}

// `cardata simulate` keeps a running server fed with readings that the
// ingest accepts.
func TestSimulateFeedsARunningServer(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 30)
	base := e.tt.Serve(t)
	fleet, err := ingest.SimulationFleet(e.tt.Ctx, e.tt.DB, 10)
	if err != nil || len(fleet.Vehicles) != 10 {
		t.Fatalf("fleet: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	simulated := make(chan error, 1)
	go func() {
		simulated <- ingest.Simulate(ctx, ingest.SimulateConfig{URL: base, Token: e.token, Rate: 200, Interval: 250 * time.Millisecond, Out: &out}, fleet)
	}()
	// Runs until the readings arrive, however long a loaded machine takes.
	apptest.WaitFor(t, apptest.Patience, "simulated readings to be stored", func() bool {
		var latest int64
		e.tt.DB.Raw("SELECT count(*) FROM vehicle_latest_values").Scan(&latest)
		return latest > 0
	})
	cancel()
	select {
	case err := <-simulated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(apptest.Patience):
		t.Fatal("simulate did not stop when its context ended")
	}
	if !strings.Contains(out.String(), "0 rejected, 0 failed requests") {
		t.Fatalf("simulate said: %s", out.String())
	}
	if _, err := ingest.SimulationFleet(e.tt.Ctx, apptest.New(t).DB, 0); err == nil {
		t.Fatal("an empty registry cannot be simulated")
	}
}

func TestIngestCLI(t *testing.T) {
	u := dbtest.URL(t)
	t.Setenv("DATABASE_URL", u)
	t.Setenv("LOG_LEVEL", "error")
	code, out, errOut := runCLI(t, "", "ingest", "gateway", "add", "--name", "plant-7")
	if code != 0 || !strings.Contains(out, "cdi_") {
		t.Fatalf("gateway add: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "", "ingest", "gateway", "add", "--name", "plant-7"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate gateway: %d %s", code, errOut)
	}
	if code, out, _ := runCLI(t, "", "bench", "ingest", "--help"); code != 0 || !strings.Contains(out, "-vehicles") {
		t.Fatalf("bench help: %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, "", "simulate", "--rate", "0"); code != 1 || !strings.Contains(errOut, "no connected vehicles") && !strings.Contains(errOut, "rate") {
		t.Fatalf("simulate on an empty registry: %d %s", code, errOut)
	}
}
