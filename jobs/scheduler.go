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
//   - Every run (scheduled or by hand) holds a session-level advisory lock for
//     its whole duration, so a job never runs twice at once across replicas;
//     a tick whose lock is taken is recorded as "skipped". An in-process
//     guard does the same within one replica.
//   - The run heartbeats over the lock's session. If that session is lost,
//     the lock is gone and the run is cancelled. A process that dies leaves
//     its row "running" but its lock is released with its session; rows
//     without a lock holder and without a recent heartbeat are marked
//     "abandoned" by the next run of the job and by a periodic sweep.
//
// Connections (issue 15: a replica must never starve its pool). The locks
// and all of the scheduler's own statements (claims, heartbeats, progress,
// outcomes, the sweep) go over one shared Session, a single connection for
// the whole process; only the job bodies use the pool, and at most MaxRuns
// of them run at once. A run waits for its slot before it claims its tick,
// so a waiting tick holds no row, no lock and no connection, and a replica
// with a free slot may take it meanwhile. Catch-up runs at start go one
// after another instead of all at once. So the jobs take at most MaxRuns+1
// connections, whatever falls due together, and no run ever holds a
// connection while it waits for another: the body holds none of its own
// while it asks the pool, and the session never waits for the pool while
// a statement of it is pending.
type Scheduler struct {
	DB       *gorm.DB
	Location *time.Location // the zone cron specs are read in (Europe/Berlin)
	Log      *slog.Logger
	Instance string // names this process in the history (host:pid by default)

	HeartbeatEvery time.Duration // default 10s
	StaleGrace     time.Duration // default 1m: heartbeat age before a lock-less running row counts as abandoned
	SweepEvery     time.Duration // default 1m
	LockRetry      time.Duration // default 2s: how long a scheduled tick waits for a busy lock before it is skipped
	ClaimWithin    time.Duration // default 10m: how long a tick whose claim fails (database down) is tried again
	// MaxRuns bounds the job bodies running at once in this process
	// (default 2), each using one pool connection at a time. Set it from
	// the pool budget before Loop.
	MaxRuns int
	// Locks is the session of the job locks and the scheduler's bookkeeping
	// (default: one on DB's pool). Other modules holding long advisory
	// locks (the invoice run) share it through LockSession.
	Locks *Session

	mu       sync.Mutex
	initOnce sync.Once
	slots    chan struct{} // one per job body running
	catchUp  chan struct{} // catch-up ticks run one after another
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

// init sizes the run slots and opens the lock session (lazily: the
// fields may be set after NewScheduler, before the first run).
func (s *Scheduler) init() {
	s.initOnce.Do(func() {
		n := s.MaxRuns
		if n <= 0 {
			n = 2
		}
		s.slots = make(chan struct{}, n)
		s.catchUp = make(chan struct{}, 1)
		if s.Locks == nil {
			s.Locks = &Session{}
			if s.DB != nil {
				if sqlDB, err := s.DB.DB(); err == nil {
					s.Locks.DB = sqlDB
				}
			}
		}
	})
}

// LockSession is the session holding this process's job locks; other
// long-lived advisory locks (the invoice run's) belong there too, so that
// they cost no connection of their own.
func (s *Scheduler) LockSession() *Session {
	s.init()
	return s.Locks
}

// waitSlot waits for a free run slot; false when ctx ended first.
func (s *Scheduler) waitSlot(ctx context.Context) bool {
	s.init()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Scheduler) freeSlot() { <-s.slots }

// tryLock takes the job's advisory lock without waiting (nil: held elsewhere).
func (s *Scheduler) tryLock(ctx context.Context, name string) (*Lock, error) {
	return s.LockSession().TryLock(ctx, lockNamespace, lockKey(name))
}

// lockWithin retries tryLock until wait has passed.
func (s *Scheduler) lockWithin(ctx context.Context, name string, wait time.Duration) (*Lock, error) {
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
		return nil, errs.New(errs.Forbidden, "job_forbidden", "your roles do not allow running %s", errs.Term(e.Title))
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
	act := policies.ActorOf(ctx, policies.System("scheduler"))
	kind, actorID, label := act.Kind, act.ID, act.Label
	var id int64
	// Detached from the request's cancellation, so the outcome of the
	// commit is known (see tick).
	recCtx, cancelRec := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelRec()
	err = s.DB.WithContext(recCtx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Raw(`INSERT INTO job_runs (job, trigger, actor_kind, actor_id, actor_label, instance, lock_pid, outcome)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'running') RETURNING id`, name, trigger, kind, actorID, label, s.instanceName(), lk.PID).Scan(&id).Error; err != nil {
			return errs.Wrap(err, "record run")
		}
		return audit.Recordf(ctx, tx, "job.run", "job", name, "started run #%d of %s (%s)", id, errs.Term(e.Title), trigger)
	})
	if err != nil {
		lk.Release()
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
		h.err = s.runQueued(runCtx, cancel, e, id, trigger, lk)
	}()
	return h, nil
}

// runQueued waits for a run slot, then executes a run started by hand. The
// run is recorded and locked already, so the caller learns its number at
// once; while it waits it holds its lock (on the shared session, no
// connection of its own) and no pool connection.
func (s *Scheduler) runQueued(ctx context.Context, cancel context.CancelCauseFunc, e *entry, id int64, trigger Trigger, lk *Lock) error {
	s.init()
	select {
	case s.slots <- struct{}{}:
	default:
		_ = lk.Exec(ctx, `UPDATE job_runs SET progress_message = $1 WHERE id = $2 AND outcome = 'running'`,
			fmt.Sprintf("waiting: %d jobs are running, the most this process runs at once", cap(s.slots)), id)
		if !s.waitSlot(ctx) {
			defer lk.Release()
			err := fmt.Errorf("not started: %w", context.Cause(ctx))
			s.finish(id, Failed, err.Error(), nil, 0, 0, "")
			return err
		}
	}
	defer s.freeSlot()
	return s.execute(ctx, cancel, e, id, trigger, nil, lk)
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
		// Still running (or waiting for a slot) here: record the tick as
		// skipped, unless another replica has already claimed it.
		err := s.untilRecorded(ctx, e.Name, t, "record the skipped tick", func() error {
			_, err := s.LockSession().Exec(ctx, `INSERT INTO job_runs (job, trigger, actor_kind, actor_label, scheduled_for, instance, outcome, finished_at, error)
				VALUES ($1, 'schedule', 'system', 'scheduler', $2, $3, 'skipped', now(), 'the previous run was still in progress')
				ON CONFLICT (job, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING`, e.Name, t, s.instanceName())
			return err
		})
		if err != nil && ctx.Err() == nil {
			s.log().Error("job tick not recorded", "job", e.Name, "error", err.Error())
		}
		return
	}
	defer s.unmark(e.Name)
	// The slot comes first: a tick waiting for one has claimed nothing, so
	// it holds nothing, and a replica with a free slot may run it meanwhile.
	if !s.waitSlot(ctx) {
		return // shutting down: leave the tick to a replica that is not
	}
	defer s.freeSlot()
	if ctx.Err() != nil {
		return
	}
	// The claim runs on the session, detached from ctx: an INSERT that
	// commits in PostgreSQL while the client already reports cancellation
	// would leave a claimed row nobody finishes.
	//
	// A claim that fails (the database restarting, a connection lost) is
	// tried again for ClaimWithin: a tick that falls into an outage runs
	// once the database is back instead of being lost. A retry never takes
	// over an existing row, not even one that looks like its own (two
	// schedulers may share an instance name, and a claim is the only thing
	// that keeps a tick from running twice): in the rare case that a claim
	// committed but its answer was lost, the row is left without a lock and
	// the sweep records it abandoned.
	var ids []int64
	err := s.untilRecorded(ctx, e.Name, t, "claim the tick", func() error {
		var err error
		ids, err = s.LockSession().QueryInt64s(ctx, `INSERT INTO job_runs (job, trigger, actor_kind, actor_label, scheduled_for, instance, outcome)
			VALUES ($1, 'schedule', 'system', 'scheduler', $2, $3, 'running')
			ON CONFLICT (job, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING RETURNING id`, e.Name, t, s.instanceName())
		return err
	})
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
		s.finish(id, Skipped, msg, nil, 0, 0, "")
		return
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	_ = s.execute(runCtx, cancel, e, id, TriggerSchedule, &t, lk)
}

// untilRecorded runs write, a statement recording tick t of job, and tries
// it again while it fails, with a growing pause, for ClaimWithin or until
// ctx ends; the first failure is logged as a warning.
func (s *Scheduler) untilRecorded(ctx context.Context, job string, t time.Time, what string, write func() error) error {
	deadline := time.Now().Add(orDefault(s.ClaimWithin, 10*time.Minute))
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		if attempt == 1 {
			s.log().Warn("job tick: database unavailable, trying again", "job", job, "scheduled_for", t, "step", what, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// execute runs the body of a recorded, locked run and records the outcome.
// The caller holds a run slot.
func (s *Scheduler) execute(ctx context.Context, cancel context.CancelCauseFunc, e *entry, id int64, trigger Trigger, scheduledFor *time.Time, lk *Lock) (runErr error) {
	defer lk.Release()
	if err := lk.Err(); err != nil { // lost while the run waited for its slot
		err = fmt.Errorf("lost the database session holding the job lock: %w", err)
		s.finish(id, Failed, "not started: "+err.Error(), nil, 0, 0, "")
		return err
	}
	if scheduledFor != nil {
		if err := lk.Exec(ctx, `UPDATE job_runs SET lock_pid = $1, heartbeat_at = now() WHERE id = $2`, lk.PID, id); err != nil {
			s.finish(id, Failed, "could not record the lock holder: "+err.Error(), nil, 0, 0, "")
			return err
		}
	}
	// We hold the lock, so no other run of this job is alive anywhere: older
	// rows still "running" belong to processes that died.
	s.abandonStale(ctx, lk, e.Name, id)

	if e.Timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, e.Timeout, fmt.Errorf("timed out after %s", e.Timeout))
		defer stop()
	}
	r := &Run{ID: id, Job: e.Name, Trigger: trigger, ScheduledFor: scheduledFor, s: s, lock: lk, figures: Figures{}}

	// Heartbeat over the lock's session: if it fails, or the session is
	// lost otherwise, the lock is gone, so the run must stop before another
	// replica starts one.
	hbDone := make(chan struct{})
	hbStopped := make(chan struct{})
	go func() {
		defer close(hbStopped)
		t := time.NewTicker(orDefault(s.HeartbeatEvery, 10*time.Second))
		defer t.Stop()
		lost := func(err error) {
			s.log().Error("job heartbeat failed; stopping the run", "job", e.Name, "run", id, "error", err.Error())
			cancel(fmt.Errorf("lost the database session holding the job lock: %w", err))
		}
		for {
			select {
			case <-hbDone:
				return
			case <-lk.Lost():
				lost(lk.Err())
				return
			case <-t.C:
				f, done, total, msg := r.snapshot()
				err := lk.Exec(context.Background(), `UPDATE job_runs SET heartbeat_at = now(), progress_done = $1, progress_total = $2,
					progress_message = $3, figures = $4 WHERE id = $5`, done, total, msg, jsonFigures(f), id)
				if err != nil {
					lost(err)
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
	s.finish(id, outcome, msg, f, done, total, pmsg)
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

// finish records a run's outcome on the session (which it reopens if the
// run's lock went with the old one), whatever became of the run's context.
func (s *Scheduler) finish(id int64, outcome Outcome, msg string, f Figures, done, total int64, pmsg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bounds the wait for the session
	defer cancel()
	_, err := s.LockSession().Exec(ctx, `UPDATE job_runs SET outcome = $1, error = $2, figures = $3, progress_done = $4, progress_total = $5,
		progress_message = $6, finished_at = now(), heartbeat_at = now() WHERE id = $7 AND outcome = 'running'`,
		string(outcome), truncate(msg, 2000), jsonFigures(f), done, total, pmsg, id)
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
func (s *Scheduler) abandonStale(ctx context.Context, lk *Lock, job string, keep int64) {
	grace := orDefault(s.StaleGrace, time.Minute)
	err := lk.Exec(ctx, `UPDATE job_runs SET outcome = 'abandoned', finished_at = now(), error = $1
		WHERE job = $2 AND outcome = 'running' AND id <> $3 AND (lock_pid IS NOT NULL OR heartbeat_at < now() - make_interval(secs => $4))`,
		abandonedMsg, job, keep, grace.Seconds())
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
	// On the session, like all of the scheduler's own statements.
	names, err := s.LockSession().QueryStrings(ctx, `SELECT DISTINCT job FROM job_runs WHERE outcome = 'running'`)
	if err != nil {
		return 0, errs.Wrap(err, "sweep runs")
	}
	var total int64
	for _, name := range names {
		n, err := s.LockSession().Exec(ctx, `UPDATE job_runs r SET outcome = 'abandoned', finished_at = now(), error = $1
			WHERE job = $2 AND outcome = 'running' AND (lock_pid IS NOT NULL OR heartbeat_at < now() - make_interval(secs => $3))
			AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
			  AND l.classid::bigint = $4 AND l.objid::bigint = $5 AND l.objsubid = 2
			  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND (r.lock_pid IS NULL OR l.pid = r.lock_pid))`,
			abandonedMsg, name, grace.Seconds(), int64(uint32(lockNamespace)), int64(uint32(lockKey(name))))
		if err != nil {
			return total, errs.Wrap(err, "sweep mark")
		}
		total += n
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
				go func() { defer s.wg.Done(); s.catchUpTick(ctx, e, prev) }()
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

// catchUpTick runs a missed tick once the catch-ups before it have
// finished: at start every job with a catch-up window may be due at once,
// and they run one after another, leaving the other run slots to the
// regular ticks.
func (s *Scheduler) catchUpTick(ctx context.Context, e *entry, t time.Time) {
	s.init()
	select {
	case s.catchUp <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.catchUp }()
	s.tick(ctx, e, t)
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
