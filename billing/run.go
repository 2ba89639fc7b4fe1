package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
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
	sqlDB, err := s.DB.DB()
	if err != nil {
		return nil, errs.Wrap(err, "run: pool")
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, errs.Wrap(err, "run: connection")
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2)", runLockKey, p.Year*100+int(p.Month)).Scan(&got); err != nil {
		conn.Close()
		return nil, errs.Wrap(err, "run: lock")
	}
	if !got {
		conn.Close()
		return nil, ErrRunInProgress
	}
	release := func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1, $2)", runLockKey, p.Year*100+int(p.Month))
		conn.Close()
	}
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
		return audit.Record(ctx, tx, "invoice_run.start", "invoice_run", strconv.FormatInt(run.ID, 10),
			fmt.Sprintf("started the invoice run for %s (%s)", p, opt.Trigger))
	})
	if err != nil {
		release()
		return nil, err
	}
	h := &RunHandle{RunID: run.ID, done: make(chan struct{})}
	// The run keeps the caller's principal and request for its audit entries.
	runCtx := context.WithoutCancel(ctx)
	runCtx, cancel := context.WithCancel(runCtx)
	go func() {
		defer close(h.done)
		defer cancel()
		defer release()
		stop := context.AfterFunc(shutdownCtx, cancel)
		defer stop()
		h.err = s.execute(runCtx, run, p, opt)
	}()
	return h, nil
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

// ListRuns lists runs, newest first.
func (s *Service) ListRuns(ctx context.Context, offset, limit int) ([]InvoiceRun, int64, error) {
	var total int64
	if err := s.DB.WithContext(ctx).Model(&InvoiceRun{}).Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count runs")
	}
	if limit <= 0 || limit > 200 {
		limit = 25
	}
	var out []InvoiceRun
	err := s.DB.WithContext(ctx).Order("id DESC").Offset(offset).Limit(limit).Find(&out).Error
	return out, total, errs.Wrap(err, "list runs")
}

var errSkip = errors.New("already invoiced")
var errNothing = errors.New("nothing to bill")

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
			return audit.Record(bg, tx, "invoice_run.finish", "invoice_run", strconv.FormatInt(run.ID, 10),
				fmt.Sprintf("invoice run %s %s: %d drafts, %d skipped, %d failed, net %s", r.Period, status,
					r.InvoicesCreated, r.ProvidersSkipped, r.ProvidersFailed, FormatMoney(r.NetTotal)))
		})
	}()
	if s.Directory == nil {
		return errs.New(errs.Unavailable, "directory_unavailable", "no provider directory is configured")
	}
	pl, err := loadPriceList(s.DB.WithContext(ctx))
	if err != nil {
		return err
	}
	var providers []int64
	err = s.DB.WithContext(ctx).Raw(`SELECT provider_id FROM delivery_ledger WHERE invoice_id IS NULL AND delivered_at < ?
		UNION SELECT provider_id FROM billing_support_items WHERE invoice_id IS NULL AND occurred_at < ?
		ORDER BY 1`, p.End, p.End).Scan(&providers).Error
	if err != nil {
		return errs.Wrap(err, "run: providers to bill")
	}
	if err := s.DB.WithContext(ctx).Exec(`UPDATE invoice_runs SET providers_total = ? WHERE id = ?`, len(providers), run.ID).Error; err != nil {
		return errs.Wrap(err, "run: progress")
	}
	var failures []string
	for i, pid := range providers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_, err := s.invoiceProvider(ctx, &run.ID, pid, p, pl)
		counter := ""
		switch {
		case err == nil:
		case errors.Is(err, errSkip), errors.Is(err, errNothing):
			counter = "providers_skipped"
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			counter = "providers_failed"
			failures = append(failures, fmt.Sprintf("provider %d: %s", pid, errs.As(err).Message))
			if errs.KindOf(err) == errs.Internal {
				failures[len(failures)-1] = fmt.Sprintf("provider %d: %v", pid, err)
			}
		}
		q := `UPDATE invoice_runs SET providers_done = providers_done + 1 WHERE id = ?`
		if counter != "" {
			q = `UPDATE invoice_runs SET providers_done = providers_done + 1, ` + counter + ` = ` + counter + ` + 1 WHERE id = ?`
		}
		if err := s.DB.WithContext(bg).Exec(q, run.ID).Error; err != nil {
			return errs.Wrap(err, "run: progress")
		}
		if opt.Progress != nil {
			opt.Progress(i+1, len(providers))
		}
	}
	if len(failures) > 0 {
		return errs.New(errs.Conflict, "run_incomplete", "%d provider(s) could not be invoiced: %s", len(failures), strings.Join(failures, "; "))
	}
	return nil
}

// lockProvider serialises every transaction that claims or releases a
// provider's ledger records (runs of different periods, regenerating a draft).
func lockProvider(tx *gorm.DB, providerID int64) error {
	return errs.Wrap(tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
		providerLockSpace+strconv.FormatInt(providerID, 10)).Error, "lock provider")
}

// invoiceProvider creates the provider's draft for p in one transaction
// that also claims its ledger records and support items: either all of it
// commits or none (crash-safe), and a second attempt finds the invoice and
// skips (idempotent). The unique index on (provider, period) settles races.
func (s *Service) invoiceProvider(ctx context.Context, runID *int64, providerID int64, p Period, pl PriceList) (*Invoice, error) {
	party, err := s.Directory.BillingParty(ctx, providerID)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, errs.New(errs.Conflict, "provider_unknown", "provider %d is not in the provider directory", providerID)
		}
		return nil, err
	}
	by, byID := actor(ctx)
	var inv *Invoice
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockProvider(tx, providerID); err != nil {
			return err
		}
		var exists int64
		if err := tx.Raw(`SELECT count(*) FROM invoices WHERE provider_id = ? AND period = ? AND doc_type = 'invoice' AND status <> 'discarded'`,
			providerID, p.String()).Scan(&exists).Error; err != nil {
			return errs.Wrap(err, "existing invoice")
		}
		if exists > 0 {
			return errSkip
		}
		inv = &Invoice{DocType: DocInvoice, ProviderID: providerID, Period: p.String(), PeriodStart: p.Start.UTC(), PeriodEnd: p.End.UTC(),
			Status: StatusDraft, Currency: "EUR", RunID: runID, CreatedBy: by, CreatedByID: byID, CreatedAt: s.now()}
		inv.setBuyer(party)
		if err := tx.Omit("Lines").Create(inv).Error; err != nil {
			if isUniqueViolation(err) {
				return errSkip
			}
			return errs.Wrap(err, "create invoice")
		}
		records, err := s.rate(ctx, tx, inv, p, pl, nil)
		if err != nil {
			return err
		}
		if len(inv.Lines) == 0 {
			return errNothing
		}
		if err := saveTotals(tx, inv); err != nil {
			return err
		}
		if runID != nil {
			if err := tx.Exec(`UPDATE invoice_runs SET invoices_created = invoices_created + 1, records_billed = records_billed + ?,
				net_total = net_total + ? WHERE id = ?`, records, inv.NetTotal, *runID).Error; err != nil {
				return errs.Wrap(err, "run figures")
			}
		}
		if s.beforeCommit != nil {
			if err := s.beforeCommit(providerID); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, "invoice.draft", "invoice", strconv.FormatInt(inv.ID, 10),
			fmt.Sprintf("draft for %s, %s: %d lines, net %s", party.LegalName, p, len(inv.Lines), FormatMoney(inv.NetTotal)))
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// claimLedger assigns the provider's uninvoiced records delivered before
// end to an invoice, in one statement: each gets its month and its
// position in the provider's count of that kind in that month, continuing
// after the positions earlier invoices billed (a late record of a finalized
// month continues that month's count, and its line carries that month).
// The same statement returns what rating needs, summed per kind, month,
// price list version (valid at delivery) and container, so the claimed
// rows are never read twice.
const claimLedger = `
WITH cand AS MATERIALIZED (
    SELECT l.id, l.kind, to_char(l.delivered_at AT TIME ZONE @tz, 'YYYY-MM') AS sp, l.delivered_at
    FROM delivery_ledger l
    WHERE l.provider_id = @provider AND l.invoice_id IS NULL AND l.delivered_at < @end
), base AS MATERIALIZED (
    SELECT k.kind, k.sp,
           COALESCE((SELECT max(x.month_position) FROM delivery_ledger x
                     WHERE x.provider_id = @provider AND x.kind = k.kind AND x.service_period = k.sp
                       AND x.invoice_id IS NOT NULL), 0) AS n
    FROM (SELECT DISTINCT kind, sp FROM cand) k
), ranked AS (
    SELECT c.id, c.sp, b.n + row_number() OVER (PARTITION BY c.kind, c.sp ORDER BY c.delivered_at, c.id) AS pos
    FROM cand c JOIN base b ON b.kind = c.kind AND b.sp = c.sp
), upd AS (
    UPDATE delivery_ledger d SET invoice_id = @invoice, service_period = r.sp, month_position = r.pos
    FROM ranked r WHERE d.id = r.id
    RETURNING d.kind, d.service_period, d.month_position, d.container_id, d.container_version, d.delivered_at
), v AS (
    SELECT id, valid_from, lead(valid_from) OVER (ORDER BY valid_from) AS valid_to FROM price_list_versions
)
SELECT u.kind, u.service_period, v.id AS version_id, u.container_id, u.container_version,
       min(u.month_position) AS first_pos, max(u.month_position) AS last_pos, count(*) AS n
FROM upd u
LEFT JOIN v ON u.delivered_at >= v.valid_from AND (v.valid_to IS NULL OR u.delivered_at < v.valid_to)
GROUP BY 1, 2, 3, 4, 5`

// claimRow is one row of claimLedger's answer.
type claimRow struct {
	Kind             string
	ServicePeriod    string
	VersionID        *int64
	ContainerID      int64
	ContainerVersion int
	FirstPos         int64
	LastPos          int64
	N                int64
}

// usageGroup is a run of units of one kind, month and version: contiguous
// positions priced under one version's tiers.
type usageGroup struct {
	Kind          string
	ServicePeriod string
	VersionID     *int64
	FirstPos      int64
	LastPos       int64
	N             int64
}

// rate claims the provider's billable usage up to p.End for inv and writes
// its lines (after any keep lines, e.g. manual ones on regeneration). It
// returns the number of ledger records billed.
func (s *Service) rate(ctx context.Context, tx *gorm.DB, inv *Invoice, p Period, pl PriceList, keep []Line) (int64, error) {
	var rows []claimRow
	err := tx.Raw(claimLedger, sql.Named("tz", s.loc().String()), sql.Named("provider", inv.ProviderID), sql.Named("end", p.End),
		sql.Named("invoice", inv.ID)).Scan(&rows).Error
	if err != nil {
		return 0, dbError(err, "claim ledger records")
	}
	// Sum the containers into groups (kind, month, version), and the
	// versions into the per-container details (kind, month, container).
	groupIdx := map[string]int{}
	var groups []usageGroup
	details := map[string]*UsageDetail{}
	var detailKeys []string
	var claimed int64
	for _, r := range rows {
		claimed += r.N
		vid := int64(0)
		if r.VersionID != nil {
			vid = *r.VersionID
		}
		gk := fmt.Sprintf("%s|%s|%d", r.Kind, r.ServicePeriod, vid)
		if i, ok := groupIdx[gk]; ok {
			g := &groups[i]
			g.FirstPos, g.LastPos, g.N = min(g.FirstPos, r.FirstPos), max(g.LastPos, r.LastPos), g.N+r.N
		} else {
			groupIdx[gk] = len(groups)
			groups = append(groups, usageGroup{Kind: r.Kind, ServicePeriod: r.ServicePeriod, VersionID: r.VersionID,
				FirstPos: r.FirstPos, LastPos: r.LastPos, N: r.N})
		}
		item := ItemTelematics
		if r.Kind == KindPush {
			item = ItemPush
		}
		dk := fmt.Sprintf("%s|%s|%d|%d", item, r.ServicePeriod, r.ContainerID, r.ContainerVersion)
		if d, ok := details[dk]; ok {
			d.Quantity += r.N
		} else {
			details[dk] = &UsageDetail{InvoiceID: inv.ID, Item: item, ServicePeriod: r.ServicePeriod, ContainerID: r.ContainerID,
				ContainerVersion: r.ContainerVersion, Quantity: r.N}
			detailKeys = append(detailKeys, dk)
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if a.ServicePeriod != b.ServicePeriod {
			return a.ServicePeriod < b.ServicePeriod
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind // pull (telematics) before push
		}
		return a.FirstPos < b.FirstPos
	})
	var lines []Line
	for _, g := range groups {
		item := ItemTelematics
		if g.Kind == KindPush {
			item = ItemPush
		}
		if g.VersionID == nil {
			return 0, errs.New(errs.Conflict, "no_price_list", "no price list version is valid for %s deliveries of %s", item.ShortLabel(), g.ServicePeriod)
		}
		if g.LastPos-g.FirstPos+1 != g.N {
			return 0, errs.Wrap(fmt.Errorf("positions %d..%d hold %d records", g.FirstPos, g.LastPos, g.N), "usage positions not contiguous")
		}
		ver, _ := pl.ByID(*g.VersionID)
		if ver == nil {
			return 0, errs.Wrap(fmt.Errorf("version %d", *g.VersionID), "price list changed during the run")
		}
		slices, ok := Graduate(ver.Tiers(item), g.FirstPos-1, g.N)
		if !ok {
			return 0, errs.New(errs.Conflict, "price_list_incomplete", "the price list valid from %s has no price for every %s unit",
				ver.ValidFrom.In(s.loc()).Format("2006-01-02"), item.ShortLabel())
		}
		sp, _ := ParsePeriod(g.ServicePeriod, s.loc())
		for _, sl := range slices {
			from, to, vid := sl.From, sl.To, ver.ID
			lines = append(lines, Line{Item: item, ServicePeriod: g.ServicePeriod, VersionID: &vid, TierFrom: &from, TierTo: &to,
				Description: usageDescription(item, sp, sl, ver, s.loc()),
				Quantity:    decimal.NewFromInt(sl.Quantity), UnitCode: "C62", UnitPrice: sl.UnitPrice, NetAmount: sl.Amount()})
		}
	}
	if len(detailKeys) > 0 {
		sort.Strings(detailKeys)
		out := make([]UsageDetail, 0, len(detailKeys))
		for _, k := range detailKeys {
			out = append(out, *details[k])
		}
		if err := tx.Create(&out).Error; err != nil {
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
func saveTotals(tx *gorm.DB, inv *Invoice) error {
	party := inv.Buyer()
	tc, err := TaxFor(party)
	if err != nil {
		tc = TaxCase{} // finalization will refuse and say why
	}
	computeTotals(inv, tc)
	err = tx.Model(&Invoice{}).Where("id = ?", inv.ID).Updates(map[string]any{
		"tax_category": inv.TaxCategory, "tax_rate": inv.TaxRate, "tax_note": inv.TaxNote,
		"net_total": inv.NetTotal, "tax_total": inv.TaxTotal, "gross_total": inv.GrossTotal}).Error
	return dbError(err, "invoice totals")
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
