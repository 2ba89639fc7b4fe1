package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"cardata/app"
	"cardata/app/apptest"
	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/jobs"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// starvationPool is the small pool the starvation test runs on: far fewer
// connections than jobs that fall due at once.
const starvationPool = 10

// starvationPatience bounds every wait of the starvation test. It is no
// estimate of how long anything takes; only a hang (a starved pool) reaches it.
const starvationPatience = 2 * time.Minute

// Every job falls due at the same moment (the app's own catch-ups at start
// plus a dozen more) on a small pool while gateways post readings and a
// provider reads data through the API. Requests keep being answered and
// every job run is recorded: background work cannot take the connections
// requests need, and no run holds a connection while it waits for another.
func TestJobsAllDueAtOnceDoNotStarveRequests(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	cfg := apptest.Config(t, u)
	cfg.DBMaxOpenConns = starvationPool
	gdb, err := db.Open(u, starvationPool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(gdb) })
	a, err := app.New(cfg, gdb, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tt := &apptest.T{App: a, DB: gdb, DBURL: u, Ctx: policies.WithPrincipal(context.Background(), policies.System("test"))}

	// A dozen jobs whose last tick (1 January) is inside their catch-up
	// window: all run the moment the scheduler starts. Each body works the
	// way the real ones do, a few short transactions one after another
	// with progress in between.
	const extra = 12
	for i := range extra {
		a.Jobs.MustRegister(jobs.Job{Name: fmt.Sprintf("test.due_%02d", i), Spec: "@yearly", CatchUp: 400 * 24 * time.Hour,
			Run: func(ctx context.Context, r *jobs.Run) error {
				for step := int64(1); step <= 4; step++ {
					err := gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
						return tx.Exec("SELECT pg_sleep(0.02)").Error
					})
					if err != nil {
						return err
					}
					r.Progress(ctx, step, 4, "working")
				}
				return nil
			}})
	}

	// Ingest: a gateway and a small fleet. API: a provider with a consent
	// to one vehicle that has a reading.
	_, gatewayToken, err := a.Ingest.CreateGateway(tt.Ctx, "starvation-gateway", "")
	if err != nil {
		t.Fatal(err)
	}
	var fleet []vehicles.FleetVehicle
	var vins []string
	for i := range 10 {
		vin := fmt.Sprintf("WBA22BB0X0E%06d", i)
		vins = append(vins, vin)
		fleet = append(fleet, vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{VIN: vin, Brand: "BMW", Model: "i4",
			Drivetrain: "bev", Market: "DE", TelematicsCapable: true, SIMActive: true}})
	}
	if _, err := a.Vehicles.ImportFleet(tt.Ctx, fleet); err != nil {
		t.Fatal(err)
	}
	w := mustAPIWorld(t, tt, "Starvation Insurance AG", "AT", "ATU13585627")
	apiIngest(t, tt, w.VIN, apiKeyMileage, "12345", time.Now().Add(-time.Minute))

	// Serving starts the scheduler: every job above falls due now.
	base := tt.Serve(t)
	httpc := &http.Client{Timeout: starvationPatience}
	apiC := apiTokenConfig(base, w, oauth2.AuthStyleInHeader).Client(context.WithValue(context.Background(), oauth2.HTTPClient, httpc))
	dataURL := fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", base, w.VIN, w.ContainerID)

	const workers, rounds = 3, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for g := range workers {
		wg.Add(3)
		go func() { // a gateway posting batches
			defer wg.Done()
			for i := range rounds {
				at := time.Now().Add(-time.Duration(g*rounds+i) * time.Second).UTC().Format(time.RFC3339Nano)
				var sigs []string
				for j, vin := range vins {
					sigs = append(sigs, fmt.Sprintf(`{"vin":%q,"key":%q,"value":"%d","timestamp":%q}`, vin, apiKeyMileage, 1000+g*100+i*10+j, at))
				}
				req, _ := http.NewRequest(http.MethodPost, base+"/ingest/v1/signals", bytes.NewReader([]byte(`{"signals":[`+strings.Join(sigs, ",")+`]}`)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+gatewayToken)
				if status, body, err := starvationDo(httpc, req); err != nil || status != http.StatusOK {
					fail("ingest batch %d/%d: %d %v %s", g, i, status, err, body)
					return
				}
			}
		}()
		go func() { // a provider reading data
			defer wg.Done()
			for i := range rounds {
				req, _ := http.NewRequest(http.MethodGet, dataURL, nil)
				if status, body, err := starvationDo(apiC, req); err != nil || status != http.StatusOK || !strings.Contains(body, "12345") {
					fail("API read %d/%d: %d %v %s", g, i, status, err, body)
					return
				}
			}
		}()
		go func() { // a prospect reading the supported markets (read from the database)
			defer wg.Done()
			for i := range rounds {
				req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/markets", nil)
				if status, body, err := starvationDo(httpc, req); err != nil || status != http.StatusOK || !strings.Contains(body, `"DE"`) {
					fail("markets %d/%d: %d %v %s", g, i, status, err, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}

	// Every run that started is recorded with its outcome: nothing is
	// left "running" and every extra job ran once, successfully. (Read on
	// a connection of the test's own: a starved pool must fail the test,
	// not hang it.)
	check, err := db.Open(u, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(check)
	type row struct {
		Job, Outcome, Error string
	}
	var rows []row
	deadline := time.Now().Add(starvationPatience)
	for {
		rows = nil
		if err := check.Raw(`SELECT job, outcome, error FROM job_runs ORDER BY id`).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		running, extraDone := 0, 0
		for _, r := range rows {
			switch {
			case r.Outcome == string(jobs.Running):
				running++
			case strings.HasPrefix(r.Job, "test.due_"):
				extraDone++
			}
		}
		if running == 0 && extraDone >= extra {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d runs still running, %d of %d extra jobs finished: %+v", starvationPatience, running, extraDone, extra, rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Job]++
		if r.Outcome != string(jobs.Succeeded) {
			t.Errorf("run of %s: %s %s", r.Job, r.Outcome, r.Error)
		}
	}
	for i := range extra {
		if n := seen[fmt.Sprintf("test.due_%02d", i)]; n != 1 {
			t.Errorf("test.due_%02d ran %d times, want once", i, n)
		}
	}
	t.Logf("%d job runs recorded: %v", len(rows), seen)
}

// starvationDo sends req and reads the answer.
func starvationDo(c *http.Client, req *http.Request) (int, string, error) {
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}
