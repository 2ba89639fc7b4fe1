package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/jobs"
)

// tinyPoolPatience bounds the waits below; only a hang (a starved pool)
// reaches it.
const tinyPoolPatience = 2 * time.Minute

// A dozen catch-ups and a few runs by hand fall due at once on a pool of
// three connections: the lock session and two job bodies. Each body works
// in transactions and reports progress from inside one. Every run
// completes, never more than MaxRuns bodies run at once, and nothing waits
// for a connection held by a run waiting for another.
func TestEveryJobDueAtOnceOnATinyPoolRuns(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	gdb, err := db.Open(u, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(gdb) })
	s := newScheduler(t, gdb, "tiny")
	s.MaxRuns = 2
	var running, most atomic.Int32
	body := func(ctx context.Context, r *jobs.Run) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		for step := int64(1); step <= 3; step++ {
			err := gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("SELECT pg_sleep(0.01)").Error; err != nil {
					return err
				}
				r.Progress(ctx, step, 3, "inside a transaction") // must not need a second connection
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	const due, byHand = 12, 4
	for i := range due {
		s.MustRegister(jobs.Job{Name: fmt.Sprintf("t.due_%02d", i), Spec: "@yearly", CatchUp: 400 * 24 * time.Hour, Run: body})
	}
	for i := range byHand {
		s.MustRegister(jobs.Job{Name: fmt.Sprintf("t.hand_%d", i), Run: body})
	}
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); s.Loop(ctx) }()
	defer func() { cancel(); <-loopDone }()
	var handles []*jobs.Handle
	for i := range byHand {
		rctx, stop := context.WithTimeout(asSystem(), tinyPoolPatience)
		h, err := s.RunNow(rctx, fmt.Sprintf("t.hand_%d", i))
		stop()
		if err != nil {
			t.Fatalf("run by hand %d: %v", i, err)
		}
		handles = append(handles, h)
	}
	for i, h := range handles {
		wctx, stop := context.WithTimeout(context.Background(), tinyPoolPatience)
		err := h.Wait(wctx)
		stop()
		if err != nil {
			t.Errorf("run by hand %d: %v", i, err)
		}
	}
	check := pool(t, u) // the test's own connections: a starved pool must fail the test, not hang it
	eventually(t, tinyPoolPatience, "every catch-up run", func() bool {
		var n int64
		check.Raw(`SELECT count(*) FROM job_runs WHERE job LIKE 't.due_%' AND outcome <> 'running'`).Scan(&n)
		return n == due
	})
	var rows []jobs.RunRecord
	if err := check.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != due+byHand {
		t.Errorf("%d runs recorded, want %d", len(rows), due+byHand)
	}
	for _, r := range rows {
		if r.Outcome != jobs.Succeeded || r.ProgressDone != 3 || !strings.Contains(r.ProgressMessage, "transaction") {
			t.Errorf("run of %s: %s %q, progress %d %q", r.Job, r.Outcome, r.Error, r.ProgressDone, r.ProgressMessage)
		}
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d bodies ran at once, MaxRuns is 2", m)
	}
}

// All locks of a process share one session: losing it stops every run
// holding a lock on it, and the next runs take a new session.
func TestLosingTheSharedSessionStopsEveryRun(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	wait := func(ctx context.Context, r *jobs.Run) error { <-ctx.Done(); return ctx.Err() }
	s.MustRegister(jobs.Job{Name: "t.one", Run: wait})
	s.MustRegister(jobs.Job{Name: "t.two", Run: wait})
	s.MustRegister(jobs.Job{Name: "t.after", Run: func(context.Context, *jobs.Run) error { return nil }})
	one, err := s.RunNow(asSystem(), "t.one")
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.RunNow(asSystem(), "t.two")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int32
	gdb.Raw(`SELECT DISTINCT lock_pid FROM job_runs WHERE lock_pid IS NOT NULL`).Scan(&pids)
	if len(pids) != 1 {
		t.Fatalf("locks held by sessions %v, want one shared session", pids)
	}
	gdb.Exec(`SELECT pg_terminate_backend(?)`, pids[0])
	for _, h := range []*jobs.Handle{one, two} {
		select {
		case <-h.Done():
		case <-time.After(tinyPoolPatience):
			t.Fatal("a run did not stop after its session was lost")
		}
		if rec, _ := s.GetRun(context.Background(), h.RunID); rec.Outcome != jobs.Failed || !strings.Contains(rec.Error, "lost the database session") {
			t.Errorf("run = %+v", rec)
		}
	}
	if rec, err := s.RunAndWait(asSystem(), "t.after"); err != nil || rec.Outcome != jobs.Succeeded || rec.LockPID == nil || *rec.LockPID == pids[0] {
		t.Fatalf("run on a new session = %+v, %v", rec, err)
	}
}

// The session refuses a lock this process holds already (PostgreSQL would
// grant it again: session locks are reentrant).
func TestSessionRefusesALockItHolds(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	sqlDB, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	ses := &jobs.Session{DB: sqlDB}
	first, err := ses.TryLock(context.Background(), 1, 2)
	if err != nil || first == nil {
		t.Fatalf("first lock: %v %v", first, err)
	}
	if again, err := ses.TryLock(context.Background(), 1, 2); err != nil || again != nil {
		t.Fatalf("second lock of the same key: %v %v", again, err)
	}
	other, err := ses.TryLock(context.Background(), 1, 3)
	if err != nil || other == nil || other.PID != first.PID {
		t.Fatalf("another key: %+v %v", other, err)
	}
	first.Release()
	other.Release()
	if open := sqlDB.Stats().InUse; open != 0 {
		t.Errorf("%d connections still in use after every lock was released", open)
	}
	again, err := ses.TryLock(context.Background(), 1, 2)
	if err != nil || again == nil {
		t.Fatalf("lock after release: %v %v", again, err)
	}
	again.Release()
}

// A run started by hand while every slot is taken is recorded at once,
// says it is waiting, and runs when a slot frees up.
func TestRunByHandWaitsForASlot(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	s.MaxRuns = 1
	started, release := make(chan struct{}), make(chan struct{})
	s.MustRegister(jobs.Job{Name: "t.long", Run: func(ctx context.Context, r *jobs.Run) error {
		close(started)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	var ran atomic.Bool
	s.MustRegister(jobs.Job{Name: "t.next", Run: func(context.Context, *jobs.Run) error { ran.Store(true); return nil }})
	long, err := s.RunNow(asSystem(), "t.long")
	if err != nil {
		t.Fatal(err)
	}
	select { // the long run has the only slot
	case <-started:
	case <-time.After(tinyPoolPatience):
		t.Fatal("the first run did not start")
	}
	next, err := s.RunNow(asSystem(), "t.next")
	if err != nil {
		t.Fatalf("a run by hand while the slots are taken: %v", err)
	}
	eventually(t, tinyPoolPatience, "the queued run to say it waits", func() bool {
		r, err := s.GetRun(context.Background(), next.RunID)
		return err == nil && r.Outcome == jobs.Running && strings.HasPrefix(r.ProgressMessage, "waiting")
	})
	if ran.Load() {
		t.Fatal("the queued run ran while the only slot was taken")
	}
	close(release)
	for _, h := range []*jobs.Handle{long, next} {
		wctx, stop := context.WithTimeout(context.Background(), tinyPoolPatience)
		err := h.Wait(wctx)
		stop()
		if err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := s.GetRun(context.Background(), next.RunID); r.Outcome != jobs.Succeeded || !ran.Load() {
		t.Fatalf("queued run = %+v", r)
	}
}
