package billing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
	"cardata/policies/sqlarray"
)

// InvoiceRun is one execution of the monthly run (history and progress).
type InvoiceRun struct {
	ID               int64 `gorm:"primaryKey"`
	Period           string
	Trigger          string
	StartedBy        string
	Status           string // running, succeeded, failed, interrupted
	ProvidersTotal   int
	ProvidersDone    int
	InvoicesCreated  int
	ProvidersSkipped int
	ProvidersFailed  int
	RecordsBilled    int64
	NetTotal         decimal.Decimal
	Error            string
	StartedAt        time.Time
	FinishedAt       *time.Time
}

func (InvoiceRun) TableName() string { return "invoice_runs" }

// Percent is the progress in percent.
func (r *InvoiceRun) Percent() int {
	if r.ProvidersTotal == 0 {
		if r.Status == "running" {
			return 0
		}
		return 100
	}
	return r.ProvidersDone * 100 / r.ProvidersTotal
}

// Running reports an unfinished run.
func (r *InvoiceRun) Running() bool { return r.Status == "running" }

// Run triggers.
const (
	TriggerCLI      = "cli"
	TriggerUI       = "ui"
	TriggerSchedule = "schedule"
	TriggerDemo     = "demo"
	TriggerTest     = "test"
)

// runLockKey is the first key of the per-period session advisory lock; the
// second is year*100+month. providerLockSpace prefixes per-provider locks.
const (
	runLockKey        = 727_100
	providerLockSpace = "cardata.billing.provider:"
)

// ErrRunInProgress is returned when another run holds the period.
var ErrRunInProgress = errs.New(errs.Conflict, "run_in_progress", "an invoice run for this period is in progress; wait for it to finish")

// RunHandle follows a started run.
type RunHandle struct {
	RunID int64
	done  chan struct{}
	err   error
}

// Wait blocks until the run ends and returns its error.
func (h *RunHandle) Wait() error { <-h.done; return h.err }

// Done is closed when the run ends.
func (h *RunHandle) Done() <-chan struct{} { return h.done }

// RunOptions tune a run.
type RunOptions struct {
	Trigger string
	// Progress is called after each provider (done of total).
	Progress func(done, total int)
}

// StartRun starts the invoice run for period in the background and returns
// at once (the finance UI polls the run row). Only one run per period runs
// at a time (a session advisory lock); a second start gets ErrRunInProgress.
// The run continues when ctx's request ends: it stops only on shutdownCtx.
func (s *Service) StartRun(ctx, shutdownCtx context.Context, period string, opt RunOptions) (*RunHandle, error) {
	p, err := ParsePeriod(period, s.loc())
	if err != nil {
		return nil, err
	}
	if !p.End.After(p.Start) || s.now().Before(p.End) {
		return nil, errs.New(errs.Invalid, "period_not_over", "%s is not over yet; a month is invoiced once it has ended", p)
	}
	locks := s.Locks
	if locks == nil {
		sqlDB, err := s.DB.DB()
		if err != nil {
			return nil, errs.Wrap(err, "run: pool")
		}
		locks = &jobs.Session{DB: sqlDB}
	}
	lk, err := locks.TryLock(ctx, runLockKey, int32(p.Year*100+int(p.Month)))
	if err != nil {
		return nil, errs.Wrap(err, "run: lock")
	}
	if lk == nil {
		return nil, ErrRunInProgress
	}
	release := lk.Release
	by, _ := actor(ctx)
	if opt.Trigger == "" {
		opt.Trigger = TriggerCLI
	}
	run := &InvoiceRun{Period: p.String(), Trigger: opt.Trigger, StartedBy: by, Status: "running", StartedAt: s.now()}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// We hold the period: any run still marked running was killed.
		if err := tx.Exec(`UPDATE invoice_runs SET status = 'interrupted', finished_at = now(),
			error = 'the process stopped before the run finished; a later run completed the period'
			WHERE period = ? AND status = 'running'`, p.String()).Error; err != nil {
			return errs.Wrap(err, "run: mark interrupted")
		}
		if err := tx.Create(run).Error; err != nil {
			return errs.Wrap(err, "run: create")
		}
		return audit.Recordf(ctx, tx, "invoice_run.start", "invoice_run", strconv.FormatInt(run.ID, 10),
			"started the invoice run for %s (%s)", p, opt.Trigger)
	})
	if err != nil {
		release()
		return nil, err
	}
	h := &RunHandle{RunID: run.ID, done: make(chan struct{})}
	// The run keeps the caller's principal and request for its audit entries.
	runCtx := context.WithoutCancel(ctx)
	runCtx, cancel := context.WithCancel(runCtx)
	id, ok := s.runGroup().add(cancel)
	if !ok {
		// Close came while the run row was written: the run ends at once,
		// marked interrupted, and nothing is left behind.
		cancel()
		h.err = s.execute(runCtx, run, p, opt)
		release()
		close(h.done)
		return h, nil
	}
	go func() {
		defer s.runGroup().done(id)
		defer close(h.done)
		defer cancel()
		defer release()
		stop := context.AfterFunc(shutdownCtx, cancel)
		defer stop()
		h.err = s.execute(runCtx, run, p, opt)
	}()
	return h, nil
}

// Close stops the runs StartRun started (each ends at its next step and is
// marked interrupted; a later run completes the period) and waits until
// their goroutines have returned. A run started after Close is interrupted
// before it begins. The app calls Close at shutdown.
func (s *Service) Close() { s.runGroup().close() }

// runGroupInit guards the lazy creation of a Service's runGroup (a Service
// is a struct literal; copies made after the first run share its group).
var runGroupInit sync.Mutex

func (s *Service) runGroup() *runGroup {
	runGroupInit.Lock()
	defer runGroupInit.Unlock()
	if s.runs == nil {
		s.runs = &runGroup{}
	}
	return s.runs
}

// runGroup is the runs of a Service in flight: their cancel functions and a
// WaitGroup that close waits on. Once closed, nothing joins it.
type runGroup struct {
	mu      sync.Mutex
	closed  bool
	next    int
	cancels map[int]context.CancelFunc
	wg      sync.WaitGroup
}

func (g *runGroup) add(cancel context.CancelFunc) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, false
	}
	if g.cancels == nil {
		g.cancels = map[int]context.CancelFunc{}
	}
	g.next++
	g.cancels[g.next] = cancel
	g.wg.Add(1)
	return g.next, true
}

func (g *runGroup) done(id int) {
	g.mu.Lock()
	delete(g.cancels, id)
	g.mu.Unlock()
	g.wg.Done()
}

func (g *runGroup) close() {
	g.mu.Lock()
	g.closed = true
	for _, cancel := range g.cancels {
		cancel()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// RunPeriod runs the invoice run for period and waits for it.
func (s *Service) RunPeriod(ctx context.Context, period string, opt RunOptions) (*InvoiceRun, error) {
	h, err := s.StartRun(ctx, ctx, period, opt)
	if err != nil {
		return nil, err
	}
	runErr := h.Wait()
	r, err := s.FindRun(context.WithoutCancel(ctx), h.RunID)
	if err != nil {
		return nil, err
	}
	return r, runErr
}

// FindRun loads a run.
func (s *Service) FindRun(ctx context.Context, id int64) (*InvoiceRun, error) {
	var r InvoiceRun
	if err := s.DB.WithContext(ctx).First(&r, id).Error; err != nil {
		return nil, dbError(err, "invoice run")
	}
	return &r, nil
}

// RunSort is the run list's sort whitelist (newest first by default).
var RunSort = listsort.Spec{
	Columns: map[string]string{
		"run":       "id",
		"period":    "period",
		"status":    "status",
		"started":   "started_at",
		"by":        "lower(started_by)",
		"providers": "providers_total",
		"records":   "records_billed",
		"net":       "net_total",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "run", Desc: true},
}

// ListRuns lists runs, newest first.
func (s *Service) ListRuns(ctx context.Context, offset, limit int) ([]InvoiceRun, int64, error) {
	return s.ListRunsSorted(ctx, listsort.Order{}, offset, limit)
}

// ListRunsSorted lists runs in o's order (RunSort).
func (s *Service) ListRunsSorted(ctx context.Context, o listsort.Order, offset, limit int) ([]InvoiceRun, int64, error) {
	var total int64
	if err := s.DB.WithContext(ctx).Model(&InvoiceRun{}).Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count runs")
	}
	if limit <= 0 || limit > 200 {
		limit = 25
	}
	var out []InvoiceRun
	err := s.DB.WithContext(ctx).Order(RunSort.SQL(o)).Offset(offset).Limit(limit).Find(&out).Error
	return out, total, errs.Wrap(err, "list runs")
}

var errSkip = errors.New("already invoiced")
var errNothing = errors.New("nothing to bill")

// batchSize is how many providers share one transaction of a run (each in
// its own savepoint, so one provider's failure leaves the others).
const batchSize = 250

// globalMin is the smallest group of providers whose usage is counted in
// one pass over the ledger rather than provider by provider.
const globalMin = 20

// provJob is one provider's share of a run: the usage counted for it
// against the claims it had then (state), or compute when it must be
// counted inside its own transaction.
type provJob struct {
	providerID int64
	skip       bool
	compute    bool
	state      claimState
	rows       []usageRow
	floor      int64
	support    bool
}

// execute runs the period in three steps. (1) It seals the ledger at a
// watermark W and reads every provider's claims. (2) It counts the usage
// to bill: providers whose claims form one quadrant (every run made in
// period order) are grouped by that quadrant and counted in one pass over
// the records since it, grouped by provider, kind, month, price list
// version and container; the others are counted alone. (3) It writes each
// provider's draft and claim, batchSize providers per transaction, each
// under the provider's lock and re-checking that its claims did not change
// meanwhile (else its usage is counted again there).
func (s *Service) execute(ctx context.Context, run *InvoiceRun, p Period, opt RunOptions) (runErr error) {
	bg := context.WithoutCancel(ctx)
	defer func() {
		status, msg := "succeeded", ""
		switch {
		case ctx.Err() != nil:
			status, msg = "interrupted", "stopped before the end (shutdown or cancel); run it again to complete the period"
			if runErr == nil {
				runErr = errs.New(errs.Unavailable, "run_interrupted", "%s", msg)
			}
		case runErr != nil:
			status, msg = "failed", errs.As(runErr).Message
			if e := errs.As(runErr); e.Kind == errs.Internal && e.Err != nil {
				msg = e.Err.Error()
			}
		}
		_ = s.DB.WithContext(bg).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`UPDATE invoice_runs SET status = ?, error = ?, finished_at = now() WHERE id = ?`, status, msg, run.ID).Error; err != nil {
				return err
			}
			var r InvoiceRun
			if err := tx.First(&r, run.ID).Error; err != nil {
				return err
			}
			return audit.Recordf(bg, tx, "invoice_run.finish", "invoice_run", strconv.FormatInt(run.ID, 10),
				"invoice run %s %s: %d drafts, %d skipped, %d failed, net %s", r.Period, errs.Term(status),
				r.InvoicesCreated, r.ProvidersSkipped, r.ProvidersFailed, Money(r.NetTotal))
		})
	}()
	if s.Directory == nil {
		return errs.New(errs.Unavailable, "directory_unavailable", "no provider directory is configured")
	}
	db := s.DB.WithContext(ctx)
	pl, err := loadPriceList(db)
	if err != nil {
		return err
	}
	w, err := watermark(ctx, s.DB)
	if err != nil {
		return err
	}
	jobs, err := s.planRun(db, p, pl, w)
	if err != nil {
		return err
	}
	base, err := billedBefore(db, nil)
	if err != nil {
		return err
	}
	if err := db.Exec(`UPDATE invoice_runs SET providers_total = ? WHERE id = ?`, len(jobs), run.ID).Error; err != nil {
		return errs.Wrap(err, "run: progress")
	}
	var failures said
	for i := 0; i < len(jobs); i += batchSize {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		batch := jobs[i:min(i+batchSize, len(jobs))]
		// The buyers are looked up before the batch's transaction: the
		// directory is onboarding's, on a connection of its own, and the
		// transaction (holding its providers' locks) must not wait for a
		// second connection from the pool it holds one of.
		ids := make([]int64, len(batch))
		for k, j := range batch {
			ids[k] = j.providerID
		}
		parties, err := s.parties(ctx, ids)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		var batchFailures said
		err = db.Transaction(func(tx *gorm.DB) error {
			batchFailures = batchFailures[:0]
			var created, skipped, failed int
			var records int64
			net := decimal.Zero
			slow, n, err := s.writeFast(ctx, tx, &run.ID, batch, p, pl, w, base, parties)
			if err != nil {
				return err
			}
			created, skipped, records, net = n.created, n.skipped, n.records, n.net
			for _, j := range slow {
				var inv *Invoice
				var n int64
				err := tx.Transaction(func(tx *gorm.DB) error {
					var err error
					inv, n, err = s.invoiceJob(ctx, tx, &run.ID, j, p, pl, w, base[j.providerID], parties)
					if err == nil && s.beforeCommit != nil {
						err = s.beforeCommit(j.providerID)
					}
					return err
				})
				switch {
				case err == nil && inv != nil:
					created++
					records += n
					net = net.Add(inv.NetTotal)
				case err == nil, errors.Is(err, errSkip), errors.Is(err, errNothing):
					skipped++
				default:
					if ctx.Err() != nil {
						return ctx.Err()
					}
					failed++
					var msg any = saidOf(err)
					if errs.KindOf(err) == errs.Internal {
						msg = err.Error()
					}
					batchFailures = append(batchFailures, errs.FieldError{Message: fmt.Sprintf("provider %d: %s", j.providerID, msg),
						Format: "provider %d: %s", Args: []any{j.providerID, msg}})
				}
			}
			if err := tx.Exec(`UPDATE invoice_runs SET providers_done = providers_done + ?, invoices_created = invoices_created + ?,
				providers_skipped = providers_skipped + ?, providers_failed = providers_failed + ?, records_billed = records_billed + ?,
				net_total = net_total + ? WHERE id = ?`, len(batch), created, skipped, failed, records, net, run.ID).Error; err != nil {
				return errs.Wrap(err, "run figures")
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		failures = append(failures, batchFailures...)
		if opt.Progress != nil {
			opt.Progress(i+len(batch), len(jobs))
		}
	}
	if len(failures) > 0 {
		return errs.New(errs.Conflict, "run_incomplete", "%d provider(s) could not be invoiced: %s", len(failures), failures)
	}
	return nil
}

// planRun lists the providers to bill for p up to the watermark w and
// counts their usage where it can be counted in bulk.
func (s *Service) planRun(db *gorm.DB, p Period, pl PriceList, w int64) ([]*provJob, error) {
	var all []Claim
	if err := db.Order("provider_id, id").Find(&all).Error; err != nil {
		return nil, errs.Wrap(err, "run: claims")
	}
	claims := map[int64][]Claim{}
	for _, c := range all {
		claims[c.ProviderID] = append(claims[c.ProviderID], c)
	}
	// Every provider with records, and its first delivery (a skip scan of
	// the (provider, time) index), and those with unbilled support items.
	var firsts []struct {
		ProviderID int64
		FirstAt    time.Time
	}
	if err := db.Raw(`WITH RECURSIVE p(id) AS (
			SELECT min(provider_id) FROM delivery_ledger
			UNION ALL
			SELECT (SELECT min(provider_id) FROM delivery_ledger WHERE provider_id > p.id) FROM p WHERE p.id IS NOT NULL)
		SELECT p.id AS provider_id, (SELECT min(delivered_at) FROM delivery_ledger WHERE provider_id = p.id) AS first_at
		FROM p WHERE p.id IS NOT NULL`).Scan(&firsts).Error; err != nil {
		return nil, errs.Wrap(err, "run: providers with deliveries")
	}
	var supported []int64
	if err := db.Raw(`SELECT DISTINCT provider_id FROM billing_support_items WHERE invoice_id IS NULL AND occurred_at < ?`, p.End).
		Scan(&supported).Error; err != nil {
		return nil, errs.Wrap(err, "run: providers with support items")
	}
	jobs := map[int64]*provJob{}
	first := map[int64]time.Time{}
	for _, f := range firsts {
		jobs[f.ProviderID] = &provJob{providerID: f.ProviderID}
		first[f.ProviderID] = f.FirstAt
	}
	for _, id := range supported {
		if jobs[id] == nil {
			jobs[id] = &provJob{providerID: id}
		}
		jobs[id].support = true
	}
	// The pass reads other providers' records too (and drops them): the
	// rating buckets start at the first delivery of all.
	var from time.Time
	for _, f := range firsts {
		if from.IsZero() || f.FirstAt.Before(from) {
			from = f.FirstAt
		}
	}
	// Group by the quadrant the provider's claims make.
	type quad struct {
		w int64
		e time.Time
	}
	groups := map[quad][]*provJob{}
	floors := map[int64]int64{}
	for id, j := range jobs {
		cs := claims[id]
		j.state = stateOf(cs)
		var top Claim
		floor := int64(1)
		for _, c := range cs {
			if c.Period == p.String() {
				j.skip = true
			}
			if c.HighID > top.HighID || (c.HighID == top.HighID && c.EndsAt.After(top.EndsAt)) {
				top = c
			}
			floor = max(floor, c.FloorID)
		}
		if j.skip {
			continue
		}
		for _, c := range cs {
			if c.HighID > top.HighID || c.EndsAt.After(top.EndsAt) {
				j.compute = true // a staircase: counted alone
			}
		}
		if j.compute || first[id].IsZero() {
			j.compute = j.compute || !first[id].IsZero()
			continue
		}
		floors[id] = floor
		k := quad{top.HighID, top.EndsAt.UTC()}
		groups[k] = append(groups[k], j)
	}
	for k, g := range groups {
		if bulk := cmp.Or(s.bulkMin, globalMin); len(g) < bulk {
			for _, j := range g {
				j.compute = true
			}
			continue
		}
		member := map[int64]*provJob{}
		floor := int64(-1)
		ids := make([]int64, 0, len(g))
		for _, j := range g {
			member[j.providerID] = j
			ids = append(ids, j.providerID)
			if floor < 0 || floors[j.providerID] < floor {
				floor = floors[j.providerID]
			}
		}
		// Every condition costs on each record: leave out those that hold
		// for all (no claims yet: no quadrant to leave out, no floor).
		where := `l.id <= @w AND l.delivered_at < @end`
		if floor > 1 {
			where += ` AND l.id >= @floor`
		}
		if k.w > 0 {
			where += ` AND NOT (l.id <= @w1 AND l.delivered_at < @e1)`
		}
		exact, err := scanPeriod(db, s.makeBuckets(from, p.End, pl), p.Start, where,
			[]any{sql.Named("floor", floor), sql.Named("w", w), sql.Named("end", p.End), sql.Named("w1", k.w), sql.Named("e1", k.e)},
			func(r usageRow) {
				if j := member[r.ProviderID]; j != nil {
					j.rows = append(j.rows, r)
				}
			})
		if err != nil {
			return nil, err
		}
		for id := range exact {
			if j := member[id]; j != nil {
				j.compute, j.rows = true, nil
			}
		}
		var fl []struct {
			ID    int64
			Floor *int64
		}
		if err := db.Raw(`SELECT p.id, (SELECT min(l.id) FROM delivery_ledger l WHERE l.provider_id = p.id AND l.delivered_at >= ? AND l.id <= ?) AS floor
			FROM unnest(?::bigint[]) AS p(id)`, p.End, w, sqlarray.Int64s(ids)).Scan(&fl).Error; err != nil {
			return nil, errs.Wrap(err, "run: claim floors")
		}
		for _, f := range fl {
			if f.Floor != nil {
				member[f.ID].floor = *f.Floor
			} else {
				member[f.ID].floor = w + 1
			}
		}
	}
	out := make([]*provJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].providerID < out[k].providerID })
	return out, nil
}

// batchFigures counts what a batch did.
type batchFigures struct {
	created, skipped int
	records          int64
	net              decimal.Decimal
}

// writeFast writes the drafts and claims of the batch's providers whose
// usage was counted in bulk and who have no support items, with a constant
// number of statements for the whole batch: lock the providers (in id
// order, as every other claimer locks one), check that their claims did
// not change since the count, then insert the invoices, usage details,
// lines, claims and audit entries as multi-row inserts. It runs in a
// savepoint; if anything fails, every provider goes the slow way (one
// savepoint each), which also reports the failure per provider. It
// returns the jobs left for the slow way.
func (s *Service) writeFast(ctx context.Context, tx *gorm.DB, runID *int64, batch []*provJob, p Period, pl PriceList, w int64,
	base map[int64]map[string]int64, parties map[int64]Party) (slow []*provJob, fig batchFigures, err error) {
	fig.net = decimal.Zero
	var fast []*provJob
	for _, j := range batch {
		if j.skip || j.compute || j.support || s.beforeCommit != nil {
			slow = append(slow, j)
		} else {
			fast = append(fast, j)
		}
	}
	if len(fast) == 0 {
		return slow, fig, nil
	}
	var out batchFigures
	err = tx.Transaction(func(tx *gorm.DB) error {
		out = batchFigures{net: decimal.Zero}
		ids := make([]int64, len(fast))
		for i, j := range fast {
			ids[i] = j.providerID
		}
		if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtextextended(? || t.id::text, 0))
			FROM unnest(CAST(? AS bigint[])) AS t(id) ORDER BY t.id`, providerLockSpace, sqlarray.Int64s(ids)).Error; err != nil {
			return errs.Wrap(err, "lock providers")
		}
		var cs []Claim
		if err := tx.Where("provider_id = ANY (CAST(? AS bigint[]))", sqlarray.Int64s(ids)).Order("provider_id, id").Find(&cs).Error; err != nil {
			return errs.Wrap(err, "claims")
		}
		claims := map[int64][]Claim{}
		for _, c := range cs {
			claims[c.ProviderID] = append(claims[c.ProviderID], c)
		}
		var todo []*provJob
		for _, j := range fast {
			if stateOf(claims[j.providerID]) != j.state {
				return errs.New(errs.Conflict, "claims_changed", "provider %d's claims changed during the run", j.providerID)
			}
			todo = append(todo, j)
		}
		by, _ := actor(ctx)
		var invs []*Invoice
		var lineSets [][]Line
		var detailSets [][]UsageDetail
		var newClaims []Claim
		var billed []int64
		for _, j := range todo {
			claim := Claim{ProviderID: j.providerID, Period: p.String(), HighID: w, EndsAt: p.End.UTC(), FloorID: j.floor, CreatedAt: s.now()}
			if len(j.rows) == 0 {
				newClaims = append(newClaims, claim)
				out.skipped++
				continue
			}
			lines, details, n, err := s.priceUsage(j.rows, base[j.providerID], pl)
			if err != nil {
				return err
			}
			inv, err := s.newDraft(ctx, runID, j.providerID, p, parties)
			if err == nil {
				inv.Lines = lines
				err = setTotals(inv)
			}
			if err != nil {
				// The slow way reports it for this provider alone.
				slow = append(slow, j)
				continue
			}
			invs = append(invs, inv)
			lineSets, detailSets, billed = append(lineSets, lines), append(detailSets, details), append(billed, n)
			newClaims = append(newClaims, claim)
		}
		if len(invs) > 0 {
			if err := tx.Omit("Lines").CreateInBatches(invs, 500).Error; err != nil {
				return dbError(err, "create invoices")
			}
		}
		var allLines []Line
		var allDetails []UsageDetail
		var items []audit.Item
		invOf := map[int64]*Invoice{}
		for i, inv := range invs {
			invOf[inv.ProviderID] = inv
			for k := range lineSets[i] {
				l := &lineSets[i][k]
				l.InvoiceID, l.Position, l.CreatedBy = inv.ID, k+1, by
			}
			for k := range detailSets[i] {
				detailSets[i][k].InvoiceID = inv.ID
			}
			allLines = append(allLines, lineSets[i]...)
			allDetails = append(allDetails, detailSets[i]...)
			out.created++
			out.records += billed[i]
			out.net = out.net.Add(inv.NetTotal)
			items = append(items, audit.ItemOf("invoice.draft", "invoice", strconv.FormatInt(inv.ID, 10),
				"draft for %s, %s: %d lines, %d ledger records, net %s", inv.BuyerName, p, len(lineSets[i]), billed[i],
				Money(inv.NetTotal)))
		}
		for i := range newClaims {
			if inv := invOf[newClaims[i].ProviderID]; inv != nil {
				newClaims[i].InvoiceID = &inv.ID
			}
		}
		if len(allDetails) > 0 {
			if err := tx.CreateInBatches(&allDetails, 2000).Error; err != nil {
				return dbError(err, "usage details")
			}
		}
		if len(allLines) > 0 {
			if err := tx.CreateInBatches(&allLines, 1000).Error; err != nil {
				return dbError(err, "invoice lines")
			}
		}
		if len(newClaims) > 0 {
			if err := tx.CreateInBatches(&newClaims, 2000).Error; err != nil {
				return dbError(err, "claims")
			}
		}
		return audit.RecordMany(ctx, tx, items)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fig, ctx.Err()
		}
		// Counted again, provider by provider.
		for _, j := range fast {
			j.compute = true
		}
		return batch, fig, nil
	}
	return slow, out, nil
}

// parties looks up the buyers of a batch, in one lookup when the directory
// can; a provider the directory does not know is left out. Call it outside
// any transaction: the directory takes a connection of its own.
func (s *Service) parties(ctx context.Context, ids []int64) (map[int64]Party, error) {
	if l, ok := s.Directory.(PartyLister); ok {
		return l.BillingParties(ctx, ids)
	}
	out := make(map[int64]Party, len(ids))
	for _, id := range ids {
		p, err := s.Directory.BillingParty(ctx, id)
		if err != nil {
			if errs.KindOf(err) == errs.NotFound {
				continue
			}
			return nil, err
		}
		out[id] = p
	}
	return out, nil
}

// newDraft is the draft invoice a run makes for one provider of p (both
// the bulk and the provider-by-provider way): the buyer as the directory
// has it (looked up before the transaction, see execute), the run, who
// started it; no lines or totals yet.
func (s *Service) newDraft(ctx context.Context, runID *int64, providerID int64, p Period, parties map[int64]Party) (*Invoice, error) {
	party, ok := parties[providerID]
	if !ok {
		return nil, errs.New(errs.Conflict, "provider_unknown", "provider %d is not in the provider directory", providerID)
	}
	by, byID := actor(ctx)
	inv := &Invoice{DocType: DocInvoice, ProviderID: providerID, Period: p.String(), PeriodStart: p.Start.UTC(), PeriodEnd: p.End.UTC(),
		Status: StatusDraft, Currency: "EUR", RunID: runID, CreatedBy: by, CreatedByID: byID, CreatedAt: s.now()}
	inv.setBuyer(party)
	return inv, nil
}

// lockProvider serialises every transaction that claims or releases a
// provider's ledger records (runs of different periods, regenerating a draft).
func lockProvider(tx *gorm.DB, providerID int64) error {
	return errs.Wrap(tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
		providerLockSpace+strconv.FormatInt(providerID, 10)).Error, "lock provider")
}

// invoiceProvider makes one provider's draft for p on its own (the same
// transaction a run makes for each provider).
func (s *Service) invoiceProvider(ctx context.Context, runID *int64, providerID int64, p Period, pl PriceList) (*Invoice, error) {
	w, err := watermark(ctx, s.DB)
	if err != nil {
		return nil, err
	}
	parties, err := s.parties(ctx, []int64{providerID}) // before the transaction (see execute)
	if err != nil {
		return nil, err
	}
	var inv *Invoice
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		inv, _, err = s.invoiceJob(ctx, tx, runID, &provJob{providerID: providerID, compute: true, support: true}, p, pl, w, nil, parties)
		return err
	})
	if err == nil && inv == nil {
		err = errNothing
	}
	return inv, err
}

// invoiceJob writes one provider's draft for p in tx: the invoice, its
// lines and usage details, and the claim (w, p.End) that makes its records
// billed; with nothing to bill, only a claim without invoice (so the next
// run starts from w). A claim for p already there means the work is done:
// errSkip. The provider lock and the unique (provider, period) claim keep
// concurrent attempts to one.
func (s *Service) invoiceJob(ctx context.Context, tx *gorm.DB, runID *int64, j *provJob, p Period, pl PriceList, w int64,
	base map[string]int64, parties map[int64]Party) (*Invoice, int64, error) {
	if j.skip {
		return nil, 0, errSkip
	}
	if err := lockProvider(tx, j.providerID); err != nil {
		return nil, 0, err
	}
	cs, err := providerClaims(tx, j.providerID)
	if err != nil {
		return nil, 0, err
	}
	for _, c := range cs {
		if c.Period == p.String() {
			return nil, 0, errSkip
		}
	}
	rows, floor, support := j.rows, j.floor, j.support
	if j.compute || stateOf(cs) != j.state {
		if rows, err = s.providerUsage(tx, j.providerID, cs, w, p.End, pl); err != nil {
			return nil, 0, err
		}
		if floor, err = floorAfter(tx, j.providerID, w, p.End); err != nil {
			return nil, 0, err
		}
		b, err := billedBefore(tx, []int64{j.providerID})
		if err != nil {
			return nil, 0, err
		}
		base = b[j.providerID]
		support = true
	}
	claim := &Claim{ProviderID: j.providerID, Period: p.String(), HighID: w, EndsAt: p.End.UTC(), FloorID: floor, CreatedAt: s.now()}
	if len(rows) == 0 && !support {
		return nil, 0, errs.Wrap(tx.Create(claim).Error, "claim")
	}
	inv, err := s.newDraft(ctx, runID, j.providerID, p, parties)
	if err != nil {
		return nil, 0, err
	}
	// The draft lives in a savepoint: with nothing to bill after all (the
	// support items went elsewhere) only the bare claim stays.
	var records int64
	err = tx.Transaction(func(tx *gorm.DB) error {
		if err := tx.Omit("Lines").Create(inv).Error; err != nil {
			if isUniqueViolation(err) {
				return errSkip
			}
			return errs.Wrap(err, "create invoice")
		}
		var err error
		if records, err = s.bill(ctx, tx, inv, p, pl, rows, base, nil); err != nil {
			return err
		}
		if len(inv.Lines) == 0 {
			return errNothing
		}
		return saveTotals(tx, inv)
	})
	if errors.Is(err, errNothing) {
		return nil, 0, errs.Wrap(tx.Create(claim).Error, "claim")
	}
	if err != nil {
		return nil, 0, err
	}
	claim.InvoiceID = &inv.ID
	if err := tx.Create(claim).Error; err != nil {
		if isUniqueViolation(err) {
			return nil, 0, errSkip
		}
		return nil, 0, errs.Wrap(err, "claim")
	}
	err = audit.Recordf(ctx, tx, "invoice.draft", "invoice", strconv.FormatInt(inv.ID, 10),
		"draft for %s, %s: %d lines, %d ledger records, net %s", inv.BuyerName, p, len(inv.Lines), records, Money(inv.NetTotal))
	if err != nil {
		return nil, 0, err
	}
	return inv, records, nil
}

// usageGroup is a run of units of one kind, month and version: contiguous
// positions priced under one version's tiers.
type usageGroup struct {
	Kind          string
	ServicePeriod string
	VersionID     *int64
	ValidFrom     time.Time
	N             int64
}

// priceUsage prices usage rows: per kind, month and version by graduated
// tiers, the units of a month continuing after those earlier invoices
// billed (base, keyed kind|month); and the per-container details. The
// lines and details have no invoice yet. records is the number of ledger
// records they bill.
func (s *Service) priceUsage(rows []usageRow, base map[string]int64, pl PriceList) (lines []Line, out []UsageDetail, records int64, err error) {
	groupIdx := map[string]int{}
	var groups []usageGroup
	details := map[string]*UsageDetail{}
	var detailKeys []string
	for _, r := range rows {
		records += r.N
		if r.VersionID == nil {
			return nil, nil, 0, errs.New(errs.Conflict, "no_price_list", "no price list version is valid for %s of %s", errs.Term(itemOf(r.Kind).ShortLabel()), r.ServicePeriod)
		}
		ver, _ := pl.ByID(*r.VersionID)
		if ver == nil {
			return nil, nil, 0, errs.Wrap(fmt.Errorf("version %d", *r.VersionID), "price list changed during the run")
		}
		gk := fmt.Sprintf("%s|%s|%d", r.Kind, r.ServicePeriod, *r.VersionID)
		if i, ok := groupIdx[gk]; ok {
			groups[i].N += r.N
		} else {
			groupIdx[gk] = len(groups)
			groups = append(groups, usageGroup{Kind: r.Kind, ServicePeriod: r.ServicePeriod, VersionID: r.VersionID, ValidFrom: ver.ValidFrom, N: r.N})
		}
		item := itemOf(r.Kind)
		dk := fmt.Sprintf("%s|%s|%d|%d", item, r.ServicePeriod, r.ContainerID, r.ContainerVersion)
		if d, ok := details[dk]; ok {
			d.Quantity += r.N
		} else {
			details[dk] = &UsageDetail{Item: item, ServicePeriod: r.ServicePeriod, ContainerID: r.ContainerID,
				ContainerVersion: r.ContainerVersion, Quantity: r.N}
			detailKeys = append(detailKeys, dk)
		}
	}
	// Positions follow delivery time: within a month the earlier version's
	// units come first.
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if a.ServicePeriod != b.ServicePeriod {
			return a.ServicePeriod < b.ServicePeriod
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind // pull (telematics) before push
		}
		return a.ValidFrom.Before(b.ValidFrom)
	})
	next := map[string]int64{}
	for _, g := range groups {
		item := itemOf(g.Kind)
		mk := g.Kind + "|" + g.ServicePeriod
		if _, ok := next[mk]; !ok {
			next[mk] = base[mk]
		}
		ver, _ := pl.ByID(*g.VersionID)
		slices, ok := Graduate(ver.Tiers(item), next[mk], g.N)
		if !ok {
			return nil, nil, 0, errs.New(errs.Conflict, "price_list_incomplete", "the price list valid from %s has no price for every unit of %s",
				errs.Day{T: ver.ValidFrom.In(s.loc())}, errs.Term(item.ShortLabel()))
		}
		next[mk] += g.N
		sp, _ := ParsePeriod(g.ServicePeriod, s.loc())
		for _, sl := range slices {
			from, to, vid := sl.From, sl.To, ver.ID
			lines = append(lines, Line{Item: item, ServicePeriod: g.ServicePeriod, VersionID: &vid, TierFrom: &from, TierTo: &to,
				Description: usageDescription(item, sp, sl, ver, s.loc()),
				Quantity:    decimal.NewFromInt(sl.Quantity), UnitCode: "C62", UnitPrice: sl.UnitPrice, NetAmount: sl.Amount()})
		}
	}
	sort.Strings(detailKeys)
	out = make([]UsageDetail, 0, len(detailKeys))
	for _, k := range detailKeys {
		out = append(out, *details[k])
	}
	return lines, out, records, nil
}

// bill writes inv's lines: the priced usage rows and their details, the
// support items it claims, then keep (e.g. manual lines on regeneration).
// It returns the number of ledger records billed.
func (s *Service) bill(ctx context.Context, tx *gorm.DB, inv *Invoice, p Period, pl PriceList, rows []usageRow, base map[string]int64, keep []Line) (int64, error) {
	lines, details, claimed, err := s.priceUsage(rows, base, pl)
	if err != nil {
		return 0, err
	}
	if len(details) > 0 {
		for i := range details {
			details[i].InvoiceID = inv.ID
		}
		if err := tx.Create(&details).Error; err != nil {
			return 0, dbError(err, "usage details")
		}
	}
	supportLines, items, err := s.rateSupport(tx, inv, p, pl)
	if err != nil {
		return 0, err
	}
	lines = append(lines, supportLines...)
	lines = append(lines, keep...)
	by, _ := actor(ctx)
	for i := range lines {
		lines[i].ID = 0
		lines[i].InvoiceID = inv.ID
		lines[i].Position = i + 1
		if lines[i].CreatedBy == "" {
			lines[i].CreatedBy = by
		}
	}
	if len(lines) > 0 {
		if err := tx.Create(&lines).Error; err != nil {
			return 0, dbError(err, "invoice lines")
		}
	}
	// Support items point at their line (set after the lines have ids).
	for i := range lines {
		if ids := items[lineKey(lines[i])]; len(ids) > 0 {
			if err := tx.Exec(`UPDATE billing_support_items SET invoice_line_id = ? WHERE id IN ? AND invoice_id = ?`, lines[i].ID, ids, inv.ID).Error; err != nil {
				return 0, dbError(err, "support item lines")
			}
		}
	}
	inv.Lines = lines
	return claimed, nil
}

func usageDescription(item Item, sp Period, sl Slice, ver *Version, loc *time.Location) string {
	return fmt.Sprintf("%s, %s, units %s–%s of the month (price list of %s)", item.ShortLabel(), sp.Label(),
		groupThousands(strconv.FormatInt(sl.From, 10)), groupThousands(strconv.FormatInt(sl.To, 10)),
		ver.ValidFrom.In(loc).Format("2006-01-02"))
}

func lineKey(l Line) string {
	t := int64(0)
	if l.TicketID != nil {
		t = *l.TicketID
	}
	v := int64(0)
	if l.VersionID != nil {
		v = *l.VersionID
	}
	return fmt.Sprintf("%s|%s|%d|%d|%s", l.Item, l.ServicePeriod, v, t, l.Priority)
}

// rateSupport claims the provider's uninvoiced support items up to p.End:
// a case fee per case by priority; billable time summed per ticket, month
// and version and charged per started 15 minutes.
func (s *Service) rateSupport(tx *gorm.DB, inv *Invoice, p Period, pl PriceList) ([]Line, map[string][]int64, error) {
	var items []SupportItem
	err := tx.Raw(`UPDATE billing_support_items SET invoice_id = ? WHERE provider_id = ? AND invoice_id IS NULL AND occurred_at < ?
		RETURNING *`, inv.ID, inv.ProviderID, p.End).Scan(&items).Error
	if err != nil {
		return nil, nil, dbError(err, "claim support items")
	}
	type acc struct {
		line    Line
		minutes int64
		count   int64
		ids     []int64
		refs    []string
	}
	groups := map[string]*acc{}
	var order []string
	ticketRefs := map[int64]string{}
	for _, it := range items {
		ver, ok := pl.At(it.OccurredAt)
		if !ok {
			return nil, nil, errs.New(errs.Conflict, "no_price_list", "no price list version is valid for the support item of %s",
				it.OccurredAt.In(s.loc()).Format("2006-01-02"))
		}
		vid, tid := ver.ID, it.TicketID
		l := Line{ServicePeriod: PeriodOf(it.OccurredAt, s.loc()).String(), VersionID: &vid, Priority: it.Priority, UnitCode: "C62"}
		if it.Kind == SupportCase {
			l.Item = ItemSupportCase
		} else {
			l.Item = ItemSupportTime
			l.TicketID = &tid
		}
		k := lineKey(l)
		g := groups[k]
		if g == nil {
			g = &acc{line: l}
			groups[k] = g
			order = append(order, k)
		}
		g.minutes += int64(it.Minutes)
		g.count++
		g.ids = append(g.ids, it.ID)
		g.refs = append(g.refs, ticketLabel(it))
		ticketRefs[it.TicketID] = ticketLabel(it)
	}
	var lines []Line
	byKey := map[string][]int64{}
	for _, k := range order {
		g := groups[k]
		ver, _ := pl.ByID(*g.line.VersionID)
		sp, _ := ParsePeriod(g.line.ServicePeriod, s.loc())
		l := g.line
		switch l.Item {
		case ItemSupportCase:
			price, ok := ver.Price(ItemSupportCase, l.Priority)
			if !ok {
				return nil, nil, errs.New(errs.Conflict, "price_list_incomplete", "the price list has no case price for %s", l.Priority)
			}
			l.Quantity, l.UnitPrice = decimal.NewFromInt(g.count), price
			l.Description = fmt.Sprintf("Support case fee %s, %s: %s", l.Priority, sp.Label(), strings.Join(g.refs, ", "))
		case ItemSupportTime:
			price, ok := ver.Price(ItemSupportTime, "")
			if !ok {
				return nil, nil, errs.New(errs.Conflict, "price_list_incomplete", "the price list has no support time price")
			}
			blocks := SupportBlocks(g.minutes)
			l.Quantity, l.UnitPrice = decimal.NewFromInt(blocks), price
			l.Description = fmt.Sprintf("Support time, ticket %s (%s), %s: %d min = %d × started 15 min", ticketRefs[*l.TicketID],
				l.Priority, sp.Label(), g.minutes, blocks)
		}
		l.NetAmount = RoundCents(l.UnitPrice.Mul(l.Quantity))
		lines = append(lines, l)
		byKey[k] = g.ids
	}
	return lines, byKey, nil
}

func ticketLabel(it SupportItem) string {
	if it.TicketRef != "" {
		return it.TicketRef
	}
	return "#" + strconv.FormatInt(it.TicketID, 10)
}

// saveTotals recomputes an invoice's totals from its lines (exact sums;
// VAT rounded once for the invoice's one category) and stores them.
// A buyer whose tax category cannot be determined gets no totals: the
// error says what is missing.
func saveTotals(tx *gorm.DB, inv *Invoice) error {
	if err := setTotals(inv); err != nil {
		return err
	}
	err := tx.Model(&Invoice{}).Where("id = ?", inv.ID).Updates(map[string]any{
		"tax_category": inv.TaxCategory, "tax_rate": inv.TaxRate, "tax_note": inv.TaxNote,
		"net_total": inv.NetTotal, "tax_total": inv.TaxTotal, "gross_total": inv.GrossTotal}).Error
	return dbError(err, "invoice totals")
}

// setTotals computes an invoice's totals under its buyer's VAT treatment.
// When that cannot be determined (no country, a country outside the EEA, an
// EU buyer without VAT ID) it returns the reason and leaves inv as it was:
// an invoice with an unknown tax category is never written.
func setTotals(inv *Invoice) error {
	tc, err := TaxFor(inv.Buyer())
	if err != nil {
		e := errs.As(err)
		return errs.New(errs.Conflict, cmp.Or(e.Code, "tax_category_unknown"), "the tax category of %s cannot be determined: %s",
			cmp.Or(inv.BuyerName, fmt.Sprintf("provider %d", inv.ProviderID)), saidOf(e))
	}
	computeTotals(inv, tc)
	return nil
}

func computeTotals(inv *Invoice, tc TaxCase) {
	net := decimal.Zero
	for _, l := range inv.Lines {
		net = net.Add(l.NetAmount)
	}
	inv.TaxCategory, inv.TaxRate, inv.TaxNote = tc.Category, tc.Rate, tc.Note
	inv.NetTotal = net
	inv.TaxTotal = TaxAmount(net, tc.Rate)
	inv.GrossTotal = net.Add(inv.TaxTotal)
}
