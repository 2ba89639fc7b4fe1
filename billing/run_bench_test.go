package billing_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkInvoiceRun generates BILLING_BENCH_RECORDS ledger records
// (default 200,000) for BILLING_BENCH_PROVIDERS providers (default 200) in
// October 2026, times the bare SQL aggregate over them (the ceiling), then
// the invoice run, and reports both, their ratio and the Go heap's peak.
//
//	BILLING_BENCH_RECORDS=1000000 BILLING_BENCH_PROVIDERS=1000 \
//	  go test ./billing -run '^$' -bench InvoiceRun -benchtime 1x -timeout 60m
func BenchmarkInvoiceRun(b *testing.B) {
	records, providers := envInt("BILLING_BENCH_RECORDS", 200_000), envInt("BILLING_BENCH_PROVIDERS", 200)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		u := dbtest.URL(b)
		gdb, err := db.Open(u, 8)
		if err != nil {
			b.Fatal(err)
		}
		dir := billingtest.NewDirectory()
		for id := 1; id <= providers; id++ {
			dir.Put(billingtest.German(int64(id)))
		}
		s := billingtest.MustSetup(b, gdb, dir)
		start := time.Date(2026, 9, 30, 22, 0, 0, 0, time.UTC)
		// Spread over the month; provider sizes vary (some cross the 10,000 tier).
		if err := gdb.Exec(`INSERT INTO delivery_ledger (provider_id, client_id, vin, container_id, container_version, consent_id, kind,
			keys_delivered, bytes, request_id, delivered_at, key_ids)
			SELECT 1 + (g::bigint * 7919) % ?, 1, 'WBA0000000' || lpad((g % 100000)::text, 7, '0'), 10 + g % 3, 1, g % 5000 + 1,
			       CASE WHEN g % 10 = 0 THEN 'push' ELSE 'pull' END, 3, 400, 'b-' || g,
			       ?::timestamptz + (g::float8 / ? * 2678399) * interval '1 second', '{1,2,3}'
			FROM generate_series(1, ?) AS g`, providers, start, records, records).Error; err != nil {
			b.Fatal(err)
		}
		gdb.Exec("VACUUM ANALYZE delivery_ledger")
		ctx := context.Background()

		t0 := time.Now()
		var rows []struct {
			ProviderID int64
			Kind       string
			N          int64
		}
		if err := gdb.Raw(`SELECT provider_id, kind, count(*) AS n FROM delivery_ledger
			WHERE delivered_at >= ? AND delivered_at < ? GROUP BY 1, 2`, start, time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)).Scan(&rows).Error; err != nil {
			b.Fatal(err)
		}
		aggregate := time.Since(t0)

		var peak uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak {
					peak = m.HeapInuse
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		b.StartTimer()
		t1 := time.Now()
		run, err := s.RunPeriod(billingtest.Ctx(), "2026-10", billing.RunOptions{Trigger: billing.TriggerTest})
		took := time.Since(t1)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil || run.RecordsBilled != int64(records) {
			b.Fatalf("run: %v, %d of %d records", err, run.RecordsBilled, records)
		}
		t2 := time.Now()
		rep, err := s.Reconcile(ctx, "2026-10")
		if err != nil || !rep.OK() {
			b.Fatalf("reconcile: %v %v", err, rep.Differences)
		}
		b.ReportMetric(aggregate.Seconds(), "aggregate-s")
		b.ReportMetric(took.Seconds(), "run-s")
		b.ReportMetric(took.Seconds()/aggregate.Seconds(), "run/aggregate")
		b.ReportMetric(float64(records)/took.Seconds(), "records/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		b.ReportMetric(time.Since(t2).Seconds(), "reconcile-s")
		db.Close(gdb)
	}
}
