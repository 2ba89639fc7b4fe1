package jobs

import (
	"context"
	"sort"
	"sync"
	"time"

	"cardata/policies"
	"cardata/templates/i18n"
)

// Trigger says what started a run.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule" // the cron schedule (or a catch-up of a missed tick)
	TriggerUI       Trigger = "ui"       // "Run now" in the admin UI, by a staff member
	TriggerCLI      Trigger = "cli"      // `cardata jobs run NAME` (and other system callers)
)

// Outcome is the state of a run.
type Outcome string

const (
	Running   Outcome = "running"
	Succeeded Outcome = "succeeded"
	Failed    Outcome = "failed"
	Skipped   Outcome = "skipped"   // a scheduled tick while the previous run was still going
	Abandoned Outcome = "abandoned" // its process died midway (no lock holder, no heartbeat)
)

// Job is one entry of the registry. The app registers every job in one
// place (app/jobs.go), each with a body that calls its module's service.
type Job struct {
	// Name is stable (it keys the run history and the advisory lock), dotted
	// by module: "sessions.purge", "billing.invoice_run".
	Name string
	// Title is the human name shown in the admin UI.
	Title string
	// Description says what a run does, in one or two sentences: the
	// English text, the id of its translation in the catalogs, with
	// DescriptionArgs as its parameters (name, value pairs; "Count" picks
	// the plural) when it has any. DescriptionIn says it.
	Description     string
	DescriptionArgs []any
	// Spec is a cron expression interpreted in the scheduler's zone
	// (Europe/Berlin): five fields, or six with leading seconds, or
	// @hourly/@daily/@weekly/@monthly. Empty means the job only runs on demand.
	// Avoid 02:00-02:59: that hour is skipped or repeated on DST changes.
	Spec string
	// Roles may run the job from the UI besides admin (e.g. finance for
	// billing jobs). The CLI may run every job.
	Roles []string
	// Timeout bounds one run (0: no limit besides shutdown).
	Timeout time.Duration
	// CatchUp: when the scheduler starts and the most recent tick within
	// this window has no run yet (all replicas were down at that moment),
	// the tick runs at once. Zero disables catching up.
	CatchUp time.Duration
	// Run does the work. It must honour ctx (shutdown, timeout, lost lock)
	// and keep the data consistent when stopped midway, typically by
	// committing in small idempotent batches so the next run resumes.
	// It reports progress and figures through r.
	Run func(ctx context.Context, r *Run) error
}

// DescriptionIn is the job's description in lang (the language's code, as
// a page's lang gives it), with its parameters filled in.
func (j Job) DescriptionIn(lang string) string {
	l, _ := i18n.Parse(lang)
	return i18n.T(l, j.Description, j.DescriptionArgs...)
}

// CanRun reports whether p may start j by hand: the system (CLI) and
// administrators may run every job, other staff the jobs listing one of
// their roles.
func CanRun(p *policies.Principal, j *Job) bool {
	if p == nil {
		return false
	}
	if p.Kind == policies.KindSystem {
		return true
	}
	if p.Kind != policies.KindStaff {
		return false
	}
	if p.HasRole(policies.RoleAdmin) {
		return true
	}
	for _, r := range j.Roles {
		if p.HasRole(r) {
			return true
		}
	}
	return false
}

// Figures are the counters a run reports ("invoices_created": 12).
type Figures map[string]int64

// Figure is one named counter, for display.
type Figure struct {
	Name  string
	Value int64
}

// Sorted lists the figures by name.
func (f Figures) Sorted() []Figure {
	out := make([]Figure, 0, len(f))
	for k, v := range f {
		out = append(out, Figure{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RunRecord is one row of the run history (table job_runs).
type RunRecord struct {
	ID              int64 `gorm:"primaryKey"`
	Job             string
	Trigger         Trigger
	ActorKind       string
	ActorID         *int64
	ActorLabel      string
	ScheduledFor    *time.Time
	Instance        string
	LockPID         *int32 `gorm:"column:lock_pid"`
	StartedAt       time.Time
	HeartbeatAt     time.Time
	FinishedAt      *time.Time
	Outcome         Outcome
	Error           string
	Figures         Figures `gorm:"serializer:json"`
	ProgressDone    int64
	ProgressTotal   int64
	ProgressMessage string
}

func (RunRecord) TableName() string { return "job_runs" }

// Duration is the run time so far (running) or in total (finished).
func (r *RunRecord) Duration() time.Duration {
	end := time.Now()
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	return end.Sub(r.StartedAt).Round(time.Millisecond)
}

// Percent is the progress in percent (0 when the total is unknown).
func (r *RunRecord) Percent() int64 {
	if r.ProgressTotal <= 0 {
		return 0
	}
	return min(100, r.ProgressDone*100/r.ProgressTotal)
}

// Run is the handle a job body uses to report progress and figures. Progress
// is written to the run's history row at most twice a second (and always at
// the end), so the admin page can show it live.
type Run struct {
	ID           int64
	Job          string
	Trigger      Trigger
	ScheduledFor *time.Time // the tick, for scheduled runs

	s         *Scheduler
	lock      *Lock // the run's lock; progress goes over its session
	mu        sync.Mutex
	figures   Figures
	done      int64
	total     int64
	message   string
	lastFlush time.Time
}

// Progress reports done of total items (total 0: unknown) with a short message.
func (r *Run) Progress(ctx context.Context, done, total int64, message string) {
	r.mu.Lock()
	r.done, r.total, r.message = done, total, truncate(message, 300)
	due := time.Since(r.lastFlush) >= 500*time.Millisecond
	r.mu.Unlock()
	if due {
		r.flush(ctx)
	}
}

// Add adds n to the named figure.
func (r *Run) Add(name string, n int64) {
	r.mu.Lock()
	r.figures[name] += n
	r.mu.Unlock()
}

// Set sets the named figure.
func (r *Run) Set(name string, n int64) {
	r.mu.Lock()
	r.figures[name] = n
	r.mu.Unlock()
}

// Figures returns a copy of the figures so far.
func (r *Run) Figures() Figures {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Figures{}
	for k, v := range r.figures {
		out[k] = v
	}
	return out
}

func (r *Run) snapshot() (Figures, int64, int64, string) {
	f := r.Figures()
	r.mu.Lock()
	defer r.mu.Unlock()
	return f, r.done, r.total, r.message
}

// flush writes progress, figures and the heartbeat; errors are only logged
// (progress is informative; the final update is what counts). It goes over
// the lock's session, not the pool: a body may report progress from inside
// a transaction of its own, and must not then wait for a second connection.
func (r *Run) flush(ctx context.Context) {
	f, done, total, msg := r.snapshot()
	r.mu.Lock()
	r.lastFlush = time.Now()
	r.mu.Unlock()
	if r.lock == nil {
		return
	}
	err := r.lock.Exec(ctx, `UPDATE job_runs SET progress_done = $1, progress_total = $2, progress_message = $3,
		figures = $4, heartbeat_at = now() WHERE id = $5 AND outcome = 'running'`, done, total, msg, jsonFigures(f), r.ID)
	if err != nil && ctx.Err() == nil {
		r.s.log().Warn("job progress not saved", "job", r.Job, "run", r.ID, "error", err.Error())
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n]
}
