package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"cardata/app/db"
	"cardata/billing"
	"cardata/jobs"
)

// check reads the database and the clients' records and holds them to the
// invariants. The replicas are stopped by now, so nothing moves.
func (s *soak) check(ctx context.Context) (*report, error) {
	rep := &report{soak: s}
	add := func(inv invariant) { rep.invariants = append(rep.invariants, inv) }
	add(s.checkIngest(ctx))
	add(s.checkPulls(ctx))
	add(s.checkPushes(ctx, rep))
	add(s.checkTicks(ctx))
	add(s.checkEmails(ctx))
	for _, inv := range s.checkInvoices(ctx) {
		add(inv)
	}
	add(s.checkMemory(rep))
	add(s.checkStops())
	return rep, nil
}

// checkIngest: every batch answered 200 is stored in full: each accepted
// signal is in the history (same vehicle, reading time, key and value) and
// the latest value of its vehicle and key is at least as new (the same
// value when exactly as new).
func (s *soak) checkIngest(ctx context.Context) invariant {
	inv := invariant{Name: "ingest: every acknowledged signal stored (history and latest value)"}
	sigs := s.ingest.signals()
	inv.Checked = int64(len(sigs))
	var unresolved, noHistory, staleLatest int64
	err := db.WithPgx(ctx, s.gdb, func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE soak_acked (vin text, key text, value text, read_at timestamptz) ON COMMIT DROP`); err != nil {
			return err
		}
		rows := make([][]any, len(sigs))
		for i, sg := range sigs {
			at, err := time.Parse(time.RFC3339, sg.Timestamp)
			if err != nil {
				return fmt.Errorf("signal timestamp %q: %w", sg.Timestamp, err)
			}
			rows[i] = []any{sg.VIN, sg.Key, sg.Value, at}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"soak_acked"}, []string{"vin", "key", "value", "read_at"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		steps := []string{
			`CREATE TEMP TABLE soak_acked_ids ON COMMIT DROP AS
				SELECT v.id AS vehicle_id, k.id AS key_id, a.read_at, a.value
				FROM soak_acked a JOIN vehicles v ON v.vin = a.vin JOIN catalog_keys k ON k.key = a.key`,
			`ANALYZE soak_acked_ids`,
			// The history of the soak's days only (partitions by day of receipt).
			`CREATE TEMP TABLE soak_history ON COMMIT DROP AS
				SELECT vehicle_id, read_at, key_id, value FROM vehicle_readings WHERE received_at >= $1`,
			`ANALYZE soak_history`,
		}
		for _, q := range steps {
			var args []any
			if strings.Contains(q, "$1") {
				args = append(args, s.loadStart.Add(-time.Minute))
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM soak_acked) - (SELECT count(*) FROM soak_acked_ids)`).Scan(&unresolved); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM soak_acked_ids a WHERE NOT EXISTS (SELECT 1 FROM soak_history h
			WHERE h.vehicle_id = a.vehicle_id AND h.read_at = a.read_at AND h.key_id = a.key_id AND h.value = a.value)`).Scan(&noHistory); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM soak_acked_ids a LEFT JOIN vehicle_latest_values l
			ON l.vehicle_id = a.vehicle_id AND l.key_id = a.key_id
			WHERE l.vehicle_id IS NULL OR l.read_at < a.read_at OR (l.read_at = a.read_at AND l.value <> a.value)`).Scan(&staleLatest)
	})
	if err != nil {
		inv.Err = err.Error()
		return inv
	}
	inv.Lost = unresolved + noHistory + staleLatest
	sum := s.ingest.stats.summary(1)
	inv.Detail = fmt.Sprintf("%d batches acknowledged; missing from history %d, latest value older %d, unknown vehicle or key %d; %d batches not answered (not acknowledged, so not checked)",
		sum.OK, noHistory, staleLatest, unresolved, sum.NoAnswer+sum.ReplyErrs)
	return inv
}

// checkPulls: every provider API answer that carried data has exactly one
// ledger record, and every ledger record of the soak's reads an answer.
func (s *soak) checkPulls(ctx context.Context) invariant {
	inv := invariant{Name: "provider API: one ledger record per answer with data, and vice versa"}
	ledger, err := s.ledger().RequestIDs(ctx, billing.RequestIDFilter{ProviderID: s.w.providerID, Kind: billing.KindPull,
		ClientID: s.w.clientDBID, RecordedSince: s.loadStart.Add(-time.Minute)})
	if err != nil {
		inv.Err = err.Error()
		return inv
	}
	revokedVIN := map[string]time.Time{}
	for _, c := range s.w.consents {
		if t, ok := s.revoked[c.ID]; ok {
			revokedVIN[c.VIN] = t
		}
	}
	v := comparePulls(s.api.pulls(), ledger, revokedVIN)
	inv.Checked = int64(v.WithData + len(ledger))
	inv.Lost = int64(v.lost())
	inv.Detail = fmt.Sprintf("%d answers with data, %d ledger records; answer without record %d, record without answer %d "+
		"(of which %d within the %d reads no replica answered, %d unexplained), duplicates %d; data after a revocation %d, "+
		"reads refused after revocation %d", v.WithData, len(ledger), v.Missing, v.Orphans, v.Orphans-v.Unexplained, v.LostAnswers,
		v.Unexplained, v.Duplicates, v.AfterRevoke, v.DeniedRevoked)
	return inv
}

// checkPushes: every push event for a consent that stayed granted was
// delivered at least once, with one ledger record per successful event id,
// none after its consent was revoked.
func (s *soak) checkPushes(ctx context.Context, rep *report) invariant {
	inv := invariant{Name: "pushes: delivered at least once, one ledger record each, none after revocation"}
	var ds []pushDelivery
	err := s.gdb.WithContext(ctx).Raw(`SELECT e.id AS event_id, e.type, e.consent_id, e.keys_count, d.status, d.status_reason AS reason, e.created_at
		FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.endpoint_id = ?`, s.w.endpointID).Scan(&ds).Error
	if err != nil {
		inv.Err = err.Error()
		return inv
	}
	suffix := fmt.Sprintf(":%d", s.w.endpointID)
	recs, err := s.ledger().RequestIDs(ctx, billing.RequestIDFilter{ProviderID: s.w.providerID, Kind: billing.KindPush, Suffix: suffix})
	if err != nil {
		inv.Err = err.Error()
		return inv
	}
	ledger := map[string]int{}
	for _, r := range recs {
		ledger[strings.TrimSuffix(r, suffix)]++
	}
	receipts, badSig := s.hooks.snapshot()
	v := comparePushes(ds, receipts, ledger, s.revoked)
	first := map[string]time.Time{}
	for _, r := range receipts {
		if t, ok := first[r.EventID]; r.Status == 200 && (!ok || r.At.Before(t)) {
			first[r.EventID] = r.At
		}
	}
	for _, d := range ds {
		if t, ok := first[d.EventID]; ok && !d.CreatedAt.IsZero() {
			rep.pushDelays = append(rep.pushDelays, t.Sub(d.CreatedAt))
		}
	}
	inv.Checked = int64(v.Events)
	inv.Lost = int64(v.lost() + badSig)
	attempts := 0
	refused := 0
	for _, r := range receipts {
		attempts++
		if r.Status < 200 || r.Status >= 300 {
			refused++
		}
	}
	inv.Detail = fmt.Sprintf("%d events (%d with data, %d of consents that stayed granted), %d push attempts received (%d refused or held); "+
		"undelivered %d, ledger record missing %d, extra %d, acknowledged > %s after revocation %d (within it %d), bad signatures %d, unknown %d; "+
		"dropped at send after revocation %d, redelivered %d, acknowledged then dropped %d",
		v.Events, v.DataEvents, v.Kept, attempts, refused, v.Undelivered, v.LedgerMissing, v.LedgerExtra, revokeGrace, v.LateAfter,
		v.InFlight, badSig, v.Unknown, v.Dropped, v.Redelivered, v.AckedDropped)
	for _, p := range v.Problems {
		inv.Detail += "\n      " + p
	}
	return inv
}

// checkTicks: every tick of every scheduled job between the start of the
// load and the end of the drain has exactly one run.
func (s *soak) checkTicks(ctx context.Context) invariant {
	inv := invariant{Name: "jobs: every scheduled tick ran once"}
	loc := s.app.Cfg.BillingTimezone
	from, until := s.loadStart, s.drainEnd.Add(-10*time.Second)
	expected := map[string][]time.Time{}
	for _, j := range s.app.Jobs.Jobs() {
		if j.Spec == "" {
			continue
		}
		sched, err := jobs.ParseSpec(j.Spec, loc)
		if err != nil {
			inv.Err = err.Error()
			return inv
		}
		for t := sched.Next(from.In(loc)); !t.IsZero() && !t.After(until); t = sched.Next(t) {
			expected[j.Name] = append(expected[j.Name], t)
		}
	}
	var runs []tickRun
	err := s.gdb.WithContext(ctx).Raw(`SELECT job, scheduled_for, min(outcome) AS outcome, min(error) AS error, count(*) AS rows
		FROM job_runs WHERE scheduled_for IS NOT NULL AND scheduled_for > ? AND scheduled_for <= ?
		GROUP BY job, scheduled_for`, from, until).Scan(&runs).Error
	if err != nil {
		inv.Err = err.Error()
		return inv
	}
	v := compareTicks(expected, runs)
	inv.Checked = int64(v.Expected)
	inv.Lost = int64(v.lost())
	var oc []string
	for _, k := range []string{"succeeded", "skipped", "failed", "abandoned", "running"} {
		if n := v.Outcomes[k]; n > 0 {
			oc = append(oc, fmt.Sprintf("%s %d", k, n))
		}
	}
	inv.Detail = fmt.Sprintf("%d ticks due; %s; missing %d, twice %d, still running %d", v.Expected, strings.Join(oc, ", "),
		len(v.Missing), len(v.Twice), len(v.Running))
	for _, m := range v.Missing {
		inv.Detail += "\n      missing: " + m
	}
	for _, m := range append(v.Twice, v.Running...) {
		inv.Detail += "\n      not once: " + m
	}
	for _, m := range v.NotRunErr {
		inv.Detail += "\n      " + m
	}
	return inv
}

// checkEmails: no e-mail was sent twice, none marked sent was lost.
func (s *soak) checkEmails(ctx context.Context) invariant {
	inv := invariant{Name: "e-mail: every sent e-mail arrived exactly once"}
	var rows []emailRow
	if err := s.gdb.WithContext(ctx).Raw(`SELECT id, status FROM email_outbox`).Scan(&rows).Error; err != nil {
		inv.Err = err.Error()
		return inv
	}
	var ids []string
	for _, m := range s.smtp.Messages() {
		ids = append(ids, m.MessageID)
	}
	v := compareEmails(rows, ids)
	inv.Checked = int64(len(rows))
	inv.Lost = int64(v.lost())
	inv.Detail = fmt.Sprintf("%d in the outbox, %d sent, %d messages received; twice %d, marked sent but not received %d, received but not marked sent %d, failed %d, still pending %d",
		len(rows), v.Sent, v.Received, len(v.Twice), len(v.NotReceived), len(v.NotMarked), v.Failed, v.Pending)
	if len(v.Twice) > 0 {
		inv.Detail += fmt.Sprintf("\n      sent twice: outbox ids %v", v.Twice)
	}
	return inv
}

// checkInvoices: the month invoiced mid-soak is billed in full and once,
// reconcile finds no difference, the number series has no gap, and the
// audit chain is intact.
func (s *soak) checkInvoices(ctx context.Context) []invariant {
	p, err := billing.ParsePeriod(s.w.period, s.app.Cfg.BillingTimezone)
	once := invariant{Name: "invoices: every ledger record of " + s.w.period + " on exactly one invoice"}
	if err != nil {
		once.Err = err.Error()
		return []invariant{once}
	}
	type kindCount struct {
		ProviderID int64
		Kind       string
		Records    int64
		Billed     int64
		Uncovered  int64
	}
	var counts []kindCount
	// The ledger's side comes from billing (records and those on no live
	// invoice), the billed side from the invoices' usage details.
	cov, err := s.ledger().LedgerCoverage(ctx, p.Start, p.End)
	var billed []struct {
		ProviderID int64
		Kind       string
		Billed     int64
	}
	if err == nil {
		err = s.gdb.WithContext(ctx).Raw(`SELECT i.provider_id, CASE d.item WHEN 'push' THEN 'push' ELSE 'pull' END AS kind, sum(d.quantity) AS billed
			FROM invoice_usage_details d JOIN invoices i ON i.id = d.invoice_id
			WHERE d.service_period = ? AND i.doc_type = 'invoice' AND i.status <> 'discarded'
			GROUP BY 1, 2`, s.w.period).Scan(&billed).Error
	}
	if err != nil {
		once.Err = err.Error()
	}
	type pk struct {
		provider int64
		kind     string
	}
	at := map[pk]int{}
	for _, c := range cov {
		at[pk{c.ProviderID, c.Kind}] = len(counts)
		counts = append(counts, kindCount{ProviderID: c.ProviderID, Kind: c.Kind, Records: c.Records, Uncovered: c.Uncovered})
	}
	for _, b := range billed {
		i, ok := at[pk{b.ProviderID, b.Kind}]
		if !ok {
			i, at[pk{b.ProviderID, b.Kind}] = len(counts), len(counts)
			counts = append(counts, kindCount{ProviderID: b.ProviderID, Kind: b.Kind})
		}
		counts[i].Billed += b.Billed
	}
	var drafts int64
	s.gdb.WithContext(ctx).Raw(`SELECT count(*) FROM invoices WHERE period = ? AND doc_type = 'invoice' AND status = 'draft'`, s.w.period).Scan(&drafts)
	var diff []string
	for _, c := range counts {
		once.Checked += c.Records
		if c.Records != c.Billed || c.Uncovered > 0 {
			once.Lost += max(c.Records-c.Billed, c.Billed-c.Records, c.Uncovered)
			diff = append(diff, fmt.Sprintf("provider %d %s: %d records, %d billed, %d on no invoice", c.ProviderID, c.Kind, c.Records, c.Billed, c.Uncovered))
		}
	}
	providers := map[int64]bool{}
	for _, c := range counts {
		providers[c.ProviderID] = true
	}
	once.Detail = fmt.Sprintf("%d records of %d providers; %d drafts left unfinalized", once.Checked, len(providers), drafts)
	for _, d := range diff {
		once.Detail += "\n      " + d
	}

	rec := invariant{Name: "invoices: cardata invoice reconcile " + s.w.period + " clean", Checked: 1}
	if out, err := s.cli(ctx, "invoice", "reconcile", "--period", s.w.period); err != nil {
		rec.Lost, rec.Detail = 1, lastLines(out, 6)
	} else {
		rec.Detail = lastLines(out, 2)
	}

	gap := invariant{Name: "invoices: numbers gapless"}
	var numbers []string
	var series []struct {
		Prefix     string
		Year       int
		LastNumber int
	}
	if err := s.gdb.WithContext(ctx).Raw(`SELECT number FROM invoices WHERE number IS NOT NULL`).Scan(&numbers).Error; err != nil {
		gap.Err = err.Error()
	} else if err := s.gdb.WithContext(ctx).Raw(`SELECT prefix, year, last_number FROM invoice_number_series`).Scan(&series).Error; err != nil {
		gap.Err = err.Error()
	}
	sm := map[string]int{}
	for _, r := range series {
		sm[fmt.Sprintf("%s-%04d", r.Prefix, r.Year)] = r.LastNumber
	}
	bad := numberGaps(numbers, sm)
	gap.Checked, gap.Lost = int64(len(numbers)), int64(len(bad))
	gap.Detail = fmt.Sprintf("%d numbers in %d series", len(numbers), len(sm))
	for _, b := range bad {
		gap.Detail += "\n      " + b
	}

	audit := invariant{Name: "audit: cardata audit verify intact", Checked: 1}
	if out, err := s.cli(ctx, "audit", "verify"); err != nil {
		audit.Lost, audit.Detail = 1, lastLines(out, 3)
	} else {
		audit.Detail = lastLines(out, 1)
	}
	return []invariant{once, rec, gap, audit}
}

// memBound is the growth that counts as unbounded within one soak: a
// process whose resident memory more than doubles from its settled size
// (30 s after start) and by more than 150 MiB is leaking at this load.
const memBound = 150 << 20

func (s *soak) checkMemory(rep *report) invariant {
	inv := invariant{Name: "memory: no replica grew without bound"}
	for _, r := range s.reps {
		for _, l := range r.incarnations() {
			inv.Checked++
			var settled, last int64
			for _, sm := range l.samples {
				if settled == 0 && sm.at.Sub(l.started) >= 30*time.Second {
					settled = sm.rss
				}
				last = sm.rss
			}
			m := memLine{Replica: r.name, PID: l.pid, Lived: l.ended.Sub(l.started), Peak: l.peak, Settled: settled, Last: last, Killed: l.killed}
			if l.ended.IsZero() {
				m.Lived = time.Since(l.started)
			}
			if settled > 0 && last > 2*settled && last-settled > memBound {
				m.Unbounded = true
				inv.Lost++
			}
			rep.memory = append(rep.memory, m)
		}
	}
	inv.Detail = fmt.Sprintf("%d processes; bound: resident memory not above twice its size 30 s after start and +%d MiB", inv.Checked, memBound>>20)
	return inv
}

// checkStops: every replica stopped cleanly on SIGTERM at the end.
func (s *soak) checkStops() invariant {
	inv := invariant{Name: "shutdown: every replica stopped cleanly on SIGTERM"}
	var slow time.Duration
	for _, r := range s.reps {
		ls := r.incarnations()
		if len(ls) == 0 {
			continue
		}
		l := ls[len(ls)-1]
		inv.Checked++
		slow = max(slow, l.stopTook)
		if l.exitErr != "" {
			inv.Lost++
			inv.Detail += fmt.Sprintf("replica %s: %s; ", r.name, l.exitErr)
		}
	}
	inv.Detail += fmt.Sprintf("slowest stop %s", slow.Round(time.Millisecond))
	return inv
}

// ledger reads the delivery ledger through billing, which owns it.
func (s *soak) ledger() *billing.Service {
	return &billing.Service{DB: s.gdb, Location: s.app.Cfg.BillingTimezone}
}
