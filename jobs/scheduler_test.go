package jobs_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

func TestRunNowRecordsOutcomeFiguresProgressAndAudit(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	s.MustRegister(jobs.Job{Name: "demo.count", Title: "Count things", Run: func(ctx context.Context, r *jobs.Run) error {
		for i := int64(1); i <= 3; i++ {
			r.Progress(ctx, i, 3, "counting")
			r.Add("things_counted", 1)
		}
		r.Set("answer", 42)
		return nil
	}})
	rec, err := s.RunAndWait(asStaff(7, policies.RoleAdmin), "demo.count")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Outcome != jobs.Succeeded || rec.Trigger != jobs.TriggerUI || rec.FinishedAt == nil || rec.ScheduledFor != nil {
		t.Fatalf("record = %+v", rec)
	}
	if rec.Figures["things_counted"] != 3 || rec.Figures["answer"] != 42 {
		t.Errorf("figures = %v", rec.Figures)
	}
	if rec.ProgressDone != 3 || rec.ProgressTotal != 3 || rec.ProgressMessage != "counting" {
		t.Errorf("progress = %d/%d %q", rec.ProgressDone, rec.ProgressTotal, rec.ProgressMessage)
	}
	if rec.ActorKind != "staff" || rec.ActorID == nil || *rec.ActorID != 7 || rec.ActorLabel != "staff@example.test" || rec.Instance != "a" {
		t.Errorf("actor = %s %v %s on %s", rec.ActorKind, rec.ActorID, rec.ActorLabel, rec.Instance)
	}
	entries, _, err := audit.List(context.Background(), gdb, audit.Filter{Action: "job.run"})
	if err != nil || len(entries) != 1 || entries[0].ObjectID != "demo.count" || entries[0].ActorLabel != "staff@example.test" {
		t.Fatalf("audit = %+v, %v", entries, err)
	}
	// The CLI (a system principal) is recorded as such.
	rec, err = s.RunAndWait(asSystem(), "demo.count")
	if err != nil || rec.Trigger != jobs.TriggerCLI || rec.ActorKind != "system" {
		t.Fatalf("cli run = %+v, %v", rec, err)
	}
	hist, total, err := s.History(context.Background(), "demo.count", 0, 1)
	if err != nil || total != 2 || len(hist) != 1 || hist[0].ID != rec.ID {
		t.Fatalf("history = %v (%d), %v", hist, total, err)
	}
}

func TestRunNowChecksRolesInTheDomain(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	noop := func(context.Context, *jobs.Run) error { return nil }
	s.MustRegister(jobs.Job{Name: "billing.test_run", Roles: []string{policies.RoleFinance}, Run: noop})
	s.MustRegister(jobs.Job{Name: "sessions.test_purge", Run: noop})
	cases := []struct {
		ctx  context.Context
		job  string
		want errs.Kind // "" = allowed
	}{
		{asStaff(1, policies.RoleFinance), "billing.test_run", ""},
		{asStaff(1, policies.RoleFinance), "sessions.test_purge", errs.Forbidden},
		{asStaff(2, policies.RoleAdmin), "sessions.test_purge", ""},
		{asStaff(3, policies.RoleAuditor), "billing.test_run", errs.Forbidden},
		{asStaff(4, policies.RoleSupport), "sessions.test_purge", errs.Forbidden},
		{asSystem(), "billing.test_run", ""},
		{context.Background(), "billing.test_run", errs.Unauthorized},
		{asStaff(2, policies.RoleAdmin), "no.such_job", errs.NotFound},
	}
	for _, c := range cases {
		_, err := s.RunAndWait(c.ctx, c.job)
		if c.want == "" && err != nil {
			t.Errorf("%v running %s: %v", policies.PrincipalFrom(c.ctx), c.job, err)
		}
		if c.want != "" && errs.KindOf(err) != c.want {
			t.Errorf("%v running %s: got %v, want %s", policies.PrincipalFrom(c.ctx), c.job, err, c.want)
		}
	}
	var n int64
	gdb.Model(&jobs.RunRecord{}).Count(&n)
	if n != 3 {
		t.Errorf("%d runs recorded, want 3 (refused runs leave no row)", n)
	}
}

func TestPanicsAndErrorsAreRecordedAsFailures(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	s.MustRegister(jobs.Job{Name: "t.panics", Run: func(ctx context.Context, r *jobs.Run) error {
		r.Add("before_panic", 1)
		var m map[string]int
		m["boom"]++ // nil map write
		return nil
	}})
	s.MustRegister(jobs.Job{Name: "t.fails", Run: func(context.Context, *jobs.Run) error { return errors.New("upstream said no") }})
	rec, err := s.RunAndWait(asSystem(), "t.panics")
	if err == nil || rec.Outcome != jobs.Failed || !strings.Contains(rec.Error, "panic") || rec.Figures["before_panic"] != 1 {
		t.Fatalf("panic run = %+v, %v", rec, err)
	}
	rec, err = s.RunAndWait(asSystem(), "t.fails")
	if err == nil || rec.Outcome != jobs.Failed || rec.Error != "upstream said no" {
		t.Fatalf("failing run = %+v, %v", rec, err)
	}
	// The scheduler is still usable after a panic.
	if _, err := s.RunAndWait(asSystem(), "t.fails"); err == nil || errs.Is(err, "job_running") {
		t.Fatalf("second run: %v", err)
	}
}

func TestOneRunAtATimeAcrossReplicasAndLiveProgress(t *testing.T) {
	t.Parallel()
	u, gdb := freshDB(t)
	a := newScheduler(t, gdb, "a")
	b := newScheduler(t, pool(t, u), "b")
	release := make(chan struct{})
	var bodies atomic.Int32
	body := func(ctx context.Context, r *jobs.Run) error {
		bodies.Add(1)
		r.Progress(ctx, 1, 4, "first quarter")
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	for _, s := range []*jobs.Scheduler{a, b} {
		s.MustRegister(jobs.Job{Name: "t.slow", Run: body})
	}
	h, err := a.RunNow(asSystem(), "t.slow")
	if err != nil {
		t.Fatal(err)
	}
	// Live progress is visible while it runs.
	eventually(t, patience, "live progress", func() bool {
		r, err := a.GetRun(context.Background(), h.RunID)
		return err == nil && r.Outcome == jobs.Running && r.ProgressDone == 1 && r.ProgressTotal == 4 && r.Percent() == 25
	})
	if _, err := a.RunNow(asSystem(), "t.slow"); !errs.Is(err, "job_running") {
		t.Errorf("same replica: %v, want job_running", err)
	}
	if _, err := b.RunNow(asSystem(), "t.slow"); !errs.Is(err, "job_running") {
		t.Errorf("other replica: %v, want job_running", err)
	}
	// A sweep never takes a live run for abandoned, even with a stale heartbeat.
	gdb.Exec("UPDATE job_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = ?", h.RunID)
	if n, err := b.Sweep(context.Background()); err != nil || n != 0 {
		t.Errorf("sweep marked %d live runs (err %v)", n, err)
	}
	close(release)
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RunAndWait(asSystem(), "t.slow"); err != nil {
		t.Fatalf("after the first finished, the other replica may run: %v", err)
	}
	if bodies.Load() != 2 {
		t.Errorf("bodies ran %d times, want 2", bodies.Load())
	}
}

func TestSweepMarksRunsWithoutLockHolderAbandoned(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	// A row left behind by a process that died: running, no lock holder.
	// A row left behind by a process that died after locking: its lock
	// session is gone, so it is dead at once, whatever its heartbeat says.
	// A row claimed a moment ago and not locked yet is left alone.
	if err := gdb.Exec(`INSERT INTO job_runs (job, trigger, outcome, heartbeat_at) VALUES ('t.dead', 'cli', 'running', now() - interval '10 minutes'),
		('t.young', 'cli', 'running', now())`).Error; err != nil {
		t.Fatal(err)
	}
	if err := gdb.Exec(`INSERT INTO job_runs (job, trigger, outcome, lock_pid) VALUES ('t.killed', 'cli', 'running', 999999)`).Error; err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if r := runs(t, gdb, "t.dead"); r[0].Outcome != jobs.Abandoned || r[0].FinishedAt == nil || !strings.Contains(r[0].Error, "abandoned") {
		t.Errorf("dead row = %+v", r[0])
	}
	if r := runs(t, gdb, "t.killed"); r[0].Outcome != jobs.Abandoned {
		t.Errorf("killed row = %+v", r[0])
	}
	if r := runs(t, gdb, "t.young"); r[0].Outcome != jobs.Running {
		t.Errorf("a row within the grace period was swept: %+v", r[0])
	}
}

func TestLosingTheLockSessionStopsTheRun(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	s.MustRegister(jobs.Job{Name: "t.long", Run: func(ctx context.Context, r *jobs.Run) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	h, err := s.RunNow(asSystem(), "t.long")
	if err != nil {
		t.Fatal(err)
	}
	// Kill the database session that holds the advisory lock (as a network
	// partition or a database failover would).
	eventually(t, patience, "lock holder terminated", func() bool {
		var killed []bool
		gdb.Raw(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = 727002 AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed)
		return len(killed) == 1 && killed[0]
	})
	select {
	case <-h.Done():
	case <-time.After(patience):
		t.Fatal("run did not stop after losing its lock")
	}
	rec, _ := s.GetRun(context.Background(), h.RunID)
	if rec.Outcome != jobs.Failed || !strings.Contains(rec.Error, "lost the database session") {
		t.Fatalf("run = %+v", rec)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	s := newScheduler(t, gdb, "a")
	s.MustRegister(jobs.Job{Name: "t.timeout", Timeout: 200 * time.Millisecond, Run: func(ctx context.Context, r *jobs.Run) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	rec, err := s.RunAndWait(asSystem(), "t.timeout")
	if err == nil || rec.Outcome != jobs.Failed || !strings.Contains(rec.Error, "timed out after 200ms") {
		t.Fatalf("run = %+v, %v", rec, err)
	}
}

func TestRegisterRejectsBadJobs(t *testing.T) {
	t.Parallel()
	s := jobs.NewScheduler(nil, time.UTC, quietLog())
	noop := func(context.Context, *jobs.Run) error { return nil }
	if err := s.Register(jobs.Job{Name: "a", Spec: "@every 1m", Run: noop}); err == nil {
		t.Error("@every accepted")
	}
	for _, bad := range []string{"", "Billing.Run", "a/b", "a b", strings.Repeat("x", 101)} {
		if err := s.Register(jobs.Job{Name: bad, Run: noop}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if err := s.Register(jobs.Job{Name: "a", Run: nil}); err == nil {
		t.Error("job without body accepted")
	}
	if err := s.Register(jobs.Job{Name: "a", Spec: "@daily", Run: noop}); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(jobs.Job{Name: "a", Run: noop}); err == nil {
		t.Error("duplicate name accepted")
	}
	if next := s.Next("a", time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)); !next.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("next = %s", next)
	}
}
