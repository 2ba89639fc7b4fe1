package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"cardata/app/apptest"
	"cardata/app/db"
	"cardata/billing"
	"cardata/policies"
)

// Shutdown waits for every goroutine the app started: the full app serves
// telematic reads (the fast path's batch leaders) and an invoice run
// started from the finance UI, which is still at work when SIGTERM comes
// (a test transaction holds the lock of one of its providers). When
// ServeListener has returned, the run has already been stopped and
// recorded as interrupted, and once the database is closed no goroutine of
// the app is left.
//
// Not parallel: goleak looks at every goroutine of the process, and the
// parallel tests only start once the sequential ones are done.
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	// Whatever ran before (other sequential tests' leftovers, the test
	// framework) is not this app's.
	before := goleak.IgnoreCurrent()

	tt, de, _ := billingApp(t)
	w := mustAPIWorld(t, tt, fmt.Sprintf("Leak Versicherung AG %d", apiSeq.Add(1)), "AT", "ATU13585627")
	apiIngest(t, tt, w.VIN, apiKeyMileage, "4711", time.Now().Add(-time.Minute))
	tt.MustCreateStaff(t, "fin@leak.test", policies.RoleFinance)
	fin := tt.LoginStaff(t, "fin@leak.test")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	served := make(chan error, 1)
	go func() { served <- tt.App.ServeListener(ctx, ln, nil) }()
	base := "http://" + ln.Addr().String()
	apptest.WaitServing(t, base)

	// Telematic reads over HTTP, several at once (the pipeline's leaders).
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	api := apiTokenConfig(base, w, oauth2.AuthStyleInHeader).Client(context.WithValue(context.Background(), oauth2.HTTPClient, plain))
	dataURL := fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", base, w.VIN, w.ContainerID)
	var mu sync.Mutex
	statuses := map[int]int{}
	var reads sync.WaitGroup
	for range 6 {
		reads.Add(1)
		go func() {
			defer reads.Done()
			res, err := api.Get(dataURL)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mu.Lock()
			statuses[res.StatusCode]++
			mu.Unlock()
		}()
	}
	reads.Wait()
	if statuses[http.StatusOK] == 0 {
		t.Fatalf("telematic reads: %v", statuses)
	}

	// The German provider's lock, held by a transaction of the test: the
	// run started from the UI blocks on it and is running at shutdown.
	lockTx := tt.DB.Begin()
	if err := lockTx.Exec(`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, fmt.Sprintf("cardata.billing.provider:%d", de)).Error; err != nil {
		t.Fatal(err)
	}
	defer lockTx.Rollback()
	res := fin.PostForm("/admin/billing/runs", url.Values{"period": {"2026-10"}})
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(location(res), "/admin/billing/runs/") {
		t.Fatalf("start run: %d %s", res.Status, res.Body)
	}
	runID := idInPath.FindStringSubmatch(location(res))[1]
	apptest.WaitFor(t, apptest.Patience, "the run to wait for the provider lock", func() bool {
		var waiting int64
		tt.DB.Raw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		return waiting > 0
	})

	sigterm()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(apptest.ShutdownTimeout + time.Minute):
		t.Fatal("shutdown did not complete")
	}
	// Shutdown stopped the run and waited for it: its end is recorded.
	var run billing.InvoiceRun
	if err := tt.DB.First(&run, runID).Error; err != nil {
		t.Fatal(err)
	}
	if run.Status != "interrupted" || run.FinishedAt == nil {
		t.Fatalf("run after shutdown: %s (finished %v)", run.Status, run.FinishedAt)
	}
	lockTx.Rollback()
	tt.App.Close() // a second Close does nothing
	plain.CloseIdleConnections()
	if err := db.Close(tt.DB); err != nil {
		t.Fatal(err)
	}

	opts := []goleak.Option{before,
		// Both belong to the HTTP library (fasthttp, under fiber), not to
		// the app. The Date header's clock: one goroutine per process,
		// started by the first server and never stopped (header.go
		// updateServerDate).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// The worker pool's cleaner sleeps up to MaxIdleWorkerDuration
		// between looks at its stop channel: it returns on its own, after
		// Serve has returned.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	}
	// Goroutines on their way out (fasthttp's workers, told to stop when
	// Serve returned) get their time on a loaded machine: look again until
	// Patience has passed; only a real leak takes that long.
	apptest.Eventually(apptest.Patience, func() bool { return goleak.Find(opts...) == nil })
	goleak.VerifyNone(t, opts...) // lists what is left
}
