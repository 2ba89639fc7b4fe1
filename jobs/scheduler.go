package jobs

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// lockNamespace is the first key of every job's advisory lock
// (pg_try_advisory_lock(lockNamespace, fnv32(job name))). The audit chain
// uses the one-key form, which PostgreSQL keeps in a separate key space.
const lockNamespace int32 = 727_002

// Scheduler is the job registry and runner. Every replica runs one; they
// coordinate only through PostgreSQL:
//
//   - A scheduled tick first claims the row (job, scheduled_for) in job_runs,
//     which is unique, so two replicas firing the same tick produce one run
//     even when the first finished before the second started.
//   - Every run (scheduled or by hand) holds a session-level advisory lock on
//     a dedicated connection for its whole duration, so a job never runs
//     twice at once across replicas; a tick whose lock is taken is recorded as
//     "skipped". An in-process guard does the same within one replica.
//   - The run heartbeats over the lock's connection. If that connection is
//     lost, the lock is gone and the run is cancelled. A process that dies
//     leaves its row "running" but its lock is released with its connection;
//     rows without a lock holder and without a recent heartbeat are marked
//     "abandoned" by the next run of the job and by a periodic sweep.
type Scheduler struct {
	DB       *gorm.DB
	Location *time.Location // the zone cron specs are read in (Europe/Berlin)
	Log      *slog.Logger
	Instance string // names this process in the history (host:pid by default)

	HeartbeatEvery time.Duration // default 10s
	StaleGrace     time.Duration // default 1m: heartbeat age before a lock-less running row counts as abandoned
	SweepEvery     time.Duration // default 1m
	LockRetry      time.Duration // default 2s: how long a scheduled tick waits for a busy lock before it is skipped

	mu       sync.Mutex
	entries  map[string]*entry
	running  map[string]bool
	loopCtx  context.Context
	wg       sync.WaitGroup
	started  bool
	instance string
}

type entry struct {
	Job
	sched cron.Schedule
}

// NewScheduler returns an empty registry on db; specs are read in loc.
func NewScheduler(db *gorm.DB, loc *time.Location, log *slog.Logger) *Scheduler {
	host, _ := os.Hostname()
	return &Scheduler{DB: db, Location: loc, Log: log, Instance: host + ":" + strconv.Itoa(os.Getpid())}
}

func (s *Scheduler) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Register adds a job. Names are unique; the spec must parse.
func (s *Scheduler) Register(j Job) error {
	if !validName.MatchString(j.Name) {
		return fmt.Errorf("jobs: job name %q: use 1-100 lower-case letters, digits, '.', '_' or '-' (it appears in URLs and the CLI)", j.Name)
	}
	if j.Run == nil {
		return fmt.Errorf("jobs: job %s has no Run function", j.Name)
	}
	if j.Title == "" {
		j.Title = j.Name
	}
	e := &entry{Job: j}
	if j.Spec != "" {
		sched, err := ParseSpec(j.Spec, s.Location)
		if err != nil {
			return fmt.Errorf("jobs: job %s: %w", j.Name, err)
		}
		e.sched = sched
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[string]*entry{}
	}
	if _, dup := s.entries[j.Name]; dup {
		return fmt.Errorf("jobs: job %s is registered twice", j.Name)
	}
	s.entries[j.Name] = e
	if s.started && e.sched != nil {
		s.startJobLoop(s.loopCtx, e)
	}
	return nil
}

// MustRegister is Register for wiring code, panicking on a programming error.
func (s *Scheduler) MustRegister(j Job) {
	if err := s.Register(j); err != nil {
		panic(err)
	}
}

// Jobs lists the registered jobs by name.
func (s *Scheduler) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.Job)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Job returns the named job.
func (s *Scheduler) Job(name string) (*Job, error) {
	e := s.entry(name)
	if e == nil {
		return nil, errs.New(errs.NotFound, "job_not_found", "no job named %q", name)
	}
	j := e.Job
	return &j, nil
}

func (s *Scheduler) entry(name string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[name]
}

// Next is the job's next scheduled tick after now (zero when manual only).
func (s *Scheduler) Next(name string, now time.Time) time.Time {
	e := s.entry(name)
	if e == nil || e.sched == nil {
		return time.Time{}
	}
	return e.sched.Next(now.In(s.loc()))
}

func (s *Scheduler) loc() *time.Location {
	if s.Location == nil {
		return time.UTC
	}
	return s.Location
}

// in-process guard
func (s *Scheduler) mark(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[string]bool{}
	}
	if s.running[name] {
		return false
	}
	s.running[name] = true
	return true
}

func (s *Scheduler) unmark(name string) {
	s.mu.Lock()
	delete(s.running, name)
	s.mu.Unlock()
}

// IsRunningHere reports whether this process is running the job now.
func (s *Scheduler) IsRunningHere(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[name]
}

func lockKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32())
}

// jobLock is a held advisory lock and the dedicated connection holding it.
type jobLock struct {
	conn *sql.Conn
	name string
	pid  int32 // the backend holding the lock, recorded in job_runs.lock_pid
}

// tryLock takes the job's advisory lock on a dedicated connection, without waiting.
func (s *Scheduler) tryLock(ctx context.Context, name string) (*jobLock, error) {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return nil, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var ok bool
	var pid int32
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2), pg_backend_pid()", lockNamespace, lockKey(name)).Scan(&ok, &pid); err != nil {
		discard(conn)
		return nil, err
	}
	if !ok {
		conn.Close()
		return nil, nil
	}
	return &jobLock{conn: conn, name: name, pid: pid}, nil
}

// lockWithin retries tryLock until wait has passed.
func (s *Scheduler) lockWithin(ctx context.Context, name string, wait time.Duration) (*jobLock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := s.tryLock(ctx, name)
		if err != nil || l != nil || time.Now().After(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// release unlocks and returns the connection to the pool; when unlocking
// fails the connection is discarded, which ends its session and so the lock.
func (l *jobLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	err := l.conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1, $2)", lockNamespace, lockKey(l.name)).Scan(&ok)
	if err != nil || !ok {
		discard(l.conn)
		return
	}
	l.conn.Close()
}

func discard(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}

func jsonFigures(f Figures) string {
	if f == nil {
		f = Figures{}
	}
	b, _ := json.Marshal(f)
	return string(b)
}

func actorOf(ctx context.Context) (kind string, id *int64, label string) {
	p := policies.PrincipalFrom(ctx)
	if p == nil {
		return "system", nil, "scheduler"
	}
	if p.ID != 0 {
		v := p.ID
		id = &v
	}
	return p.Kind, id, p.Label()
}

func (s *Scheduler) instanceName() string {
	if s.Instance != "" {
		return s.Instance
	}
	return "unknown"
}

// Handle follows a run started by RunNow.
type Handle struct {
	RunID  int64
	done   chan struct{}
	cancel context.CancelCauseFunc
	err    error
}

// Done is closed when the run has finished and its outcome is recorded.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Err is the run's error once Done is closed (nil: succeeded).
func (h *Handle) Err() error { <-h.done; return h.err }

// Cancel asks the run to stop.
func (h *Handle) Cancel(cause error) { h.cancel(cause) }

// Wait waits for the run; when ctx ends first the run is cancelled and
// still waited for, so its outcome is recorded before Wait returns.
func (h *Handle) Wait(ctx context.Context) error {
	select {
	case <-h.done:
	case <-ctx.Done():
		h.cancel(fmt.Errorf("interrupted: %w", context.Cause(ctx)))
		<-h.done
	}
	return h.err
}

// ErrRunning is returned by RunNow while the job runs (here or elsewhere).
var ErrRunning = errs.New(errs.Conflict, "job_running", "the job is running right now; wait for it to finish")

// RunNow starts the job by hand for the principal in ctx and returns as soon
// as the run is recorded; the body runs in the background (Wait on the
// handle to block). Staff start "ui" runs, anyone else (the CLI) "cli" runs.
// Who may run what is decided here (CanRun), so every caller is covered.
// The start is audited.
func (s *Scheduler) RunNow(ctx context.Context, name string) (*Handle, error) {
	e := s.entry(name)
	if e == nil {
		return nil, errs.New(errs.NotFound, "job_not_found", "no job named %q", name)
	}
	p := policies.PrincipalFrom(ctx)
	if p == nil {
		return nil, errs.New(errs.Unauthorized, "unauthenticated", "sign in first")
	}
	if !CanRun(p, &e.Job) {
		return nil, errs.New(errs.Forbidden, "job_forbidden", "your roles do not allow running %s", e.Title)
	}
	name = e.Name // the registry's copy: name may live in a reused request buffer
	trigger := TriggerCLI
	if p.Kind == policies.KindStaff {
		trigger = TriggerUI
	}
	if !s.mark(name) {
		return nil, ErrRunning
	}
	lk, err := s.tryLock(ctx, name)
	if err != nil {
		s.unmark(name)
		return nil, errs.Wrap(err, "job lock")
	}
	if lk == nil {
		s.unmark(name)
		return nil, ErrRunning
	}
	kind, actorID, label := actorOf(ctx)
	var id int64
	// Detached from the request's cancellation, so the outcome of the
	// commit is known (see tick).
	recCtx, cancelRec := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelRec()
	err = s.DB.WithContext(recCtx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Raw(`INSERT INTO job_runs (job, trigger, actor_kind, actor_id, actor_label, instance, lock_pid, outcome)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'running') RETURNING id`, name, trigger, kind, actorID, label, s.instanceName(), lk.pid).Scan(&id).Error; err != nil {
			return errs.Wrap(err, "record run")
		}
		return audit.Record(ctx, tx, "job.run", "job", name, fmt.Sprintf("started run #%d of %s (%s)", id, e.Title, trigger))
	})
	if err != nil {
		lk.release()
		s.unmark(name)
		return nil, err
	}
	// The run outlives the request: keep its values (principal, request id
	// for the audit trail) but not its cancellation, and copy the request
	// strings, which a web framework may reuse after the response.
	req := policies.RequestFrom(ctx)
	req.ID, req.ClientAddr = strings.Clone(req.ID), strings.Clone(req.ClientAddr)
	runCtx, cancel := context.WithCancelCause(policies.WithRequest(context.WithoutCancel(ctx), req))
	s.mu.Lock()
	base := s.loopCtx
	s.mu.Unlock()
	stopAfter := func() bool { return false }
	if base != nil {
		stopAfter = context.AfterFunc(base, func() { cancel(errors.New("interrupted: the process is shutting down")) })
	}
	h := &Handle{RunID: id, done: make(chan struct{}), cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(h.done)
		defer stopAfter()
		defer cancel(nil)
		defer s.unmark(name)
		h.err = s.execute(runCtx, cancel, e, id, trigger, nil, lk)
	}()
	return h, nil
}

// RunAndWait is RunNow followed by Wait; it returns the finished record.
func (s *Scheduler) RunAndWait(ctx context.Context, name string) (*RunRecord, error) {
	h, err := s.RunNow(ctx, name)
	if err != nil {
		return nil, err
	}
	runErr := h.Wait(ctx)
	rec, err := s.GetRun(context.WithoutCancel(ctx), h.RunID)
	if err != nil {
		return nil, err
	}
	return rec, runErr
}

// tick handles one scheduled tick of e at t.
func (s *Scheduler) tick(ctx context.Context, e *entry, t time.Time) {
	t = t.UTC()
	ctx = policies.WithPrincipal(ctx, policies.System("scheduler"))
	ctx = policies.WithRequest(ctx, policies.Request{ID: "job:" + e.Name + "@" + t.Format(time.RFC3339), ClientAddr: s.instanceName()})
	if !s.mark(e.Name) {
		// Still running here: record the tick as skipped, unless another
		// replica has already claimed it.
		err := s.DB.WithContext(ctx).Exec(`INSERT INTO job_runs (job, trigger, actor_kind, actor_label, scheduled_for, instance, outcome, finished_at, error)
			VALUES (?, 'schedule', 'system', 'scheduler', ?, ?, 'skipped', now(), 'the previous run was still in progress')
			ON CONFLICT (job, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING`, e.Name, t, s.instanceName()).Error
		if err != nil && ctx.Err() == nil {
			s.log().Error("job tick not recorded", "job", e.Name, "error", err.Error())
		}
		return
	}
	defer s.unmark(e.Name)
	if ctx.Err() != nil {
		return // shutting down: leave the tick to a replica that is not
	}
	// The claim must not be cut off by shutdown: an INSERT that commits in
	// PostgreSQL while the client already reports cancellation would leave
	// a claimed row nobody finishes. Detach it and bound it instead.
	claimCtx, cancelClaim := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelClaim()
	var ids []int64
	err := s.DB.WithContext(claimCtx).Raw(`INSERT INTO job_runs (job, trigger, actor_kind, actor_label, scheduled_for, instance, outcome)
		VALUES (?, 'schedule', 'system', 'scheduler', ?, ?, 'running')
		ON CONFLICT (job, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING RETURNING id`, e.Name, t, s.instanceName()).Scan(&ids).Error
	if err != nil {
		if ctx.Err() == nil {
			s.log().Error("job tick not claimed", "job", e.Name, "error", err.Error())
		}
		return
	}
	if len(ids) == 0 {
		return // another replica has (or had) this tick
	}
	id := ids[0]
	lk, err := s.lockWithin(ctx, e.Name, orDefault(s.LockRetry, 2*time.Second))
	if err != nil || lk == nil {
		msg := "the previous run was still in progress (on another instance)"
		switch {
		case ctx.Err() != nil:
			msg = "not started: the process is shutting down"
		case err != nil:
			msg = "could not take the job lock: " + err.Error()
		}
		s.finish(context.WithoutCancel(ctx), id, Skipped, msg, nil, 0, 0, "")
		return
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	_ = s.execute(runCtx, cancel, e, id, TriggerSchedule, &t, lk)
}

// execute runs the body of a recorded, locked run and records the outcome.
func (s *Scheduler) execute(ctx context.Context, cancel context.CancelCauseFunc, e *entry, id int64, trigger Trigger, scheduledFor *time.Time, lk *jobLock) (runErr error) {
	defer lk.release()
	if scheduledFor != nil {
		if err := s.DB.WithContext(ctx).Exec(`UPDATE job_runs SET lock_pid = ?, heartbeat_at = now() WHERE id = ?`, lk.pid, id).Error; err != nil {
			s.finish(context.WithoutCancel(ctx), id, Failed, "could not record the lock holder: "+err.Error(), nil, 0, 0, "")
			return err
		}
	}
	// We hold the lock, so no other run of this job is alive anywhere: older
	// rows still "running" belong to processes that died.
	s.abandonStale(ctx, e.Name, id)

	if e.Timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, e.Timeout, fmt.Errorf("timed out after %s", e.Timeout))
		defer stop()
	}
	r := &Run{ID: id, Job: e.Name, Trigger: trigger, ScheduledFor: scheduledFor, s: s, figures: Figures{}}

	// Heartbeat over the lock's connection: if it fails, the lock may be
	// gone, so the run must stop before another replica starts one.
	hbDone := make(chan struct{})
	hbStopped := make(chan struct{})
	go func() {
		defer close(hbStopped)
		t := time.NewTicker(orDefault(s.HeartbeatEvery, 10*time.Second))
		defer t.Stop()
		for {
			select {
			case <-hbDone:
				return
			case <-t.C:
				hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
				f, done, total, msg := r.snapshot()
				_, err := lk.conn.ExecContext(hctx, `UPDATE job_runs SET heartbeat_at = now(), progress_done = $1, progress_total = $2,
					progress_message = $3, figures = $4 WHERE id = $5`, done, total, msg, jsonFigures(f), id)
				hcancel()
				if err != nil {
					s.log().Error("job heartbeat failed; stopping the run", "job", e.Name, "run", id, "error", err.Error())
					cancel(fmt.Errorf("lost the database session holding the job lock: %w", err))
					return
				}
			}
		}
	}()

	start := time.Now()
	runErr = s.call(ctx, e, r)
	close(hbDone)
	<-hbStopped

	outcome, msg := Succeeded, ""
	if runErr != nil {
		outcome, msg = Failed, runErr.Error()
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(runErr, cause) {
			msg = cause.Error() + ": " + msg
		}
	}
	f, done, total, pmsg := r.snapshot()
	s.finish(context.WithoutCancel(ctx), id, outcome, msg, f, done, total, pmsg)
	level := slog.LevelInfo
	if runErr != nil {
		level = slog.LevelError
	}
	s.log().Log(ctx, level, "job finished", "job", e.Name, "run", id, "trigger", string(trigger),
		"outcome", string(outcome), "duration", time.Since(start).String(), "figures", f, "error", msg)
	return runErr
}

// call runs the body, turning a panic into an error.
func (s *Scheduler) call(ctx context.Context, e *entry, r *Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log().Error("job panicked", "job", e.Name, "run", r.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return e.Run(ctx, r)
}

func (s *Scheduler) finish(ctx context.Context, id int64, outcome Outcome, msg string, f Figures, done, total int64, pmsg string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.DB.WithContext(ctx).Exec(`UPDATE job_runs SET outcome = ?, error = ?, figures = ?, progress_done = ?, progress_total = ?,
		progress_message = ?, finished_at = now(), heartbeat_at = now() WHERE id = ? AND outcome = 'running'`,
		outcome, truncate(msg, 2000), jsonFigures(f), done, total, pmsg, id).Error
	if err != nil {
		// The row stays "running" without a lock: the next run or sweep marks it abandoned.
		s.log().Error("job outcome not recorded", "run", id, "error", err.Error())
	}
}

const abandonedMsg = "abandoned: the process running it stopped (crash or kill) before it finished"

// abandonStale marks the job's other running rows abandoned; call it only
// while holding the job's lock. A row that recorded its lock holder is dead
// (we hold the lock now); a row without one may be a tick that another
// replica claimed a moment ago and is about to lock, so it gets the grace
// period.
func (s *Scheduler) abandonStale(ctx context.Context, job string, keep int64) {
	grace := orDefault(s.StaleGrace, time.Minute)
	err := s.DB.WithContext(ctx).Exec(`UPDATE job_runs SET outcome = 'abandoned', finished_at = now(), error = ?
		WHERE job = ? AND outcome = 'running' AND id <> ? AND (lock_pid IS NOT NULL OR heartbeat_at < now() - make_interval(secs => ?))`,
		abandonedMsg, job, keep, grace.Seconds()).Error
	if err != nil && ctx.Err() == nil {
		s.log().Error("marking abandoned runs failed", "job", job, "error", err.Error())
	}
}

// Sweep marks abandoned every running row whose lock holder is gone: its
// recorded lock session no longer holds the job's lock, or (never locked)
// nobody holds it and the grace period has passed. It returns how many. It
// never takes a job's lock, so it cannot make a real run skip.
func (s *Scheduler) Sweep(ctx context.Context) (int64, error) {
	grace := orDefault(s.StaleGrace, time.Minute)
	var names []string
	if err := s.DB.WithContext(ctx).Raw(`SELECT DISTINCT job FROM job_runs WHERE outcome = 'running'`).Scan(&names).Error; err != nil {
		return 0, errs.Wrap(err, "sweep runs")
	}
	var total int64
	for _, name := range names {
		res := s.DB.WithContext(ctx).Exec(`UPDATE job_runs r SET outcome = 'abandoned', finished_at = now(), error = ?
			WHERE job = ? AND outcome = 'running' AND (lock_pid IS NOT NULL OR heartbeat_at < now() - make_interval(secs => ?))
			AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
			  AND l.classid::bigint = ? AND l.objid::bigint = ? AND l.objsubid = 2
			  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND (r.lock_pid IS NULL OR l.pid = r.lock_pid))`,
			abandonedMsg, name, grace.Seconds(), int64(uint32(lockNamespace)), int64(uint32(lockKey(name))))
		if res.Error != nil {
			return total, errs.Wrap(res.Error, "sweep mark")
		}
		total += res.RowsAffected
	}
	return total, nil
}

// Loop runs the schedule until ctx ends, then waits for running jobs to
// stop (they see ctx cancelled). Run it as an app worker.
func (s *Scheduler) Loop(ctx context.Context) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started, s.loopCtx = true, ctx
	for _, e := range s.entries {
		if e.sched != nil {
			s.startJobLoop(ctx, e)
		}
	}
	s.mu.Unlock()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(orDefault(s.SweepEvery, time.Minute))
		defer t.Stop()
		for {
			if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log().Error("job sweep failed", "error", err.Error())
			} else if n > 0 {
				s.log().Warn("marked abandoned job runs", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	<-ctx.Done()
	s.wg.Wait()
	s.mu.Lock()
	s.started = false
	s.mu.Unlock()
}

// startJobLoop starts the timer loop of one scheduled job; s.mu is held.
func (s *Scheduler) startJobLoop(ctx context.Context, e *entry) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		now := time.Now().In(s.loc())
		if e.CatchUp > 0 {
			if prev := lastTick(e.sched, now, e.CatchUp); !prev.IsZero() {
				s.wg.Add(1)
				go func() { defer s.wg.Done(); s.tick(ctx, e, prev) }()
			}
		}
		next := e.sched.Next(now)
		for !next.IsZero() {
			timer := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			t := next
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.tick(ctx, e, t) }()
			next = e.sched.Next(t)
			if now := time.Now().In(s.loc()); next.Before(now) {
				next = e.sched.Next(now) // fell behind (suspended?): skip the missed ticks
			}
		}
	}()
}

// lastTick is the latest tick of sched in (now-window, now], or zero.
func lastTick(sched cron.Schedule, now time.Time, window time.Duration) time.Time {
	var last time.Time
	t := now.Add(-window)
	for i := 0; i < 100_000; i++ {
		n := sched.Next(t)
		if n.IsZero() || n.After(now) {
			return last
		}
		last, t = n, n
	}
	return last
}
