package jobs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
)

// Two schedulers (two replicas: separate pools, separate instances) run the
// same every-second schedule on one database: each tick runs exactly once,
// and a job whose run outlasts the interval never runs twice at once.
func TestTwoSchedulersRunEachTickOnce(t *testing.T) {
	t.Parallel()
	u, gdb := freshDB(t)
	var fastBodies, slowBodies, slowConcurrent, slowMaxConcurrent atomic.Int32
	var mu sync.Mutex
	ranBy := map[string]int{}
	build := func(name string) *jobs.Scheduler {
		s := newScheduler(t, pool(t, u), name)
		s.MustRegister(jobs.Job{Name: "t.fast", Spec: "* * * * * *", Run: func(ctx context.Context, r *jobs.Run) error {
			fastBodies.Add(1)
			mu.Lock()
			ranBy[name]++
			mu.Unlock()
			r.Set("ticks", 1)
			return nil
		}})
		s.MustRegister(jobs.Job{Name: "t.slow", Spec: "* * * * * *", Run: func(ctx context.Context, r *jobs.Run) error {
			slowBodies.Add(1)
			n := slowConcurrent.Add(1)
			defer slowConcurrent.Add(-1)
			for {
				m := slowMaxConcurrent.Load()
				if n <= m || slowMaxConcurrent.CompareAndSwap(m, n) {
					break
				}
			}
			select {
			case <-time.After(2500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}})
		return s
	}
	a, b := build("replica-a"), build("replica-b")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*jobs.Scheduler{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); s.Loop(ctx) }()
	}
	// Run until both jobs have shown what the test is about, however long
	// that takes on this machine: fast ticks that succeeded and a slow tick
	// skipped because the previous run was still going.
	count := func(job string, outcome jobs.Outcome) int64 {
		var n int64
		gdb.Model(&jobs.RunRecord{}).Where("job = ? AND outcome = ?", job, outcome).Count(&n)
		return n
	}
	eventually(t, patience, "fast ticks and a skipped slow tick", func() bool {
		return count("t.fast", jobs.Succeeded) >= 3 && count("t.slow", jobs.Skipped) >= 1
	})
	cancel()
	wg.Wait()

	fast := runs(t, gdb, "t.fast")
	seen := map[time.Time]bool{}
	succeeded := 0
	for _, r := range fast {
		if r.ScheduledFor == nil || seen[*r.ScheduledFor] {
			t.Errorf("tick %v recorded twice or without a time", r.ScheduledFor)
			continue
		}
		seen[*r.ScheduledFor] = true
		if r.Trigger != jobs.TriggerSchedule || r.ScheduledFor.Nanosecond() != 0 {
			t.Errorf("row %+v", r)
		}
		switch {
		case r.Outcome == jobs.Succeeded:
			succeeded++
		case r.Outcome == jobs.Skipped:
			// Only under heavy load: a run outlasting the second, or a
			// tick that fired as the schedulers shut down.
			t.Logf("fast tick %s skipped: %s", r.ScheduledFor, r.Error)
		default:
			t.Errorf("fast tick %s: %s %s", r.ScheduledFor, r.Outcome, r.Error)
		}
	}
	if int(fastBodies.Load()) != succeeded || succeeded < 2 {
		t.Errorf("fast body ran %d times for %d successful ticks", fastBodies.Load(), succeeded)
	}
	t.Logf("fast ticks: %d, run by %v", len(fast), ranBy)

	slow := runs(t, gdb, "t.slow")
	counts := map[jobs.Outcome]int{}
	slowSeen := map[time.Time]bool{}
	for _, r := range slow {
		counts[r.Outcome]++
		if slowSeen[*r.ScheduledFor] {
			t.Errorf("slow tick %s recorded twice", r.ScheduledFor)
		}
		slowSeen[*r.ScheduledFor] = true
	}
	if slowMaxConcurrent.Load() != 1 {
		t.Errorf("slow job ran %d at once", slowMaxConcurrent.Load())
	}
	if counts[jobs.Skipped] == 0 {
		t.Errorf("no tick was skipped while the slow job ran: %v", counts)
	}
	// Shutdown interrupts the slow run in progress; every body that started
	// has a row that is finished (succeeded or failed), none is left running.
	if counts[jobs.Running] != 0 || int(slowBodies.Load()) != counts[jobs.Succeeded]+counts[jobs.Failed] {
		t.Errorf("slow bodies %d, outcomes %v", slowBodies.Load(), counts)
	}
}

// A missed tick (all replicas down at that moment) is caught up once at
// start, however many replicas start.
func TestCatchUpOfAMissedTickHappensOnce(t *testing.T) {
	t.Parallel()
	u, gdb := freshDB(t)
	var bodies atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		s := newScheduler(t, pool(t, u), name)
		s.MustRegister(jobs.Job{Name: "t.hourly", Spec: "@hourly", CatchUp: 2 * time.Hour,
			Run: func(context.Context, *jobs.Run) error { bodies.Add(1); return nil }})
		wg.Add(1)
		go func() { defer wg.Done(); s.Loop(ctx) }()
	}
	eventually(t, patience, "catch-up run", func() bool {
		r := runs(t, gdb, "t.hourly")
		return len(r) == 1 && r[0].Outcome == jobs.Succeeded
	})
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	r := runs(t, gdb, "t.hourly")
	want := time.Now().UTC().Truncate(time.Hour)
	if len(r) != 1 || bodies.Load() != 1 || !r[0].ScheduledFor.Equal(want) {
		t.Fatalf("runs %+v, bodies %d; want one run for %s", r, bodies.Load(), want)
	}
}

// crashSetup creates the work table the crash tests process.
func crashSetup(t testing.TB, gdb *gorm.DB, items int) {
	t.Helper()
	for _, q := range []string{
		`CREATE TABLE crash_items (id INT PRIMARY KEY, processed_at TIMESTAMPTZ)`,
		`CREATE TABLE crash_log (item_id INT NOT NULL, run_id BIGINT NOT NULL)`,
		`CREATE TABLE crash_marker (at TIMESTAMPTZ NOT NULL DEFAULT now())`,
		fmt.Sprintf(`INSERT INTO crash_items (id) SELECT generate_series(1, %d)`, items),
	} {
		if err := gdb.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// crashBody processes items one transaction each, so a run stopped at any
// point leaves every item either fully processed or untouched. With
// hangAfter > 0 it hangs inside the transaction of item hangAfter+1, with
// the item's update done but not committed.
func crashBody(gdb *gorm.DB, hangAfter int) func(ctx context.Context, r *jobs.Run) error {
	return func(ctx context.Context, r *jobs.Run) error {
		var total int64
		gdb.WithContext(ctx).Raw(`SELECT count(*) FROM crash_items WHERE processed_at IS NULL`).Scan(&total)
		for done := int64(0); ; done++ {
			more := false
			err := gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				var ids []int
				if err := tx.Raw(`SELECT id FROM crash_items WHERE processed_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&ids).Error; err != nil {
					return err
				}
				if len(ids) == 0 {
					return nil
				}
				more = true
				if err := tx.Exec(`UPDATE crash_items SET processed_at = now() WHERE id = ?`, ids[0]).Error; err != nil {
					return err
				}
				if err := tx.Exec(`INSERT INTO crash_log (item_id, run_id) VALUES (?, ?)`, ids[0], r.ID).Error; err != nil {
					return err
				}
				if hangAfter > 0 && int(done) == hangAfter {
					gdb.Exec(`INSERT INTO crash_marker DEFAULT VALUES`) // tell the test, outside the transaction
					select {}                                           // hang until killed
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			r.Add("items_processed", 1)
			r.Progress(ctx, done+1, total, "processing items")
		}
	}
}

func checkAllProcessedOnce(t *testing.T, gdb *gorm.DB, items int) {
	t.Helper()
	var open, logged, distinct int64
	gdb.Raw(`SELECT count(*) FROM crash_items WHERE processed_at IS NULL`).Scan(&open)
	gdb.Raw(`SELECT count(*), count(DISTINCT item_id) FROM crash_log`).Row().Scan(&logged, &distinct)
	if open != 0 || logged != int64(items) || distinct != int64(items) {
		t.Fatalf("open items %d, log entries %d for %d distinct items; want 0, %d, %d", open, logged, distinct, items, items)
	}
}

// TestCrashHelperProcess is the "other replica" the crash test kills; it
// only runs when started by that test.
func TestCrashHelperProcess(t *testing.T) {
	u := os.Getenv("CARDATA_JOBS_CRASH_DB")
	if u == "" {
		t.Skip("helper process for TestKilledRunLeavesConsistentDataAndCompletesNextRun")
	}
	gdb := pool(t, u)
	s := newScheduler(t, gdb, "doomed")
	s.MustRegister(jobs.Job{Name: "t.crash", Run: crashBody(gdb, 5)})
	if _, err := s.RunNow(asSystem(), "t.crash"); err != nil {
		t.Fatal(err)
	}
	select {} // wait for SIGKILL
}

// A replica is killed (SIGKILL, no clean-up at all) in the middle of a run,
// inside an open transaction. The data stays consistent, the next run on
// another replica completes the work, and the dead run is marked abandoned.
func TestKilledRunLeavesConsistentDataAndCompletesNextRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a process")
	}
	const items = 20
	u, gdb := freshDB(t)
	crashSetup(t, gdb, items)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CARDATA_JOBS_CRASH_DB="+u)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, patience, "the helper to hang mid-run", func() bool {
		var n int64
		gdb.Raw(`SELECT count(*) FROM crash_marker`).Scan(&n)
		return n > 0
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	dead := runs(t, gdb, "t.crash")
	if len(dead) != 1 || dead[0].Outcome != jobs.Running || dead[0].Instance != "doomed" {
		t.Fatalf("after the kill: %+v (helper output: %s)", dead, out.String())
	}
	var processed int64
	gdb.Raw(`SELECT count(*) FROM crash_items WHERE processed_at IS NOT NULL`).Scan(&processed)
	if processed != 5 {
		t.Fatalf("%d items processed before the kill, want exactly the 5 committed ones (the open transaction must roll back)", processed)
	}

	s := newScheduler(t, gdb, "survivor")
	s.MustRegister(jobs.Job{Name: "t.crash", Run: crashBody(gdb, 0)})
	// The kill released the advisory lock with the session: the next run
	// starts (PostgreSQL may need a moment to notice the closed socket).
	var rec *jobs.RunRecord
	eventually(t, patience, "the next run to start", func() bool {
		r, err := s.RunAndWait(asSystem(), "t.crash")
		if err != nil {
			return false
		}
		rec = r
		return true
	})
	if rec.Outcome != jobs.Succeeded || rec.Figures["items_processed"] != items-5 {
		t.Fatalf("next run = %+v", rec)
	}
	checkAllProcessedOnce(t, gdb, items)
	all := runs(t, gdb, "t.crash")
	if all[0].Outcome != jobs.Abandoned || all[0].FinishedAt == nil {
		t.Errorf("the killed run is %s, want abandoned", all[0].Outcome)
	}
}

// A run stopped midway by shutdown (context cancelled) is recorded as
// failed with the reason, leaves consistent data, and the next run finishes.
func TestStoppedRunCompletesOnNextRun(t *testing.T) {
	t.Parallel()
	const items = 30
	_, gdb := freshDB(t)
	crashSetup(t, gdb, items)
	s := newScheduler(t, gdb, "a")
	stopAt := make(chan struct{})
	var once sync.Once
	body := crashBody(gdb, 0)
	s.MustRegister(jobs.Job{Name: "t.stop", Run: func(ctx context.Context, r *jobs.Run) error {
		go func() {
			for r.Figures()["items_processed"] < 10 {
				time.Sleep(5 * time.Millisecond)
			}
			once.Do(func() { close(stopAt) })
		}()
		return body(ctx, r)
	}})
	h, err := s.RunNow(asSystem(), "t.stop")
	if err != nil {
		t.Fatal(err)
	}
	<-stopAt
	h.Cancel(fmt.Errorf("interrupted: the process is shutting down"))
	if err := h.Err(); err == nil {
		t.Fatal("the stopped run reported success")
	}
	first, _ := s.GetRun(context.Background(), h.RunID)
	if first.Outcome != jobs.Failed || !strings.Contains(first.Error, "shutting down") || first.Figures["items_processed"] >= items {
		t.Fatalf("stopped run = %+v", first)
	}
	rec, err := s.RunAndWait(asSystem(), "t.stop")
	if err != nil || rec.Outcome != jobs.Succeeded {
		t.Fatalf("next run = %+v, %v", rec, err)
	}
	// The data is the truth: every item processed exactly once. The figures
	// may undercount by one: a commit racing the cancellation can succeed in
	// PostgreSQL while the client already reports the context error.
	checkAllProcessedOnce(t, gdb, items)
	if sum := first.Figures["items_processed"] + rec.Figures["items_processed"]; sum != items && sum != items-1 {
		t.Errorf("processed %d + %d, want %d", first.Figures["items_processed"], rec.Figures["items_processed"], items)
	}
}
