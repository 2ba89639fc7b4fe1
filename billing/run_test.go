package billing_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies/errs"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustRun(t *testing.T, s *billing.Service, period string) *billing.InvoiceRun {
	t.Helper()
	r, err := s.RunPeriod(billingtest.Ctx(), period, billing.RunOptions{Trigger: billing.TriggerTest})
	if err != nil {
		t.Fatalf("run %s: %v", period, err)
	}
	return r
}

func invoiceFor(t *testing.T, s *billing.Service, providerID int64, period string) *billing.Invoice {
	t.Helper()
	list, _, err := s.ListInvoices(context.Background(), billing.InvoiceFilter{ProviderID: providerID, Period: period, DocType: billing.DocInvoice})
	if err != nil {
		t.Fatal(err)
	}
	var live []billing.Invoice
	for _, inv := range list {
		if inv.Status != billing.StatusDiscarded {
			live = append(live, inv)
		}
	}
	if len(live) != 1 {
		t.Fatalf("provider %d period %s: %d live invoices, want 1", providerID, period, len(live))
	}
	inv, err := s.FindInvoice(context.Background(), live[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// lineSummary renders lines as "item month from-to qty@price=net".
func lineSummary(inv *billing.Invoice) []string {
	var out []string
	for _, l := range inv.Lines {
		r := ""
		if l.TierFrom != nil {
			r = fmt.Sprintf(" %d-%d", *l.TierFrom, *l.TierTo)
		}
		out = append(out, fmt.Sprintf("%s %s%s %s@%s=%s", l.Item, l.ServicePeriod, r, l.Quantity, l.UnitPrice.String(), l.NetAmount.StringFixed(2)))
	}
	return out
}

func wantLines(t *testing.T, inv *billing.Invoice, want ...string) {
	t.Helper()
	got := lineSummary(inv)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("invoice %d lines:\n%s\nwant:\n%s", inv.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func countInvoices(t *testing.T, gdb *gorm.DB) map[string]int {
	t.Helper()
	var rows []struct {
		ProviderID int64
		Period     string
		N          int
	}
	gdb.Raw(`SELECT provider_id, period, count(*) AS n FROM invoices WHERE doc_type = 'invoice' AND status <> 'discarded'
		GROUP BY 1, 2`).Scan(&rows)
	out := map[string]int{}
	for _, r := range rows {
		out[fmt.Sprintf("%d/%s", r.ProviderID, r.Period)] = r.N
	}
	return out
}

// Graduated tiers over the month, pushes, one draft per provider, VAT,
// nothing for providers without billable use.
func TestRunCreatesDraftsWithGraduatedTiers(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	dir := billingtest.NewDirectory(billingtest.German(1), billingtest.Austrian(2), billingtest.German(3))
	s := billingtest.MustSetup(t, gdb, dir)
	oct := utc("2026-10-01T08:00:00Z")
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, oct, time.Minute, 10_050, "p1")
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPush, oct, time.Hour, 3, "p1push")
	billingtest.MustDeliveries(t, gdb, 2, billing.KindPull, oct, time.Hour, 7, "p2")
	// provider 3 used nothing in October; a November delivery is not October's.
	billingtest.MustDeliveries(t, gdb, 3, billing.KindPull, utc("2026-11-02T08:00:00Z"), time.Hour, 5, "p3")

	run := mustRun(t, s, "2026-10")
	// Provider 3 is looked at (it has deliveries) but gets no invoice.
	if run.Status != "succeeded" || run.InvoicesCreated != 2 || run.ProvidersTotal != 3 || run.ProvidersSkipped != 1 || run.RecordsBilled != 10_060 {
		t.Fatalf("run: %+v", run)
	}
	inv := invoiceFor(t, s, 1, "2026-10")
	wantLines(t, inv,
		"telematics 2026-10 1-10000 10000@0.02=200.00",
		"telematics 2026-10 10001-10050 50@0.015=0.75",
		"push 2026-10 1-3 3@0.01=0.03")
	if inv.NetTotal.String() != "200.78" || inv.TaxCategory != "S" || inv.TaxTotal.String() != "38.15" || inv.GrossTotal.String() != "238.93" {
		t.Fatalf("totals: net %s %s tax %s gross %s", inv.NetTotal, inv.TaxCategory, inv.TaxTotal, inv.GrossTotal)
	}
	if !run.NetTotal.Equal(decimal.RequireFromString("200.92")) { // 200.78 + 7 x 0.02
		t.Fatalf("run net %s", run.NetTotal)
	}
	at := invoiceFor(t, s, 2, "2026-10")
	if at.TaxCategory != "AE" || !at.TaxTotal.IsZero() || at.TaxNote != billing.ReverseChargeNote {
		t.Fatalf("reverse charge: %s %s %q", at.TaxCategory, at.TaxTotal, at.TaxNote)
	}
	if n := countInvoices(t, gdb); len(n) != 2 {
		t.Fatalf("invoices: %v (provider 3 has nothing to bill for October)", n)
	}
	// Per-container breakdown of the usage.
	det, err := s.UsageDetails(context.Background(), inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, d := range det {
		if d.Item == billing.ItemTelematics {
			sum += d.Quantity
		}
	}
	if len(det) != 4 || sum != 10_050 { // containers 10 and 11, for pulls and pushes
		t.Fatalf("details: %+v", det)
	}
}

// Re-running a period, and two runs started at the same moment, leave one
// invoice per provider and period.
func TestRunIsIdempotentAndConcurrentRunsAgree(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	dir := billingtest.NewDirectory()
	for id := int64(1); id <= 6; id++ {
		dir.Put(billingtest.German(id))
	}
	s := billingtest.MustSetup(t, gdb, dir)
	for id := int64(1); id <= 6; id++ {
		billingtest.MustDeliveries(t, gdb, id, billing.KindPull, utc("2026-10-03T10:00:00Z"), time.Minute, int(20*id), fmt.Sprint("r", id))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s2 := &billing.Service{DB: gdb, Directory: dir, Location: s.Location}
			_, err := s2.RunPeriod(billingtest.Ctx(), "2026-10", billing.RunOptions{Trigger: billing.TriggerTest})
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errs.Is(err, "run_in_progress") {
			t.Fatalf("concurrent run: %v", err)
		}
	}
	again := mustRun(t, s, "2026-10")
	if again.InvoicesCreated != 0 || again.Status != "succeeded" {
		t.Fatalf("re-run created %d", again.InvoicesCreated)
	}
	n := countInvoices(t, gdb)
	if len(n) != 6 {
		t.Fatalf("invoices: %v", n)
	}
	for k, v := range n {
		if v != 1 {
			t.Fatalf("%s has %d invoices", k, v)
		}
	}
	var unbilled int64
	gdb.Raw(`SELECT count(*) FROM delivery_ledger l WHERE NOT EXISTS (SELECT 1 FROM ledger_claims e
		WHERE e.provider_id = l.provider_id AND e.invoice_id IS NOT NULL AND l.id <= e.high_id AND l.delivered_at < e.ends_at)`).Scan(&unbilled)
	if unbilled != 0 {
		t.Fatalf("%d records left unbilled", unbilled)
	}
}

// Without the run's period lock the database alone keeps one invoice per
// provider and period: concurrent provider transactions collide on the
// provider lock and the unique index, the losers skip.
func TestConcurrentProviderTransactionsMakeOneInvoice(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	dir := billingtest.NewDirectory(billingtest.German(7))
	s := billingtest.MustSetup(t, gdb, dir)
	billingtest.MustDeliveries(t, gdb, 7, billing.KindPull, utc("2026-10-05T10:00:00Z"), time.Second, 500, "c")
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, skipped := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.InvoiceProvider(billingtest.Ctx(), 7, "2026-10")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, billing.ErrSkip):
				skipped++
			default:
				t.Errorf("provider tx: %v", err)
			}
		}()
	}
	wg.Wait()
	if created != 1 || skipped != 7 {
		t.Fatalf("created %d skipped %d", created, skipped)
	}
	inv := invoiceFor(t, s, 7, "2026-10")
	wantLines(t, inv, "telematics 2026-10 1-500 500@0.02=10.00")
}

type invoiceShape struct {
	Provider int64
	Period   string
	Lines    string
	Net, Tax string
}

func shapes(t *testing.T, s *billing.Service) []invoiceShape {
	t.Helper()
	list, _, err := s.ListInvoices(context.Background(), billing.InvoiceFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []invoiceShape
	for _, i := range list {
		inv, _ := s.FindInvoice(context.Background(), i.ID)
		out = append(out, invoiceShape{inv.ProviderID, inv.Period, strings.Join(lineSummary(inv), "; "), inv.NetTotal.String(), inv.TaxTotal.String()})
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// A run that dies midway (a provider's transaction fails at its last step,
// another is cut off by cancellation) leaves no partial invoice; running it
// again gives exactly what an uninterrupted run gives.
func TestRunIsCrashSafe(t *testing.T) {
	t.Parallel()
	seed := func(gdb *gorm.DB) *billing.Service {
		dir := billingtest.NewDirectory()
		for id := int64(1); id <= 5; id++ {
			dir.Put(billingtest.German(id))
		}
		s := billingtest.MustSetup(t, gdb, dir)
		for id := int64(1); id <= 5; id++ {
			billingtest.MustDeliveries(t, gdb, id, billing.KindPull, utc("2026-10-10T10:00:00Z"), time.Minute, int(300*id), fmt.Sprint("k", id))
			billingtest.MustDeliveries(t, gdb, id, billing.KindPush, utc("2026-10-11T10:00:00Z"), time.Minute, int(id), fmt.Sprint("kp", id))
		}
		ctx := billingtest.Ctx()
		if err := gdb.Transaction(func(tx *gorm.DB) error {
			return billing.RecordSupportItem(ctx, tx, billing.SupportItem{ProviderID: 3, TicketID: 42, TicketRef: "T-42", Kind: billing.SupportTime,
				Priority: "P2", Minutes: 35, OccurredAt: utc("2026-10-20T10:00:00Z"), SourceKey: "time:1"})
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	refDB, crashDB := dbtest.New(t), dbtest.New(t)
	ref := seed(refDB)
	mustRun(t, ref, "2026-10")

	s := seed(crashDB)
	billing.SetBeforeCommit(s, func(pid int64) error {
		if pid == 3 {
			return errors.New("simulated crash before commit")
		}
		return nil
	})
	r, err := s.RunPeriod(billingtest.Ctx(), "2026-10", billing.RunOptions{Trigger: billing.TriggerTest})
	if err == nil || r.Status != "failed" || r.ProvidersFailed != 1 || r.InvoicesCreated != 4 {
		t.Fatalf("crashing run: %v %+v", err, r)
	}
	var claimed int64
	crashDB.Raw(`SELECT count(*) FROM ledger_claims WHERE provider_id = 3`).Scan(&claimed)
	var items int64
	crashDB.Raw(`SELECT count(*) FROM billing_support_items WHERE invoice_id IS NOT NULL`).Scan(&items)
	if claimed != 0 || items != 0 {
		t.Fatalf("failed provider left %d claimed records, %d support items", claimed, items)
	}
	// A second attempt is shut down while provider 3 commits: interrupted.
	shutdown, cancel := context.WithCancel(context.Background())
	defer cancel()
	billing.SetBeforeCommit(s, func(int64) error { cancel(); time.Sleep(50 * time.Millisecond); return nil })
	h, err := s.StartRun(billingtest.Ctx(), shutdown, "2026-10", billing.RunOptions{Trigger: billing.TriggerTest})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err == nil {
		t.Fatal("interrupted run reported success")
	}
	if r, _ := s.FindRun(context.Background(), h.RunID); r.Status != "interrupted" {
		t.Fatalf("run status %s", r.Status)
	}
	billing.SetBeforeCommit(s, nil)
	// And once more, to the end.
	mustRun(t, s, "2026-10")
	got, want := shapes(t, s), shapes(t, ref)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after crash and re-run:\n%v\nuninterrupted:\n%v", got, want)
	}
	rep, err := s.Reconcile(context.Background(), "2026-10")
	if err != nil || !rep.OK() {
		t.Fatalf("reconcile: %v %v", err, rep.Differences)
	}
}

// The month boundaries are midnight in Berlin, DST nights included: both
// 02:30 of 25 October 2026 (CEST, then CET) belong to October.
func TestRunMonthBoundariesAcrossDST(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	at := map[string][]string{
		"2026-02": {"2026-02-28T22:59:59Z"},
		"2026-03": {"2026-02-28T23:00:00Z", "2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-03-31T21:59:59.999999Z"},
		"2026-04": {"2026-03-31T22:00:00Z"},
		"2026-09": {"2026-09-30T21:59:59Z"},
		"2026-10": {"2026-09-30T22:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-31T22:59:59Z"},
		"2026-11": {"2026-10-31T23:00:00Z"},
	}
	i := 0
	for _, times := range at {
		for _, ts := range times {
			i++
			billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 1, At: utc(ts), RequestID: fmt.Sprint("dst-", i)})
		}
	}
	for _, p := range []string{"2026-02", "2026-03", "2026-04", "2026-09", "2026-10"} {
		mustRun(t, s, p)
		inv := invoiceFor(t, s, 1, p)
		n := len(at[p])
		wantLines(t, inv, fmt.Sprintf("telematics %s 1-%d %d@0.02=%s", p, n, n, decimal.NewFromInt(int64(n)).Mul(decimal.RequireFromString("0.02")).StringFixed(2)))
	}
	rep, err := s.Reconcile(context.Background(), "2026-10")
	if err != nil || !rep.OK() || rep.Records != 4 {
		t.Fatalf("reconcile: %v %+v", err, rep)
	}
	var pending int64
	gdb.Raw(`SELECT count(*) FROM delivery_ledger l WHERE NOT EXISTS (SELECT 1 FROM ledger_claims e
		WHERE e.provider_id = l.provider_id AND e.invoice_id IS NOT NULL AND l.id <= e.high_id AND l.delivered_at < e.ends_at)`).Scan(&pending)
	if pending != 1 {
		t.Fatalf("the November delivery must stay unbilled, %d pending", pending)
	}
}

// A version change mid-month: each unit is priced by the version valid
// when it was delivered, and the tiers count over the whole month.
func TestRunPricesByVersionValidAtDelivery(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	loc := s.Location
	// Announce a version for 15 October 2026 as finance would have on 1 October.
	early := &billing.Service{DB: gdb, Location: loc, Now: func() time.Time { return utc("2026-10-01T08:00:00Z") }}
	next := billing.DefaultPrices(time.Date(2026, 10, 15, 0, 0, 0, 0, loc))
	next.Telematics = []billing.Tier{{From: 1, UnitPrice: decimal.RequireFromString("0.0300")}, {From: 10_001, UnitPrice: decimal.RequireFromString("0.0250")}}
	if _, err := early.CreateVersion(billingtest.Ctx(), next); err != nil {
		t.Fatal(err)
	}
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-01T08:00:00Z"), time.Second, 9_000, "a") // old list
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-20T08:00:00Z"), time.Second, 2_000, "b") // new list
	mustRun(t, s, "2026-10")
	wantLines(t, invoiceFor(t, s, 1, "2026-10"),
		"telematics 2026-10 1-9000 9000@0.02=180.00",
		"telematics 2026-10 9001-10000 1000@0.03=30.00",
		"telematics 2026-10 10001-11000 1000@0.025=25.00")
}

// Exactly once: a record that arrives after its month's invoice was
// finalized is billed on the next invoice, labelled with its own month and
// continuing that month's count; every record sits in exactly one line.
func TestLateRecordGoesOnNextInvoice(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-01T08:00:00Z"), time.Second, 10_000, "oct")
	mustRun(t, s, "2026-10")
	oct := invoiceFor(t, s, 1, "2026-10")
	if _, err := s.Finalize(billingtest.Ctx(), oct.ID); err != nil {
		t.Fatal(err)
	}
	// The ingest was slow: an October read is recorded in November.
	billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 1, At: utc("2026-10-31T20:00:00Z"), RequestID: "late-1"})
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-11-02T08:00:00Z"), time.Second, 4, "nov")
	// Re-running October changes nothing: its invoice exists.
	if r := mustRun(t, s, "2026-10"); r.InvoicesCreated != 0 {
		t.Fatalf("re-run of October created %d", r.InvoicesCreated)
	}
	mustRun(t, s, "2026-11")
	nov := invoiceFor(t, s, 1, "2026-11")
	wantLines(t, nov,
		"telematics 2026-10 10001-10001 1@0.015=0.02",
		"telematics 2026-11 1-4 4@0.02=0.08")
	if !strings.Contains(nov.Lines[0].Description, "October 2026") {
		t.Fatalf("late line must name its month: %q", nov.Lines[0].Description)
	}
	// Every billable record is in exactly one line of exactly one invoice:
	// the lines' record pages add up to their quantities, and the two
	// invoices' records to the whole ledger.
	var all, seen int64
	gdb.Raw(`SELECT count(*) FROM delivery_ledger`).Scan(&all)
	for _, inv := range []*billing.Invoice{oct, nov} {
		_, total, err := s.LedgerPage(context.Background(), inv.ID, 0, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		seen += total
		for _, l := range inv.Lines {
			recs, n, err := s.LedgerPage(context.Background(), inv.ID, l.ID, 0, 500)
			if err != nil || !l.Quantity.Equal(decimal.NewFromInt(n)) {
				t.Fatalf("line %d: %d records for quantity %s (%v)", l.Position, n, l.Quantity, err)
			}
			if len(recs) > 0 && (*recs[0].MonthPosition != *l.TierFrom || *recs[0].ServicePeriod != l.ServicePeriod) {
				t.Fatalf("line %d starts at %d %s", l.Position, *recs[0].MonthPosition, *recs[0].ServicePeriod)
			}
		}
	}
	if seen != all {
		t.Fatalf("invoices hold %d of %d records", seen, all)
	}
	for _, p := range []string{"2026-10", "2026-11"} {
		rep, err := s.Reconcile(context.Background(), p)
		if err != nil || !rep.OK() {
			t.Fatalf("reconcile %s: %v %v", p, err, rep.Differences)
		}
	}
}

// Support: case fee by priority once per ticket, time summed per ticket and
// charged per started 15 minutes, each item exactly once; a reopened case
// bills only the time booked anew.
func TestSupportItemsAreBilledOnce(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.Austrian(5)))
	ctx := billingtest.Ctx()
	rec := func(it billing.SupportItem) {
		t.Helper()
		it.ProviderID = 5
		if err := gdb.Transaction(func(tx *gorm.DB) error { return billing.RecordSupportItem(ctx, tx, it) }); err != nil {
			t.Fatal(err)
		}
	}
	rec(billing.SupportItem{TicketID: 9, TicketRef: "T-9", Kind: billing.SupportCase, Priority: "P2", OccurredAt: utc("2026-10-05T09:00:00Z"), SourceKey: "case:9"})
	rec(billing.SupportItem{TicketID: 9, TicketRef: "T-9", Kind: billing.SupportTime, Priority: "P2", Minutes: 20, OccurredAt: utc("2026-10-05T10:00:00Z"), SourceKey: "te:1"})
	rec(billing.SupportItem{TicketID: 9, TicketRef: "T-9", Kind: billing.SupportTime, Priority: "P2", Minutes: 10, OccurredAt: utc("2026-10-06T10:00:00Z"), SourceKey: "te:2"})
	rec(billing.SupportItem{TicketID: 9, TicketRef: "T-9", Kind: billing.SupportTime, Priority: "P2", Minutes: 10, OccurredAt: utc("2026-10-06T10:00:00Z"), SourceKey: "te:2"}) // retried: ignored
	rec(billing.SupportItem{TicketID: 9, TicketRef: "T-9", Kind: billing.SupportCase, Priority: "P2", OccurredAt: utc("2026-10-07T09:00:00Z"), SourceKey: "case:9:again"})      // one fee per ticket
	mustRun(t, s, "2026-10")
	wantLines(t, invoiceFor(t, s, 5, "2026-10"),
		"support_case 2026-10 1@90=90.00",
		"support_time 2026-10 2@27.5=55.00") // 30 min = 2 started blocks
	// Reopened in November: only the new time.
	rec(billing.SupportItem{TicketID: 9, TicketRef: "T-9", Kind: billing.SupportTime, Priority: "P2", Minutes: 5, OccurredAt: utc("2026-11-03T10:00:00Z"), SourceKey: "te:3"})
	mustRun(t, s, "2026-11")
	wantLines(t, invoiceFor(t, s, 5, "2026-11"), "support_time 2026-11 1@27.5=27.50")
	rep, err := s.Reconcile(context.Background(), "2026-10")
	if err != nil || !rep.OK() || rep.SupportItems != 3 {
		t.Fatalf("reconcile: %v %+v", err, rep)
	}
}
