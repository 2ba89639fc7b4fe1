package billing_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/policies/errs"
)

func delivery(provider int64, req string) billing.Delivery {
	return billing.Delivery{ProviderID: provider, ClientID: 3, VIN: "WBA12345678901234", ContainerID: 10, ContainerVersion: 2,
		ConsentID: 77, Kind: billing.KindPull, KeyIDs: []int16{1, 2, 3}, KeysDelivered: 3, Bytes: 512, RequestID: req, At: time.Now()}
}

// Many concurrent callers: every Write returns only after its record is
// committed (another connection sees it at once), records share commits,
// and a retried request id is recorded once.
func TestLedgerWriterGroupsCommitsAndIsDurable(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	gdb, err := db.Open(u, 12)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	observer, err := sql.Open("pgx", u) // a separate pool: sees only committed rows
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	var batches, maxBatch atomic.Int64
	w, err := billing.NewLedgerWriter(gdb, billing.WriterOptions{MaxBatch: 200, Committers: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.OnBatch = func(n int, err error) {
		batches.Add(1)
		for {
			m := maxBatch.Load()
			if int64(n) <= m || maxBatch.CompareAndSwap(m, int64(n)) {
				break
			}
		}
	}
	const callers, each = 64, 8
	var wg sync.WaitGroup
	var notVisible atomic.Int64
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				req := fmt.Sprintf("c%d-%d", c, i)
				if err := w.Write(context.Background(), delivery(int64(c%4+1), req)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				var n int
				if err := observer.QueryRow(`SELECT count(*) FROM delivery_ledger WHERE request_id = $1`, req).Scan(&n); err != nil || n != 1 {
					notVisible.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if notVisible.Load() != 0 {
		t.Fatalf("%d writes returned before their record was committed", notVisible.Load())
	}
	// A retry of the same request is accepted and not recorded twice.
	if err := w.Write(context.Background(), delivery(1, "c0-0")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var total int64
	gdb.Raw(`SELECT count(*) FROM delivery_ledger`).Scan(&total)
	if total != callers*each {
		t.Fatalf("%d records, want %d", total, callers*each)
	}
	if batches.Load() >= callers*each || maxBatch.Load() < 2 {
		t.Fatalf("no grouping: %d commits for %d records (largest batch %d)", batches.Load(), total, maxBatch.Load())
	}
	t.Logf("%d records in %d commits, largest batch %d", total, batches.Load(), maxBatch.Load())
	if err := w.Write(context.Background(), delivery(1, "after-close")); !billing.IsLedgerUnavailable(err) {
		t.Fatalf("write after close: %v", err)
	}
}

// When the commit fails every caller of the batch gets the error (so the
// API answers 503 and sends nothing) and nothing of the batch is stored;
// once the database recovers, writes succeed again.
func TestLedgerWriterReportsFailedCommitToEveryCaller(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	w, err := billing.NewLedgerWriter(gdb, billing.WriterOptions{MaxBatch: 50, Committers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The database rejects inserts for a while (a stand-in for a failing disk).
	mustExec(t, gdb, `CREATE FUNCTION test_fail_ledger() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END; $$ LANGUAGE plpgsql`)
	mustExec(t, gdb, `CREATE TRIGGER test_fail BEFORE INSERT ON delivery_ledger FOR EACH STATEMENT EXECUTE FUNCTION test_fail_ledger()`)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.Write(context.Background(), delivery(1, fmt.Sprint("f", i)))
			if billing.IsLedgerUnavailable(err) && errs.KindOf(err) == errs.Unavailable {
				failed.Add(1)
			} else {
				t.Errorf("write during outage: %v", err)
			}
		}()
	}
	wg.Wait()
	var n int64
	gdb.Raw(`SELECT count(*) FROM delivery_ledger`).Scan(&n)
	if failed.Load() != 40 || n != 0 {
		t.Fatalf("%d callers saw the failure, %d records stored", failed.Load(), n)
	}
	mustExec(t, gdb, `DROP TRIGGER test_fail ON delivery_ledger`)
	if err := w.Write(context.Background(), delivery(1, "after-outage")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// A delivery without values is refused before it reaches the database.
	d := delivery(1, "empty")
	d.KeyIDs, d.KeysDelivered = nil, 0
	if err := w.Write(context.Background(), d); err != billing.ErrNotBillable {
		t.Fatalf("empty delivery: %v", err)
	}
	if err := gdb.Transaction(func(tx *gorm.DB) error { return billing.Ledger{}.Record(context.Background(), tx, d) }); err != billing.ErrNotBillable {
		t.Fatalf("empty delivery through Record: %v", err)
	}
}

func mustExec(t testing.TB, gdb *gorm.DB, q string, args ...any) {
	t.Helper()
	if err := gdb.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// BenchmarkLedgerWriter measures durable records per second with N
// concurrent callers through the grouped-commit writer, against one commit
// per record as the baseline.
//
//	go test ./billing -run '^$' -bench LedgerWriter -benchtime 5000x
func BenchmarkLedgerWriter(b *testing.B) {
	for _, mode := range []string{"grouped", "commit-per-record"} {
		for _, callers := range []int{1, 16, 64, 256} {
			b.Run(fmt.Sprintf("%s/callers=%d", mode, callers), func(b *testing.B) {
				u := dbtest.URL(b)
				gdb, err := db.Open(u, 20)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close(gdb)
				var w *billing.LedgerWriter
				if mode == "grouped" {
					if w, err = billing.NewLedgerWriter(gdb, billing.WriterOptions{}); err != nil {
						b.Fatal(err)
					}
					defer w.Close()
				}
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for c := 0; c < callers; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							d := delivery(i%50+1, fmt.Sprint("b", i))
							if w != nil {
								err = w.Write(context.Background(), d)
							} else {
								err = gdb.Transaction(func(tx *gorm.DB) error { return billing.Ledger{}.Record(context.Background(), tx, d) })
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			})
		}
	}
}
