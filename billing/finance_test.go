package billing_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// pdfText inflates a PDF's content streams (fpdf compresses them) so a test
// can look for the text drawn.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	var out strings.Builder
	for rest := pdf; ; {
		i := bytes.Index(rest, []byte("stream\n"))
		if i < 0 {
			break
		}
		rest = rest[i+len("stream\n"):]
		j := bytes.Index(rest, []byte("endstream"))
		if j < 0 {
			break
		}
		if zr, err := zlib.NewReader(bytes.NewReader(rest[:j])); err == nil {
			b, _ := io.ReadAll(zr)
			out.Write(b)
		}
		rest = rest[j:]
	}
	return strings.NewReplacer(`\(`, "(", `\)`, ")").Replace(out.String())
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// A payment that leaves money open makes an issued invoice "partially
// paid" (shown, filtered and exported so) while its stored status keeps
// the life cycle; the open amount is gross minus payments minus issued
// credit notes everywhere it is read.
func TestPartialPaymentShowsPartiallyPaidAndTheOpenAmount(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 5000, "d")
	mustRun(t, s, "2026-10")
	ctx := billingtest.Ctx()
	inv, err := s.Finalize(ctx, invoiceFor(t, s, 1, "2026-10").ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	// 5000 deliveries at 0.02 = 100.00 net, 19.00 VAT, 119.00 gross.
	if !inv.GrossTotal.Equal(dec("119.00")) {
		t.Fatalf("gross %s", inv.GrossTotal)
	}
	got, _ := s.FindInvoice(ctx, inv.ID)
	if got.DisplayStatus() != billing.StatusSent || got.PaymentStatus() != "unpaid" || !got.OpenAmount().Equal(dec("119.00")) {
		t.Fatalf("before payment: %s %s open %s", got.DisplayStatus(), got.PaymentStatus(), got.OpenAmount())
	}
	if _, err := s.BookPayment(ctx, inv.ID, billing.NewPayment{Amount: "50,00", ReceivedOn: "2027-01-10", Reference: "SEPA 1"}); err != nil {
		t.Fatal(err)
	}
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), inv.ID, billing.CreditRequest{Reason: "Duplicates", Amount: "10.00"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FindInvoice(ctx, inv.ID)
	// 119.00 - 50.00 paid - 11.90 credited (10.00 net + 19 %) = 57.10
	if got.Status != billing.StatusSent || got.DisplayStatus() != billing.StatusPartiallyPaid || got.PaymentStatus() != billing.StatusPartiallyPaid ||
		!got.Credited.Equal(dec("11.90")) || !got.OpenAmount().Equal(dec("57.10")) {
		t.Fatalf("after a partial payment and a credit: stored %s shown %s payment %s credited %s open %s",
			got.Status, got.DisplayStatus(), got.PaymentStatus(), got.Credited, got.OpenAmount())
	}
	list, _, err := s.ListInvoices(ctx, billing.InvoiceFilter{Status: billing.StatusPartiallyPaid})
	if err != nil || len(list) != 1 || list[0].ID != inv.ID || !list[0].OpenAmount().Equal(dec("57.10")) {
		t.Fatalf("filter partially paid: %v %+v", err, list)
	}
	if list, _, _ := s.ListInvoices(ctx, billing.InvoiceFilter{Status: billing.StatusSent, DocType: billing.DocInvoice}); len(list) != 0 {
		t.Fatalf("a partially paid invoice is not listed as merely sent: %d", len(list))
	}
	if list, _, _ := s.ListInvoices(ctx, billing.InvoiceFilter{Status: billing.StatusFinalized}); len(list) != 1 || !list[0].IsCreditNote() {
		t.Fatalf("finalized: the credit note only, got %d", len(list))
	}
	portal, err := s.ProviderInvoices(ctx, 1)
	if err != nil || len(portal) != 2 {
		t.Fatalf("provider invoices: %v %d", err, len(portal))
	}
	for _, d := range portal {
		if !d.IsCreditNote() && !d.OpenAmount().Equal(dec("57.10")) {
			t.Fatalf("portal open amount %s", d.OpenAmount())
		}
		if d.IsCreditNote() && (!d.SignedGross().Equal(dec("-11.90")) || d.PaymentStatus() != "") {
			t.Fatalf("credit note shown as %s (%q)", d.SignedGross(), d.PaymentStatus())
		}
	}

	// The accounting CSV says the same: status, credited, open; the credit note negative.
	out, err := s.ExportCSV(ctx, "2026-10", i18n.EN)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, r := range rows[1:] {
		switch r[col["type"]] {
		case "invoice":
			if r[col["status"]] != "partially_paid" || r[col["paid"]] != "50.00" || r[col["credited"]] != "11.90" || r[col["open"]] != "57.10" ||
				r[col["gross"]] != "119.00" {
				t.Errorf("invoice row %q", r)
			}
		case "credit_note":
			if r[col["net"]] != "-10.00" || r[col["vat"]] != "-1.90" || r[col["gross"]] != "-11.90" || r[col["open"]] != "" {
				t.Errorf("credit note row %q", r)
			}
		}
	}

	// The rest paid: paid, nothing open.
	if _, err := s.BookPayment(ctx, inv.ID, billing.NewPayment{Amount: "57.10", ReceivedOn: "2027-01-12"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FindInvoice(ctx, inv.ID)
	if got.Status != billing.StatusPaid || got.DisplayStatus() != billing.StatusPaid || got.PaymentStatus() != "paid" || !got.OpenAmount().IsZero() {
		t.Fatalf("paid: %s %s open %s", got.DisplayStatus(), got.PaymentStatus(), got.OpenAmount())
	}
}

// A manual line leaves a draft again: positions close up, totals follow,
// the history records it; usage lines and finalized invoices refuse.
func TestRemoveManualLineFromADraft(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 5000, "d")
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPush, utc("2026-10-03T07:00:00Z"), time.Minute, 10, "p")
	mustRun(t, s, "2026-10")
	ctx := billingtest.Ctx()
	draft := invoiceFor(t, s, 1, "2026-10")
	before := draft.NetTotal
	setup, err := s.AddManualLine(ctx, draft.ID, billing.ManualLine{Description: "Setup fee", Amount: "25.00", Reason: "onboarding"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddManualLine(ctx, draft.ID, billing.ManualLine{Description: "Goodwill", Amount: "-5.00", Reason: "late start"}); err != nil {
		t.Fatal(err)
	}
	usage := draft.Lines[0]
	if _, err := s.RemoveManualLine(ctx, draft.ID, usage.ID); !errs.Is(err, "line_not_manual") {
		t.Fatalf("removing a usage line: %v", err)
	}
	if _, err := s.RemoveManualLine(ctx, draft.ID, 999999); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("removing a line of another invoice: %v", err)
	}
	removed, err := s.RemoveManualLine(ctx, draft.ID, setup.ID)
	if err != nil || removed.Description != "Setup fee" {
		t.Fatalf("remove: %v %+v", err, removed)
	}
	got, _ := s.FindInvoice(ctx, draft.ID)
	if len(got.Lines) != len(draft.Lines)+1 {
		t.Fatalf("%d lines after removal, want %d", len(got.Lines), len(draft.Lines)+1)
	}
	for i, l := range got.Lines {
		if l.Position != i+1 || l.ID == setup.ID {
			t.Fatalf("lines after removal: %+v", got.Lines)
		}
	}
	if last := got.Lines[len(got.Lines)-1]; last.Description != "Goodwill" {
		t.Fatalf("the goodwill line moved up: %+v", last)
	}
	if want := before.Sub(dec("5.00")); !got.NetTotal.Equal(want) || !got.GrossTotal.Equal(got.NetTotal.Add(got.TaxTotal)) {
		t.Fatalf("net %s, want %s", got.NetTotal, want)
	}
	var summary string
	gdb.Raw(`SELECT summary FROM audit_entries WHERE action = 'invoice.remove_line' AND object_id = ?`, strconv.FormatInt(got.ID, 10)).Scan(&summary)
	if !strings.Contains(summary, `"Setup fee"`) || !strings.Contains(summary, "25.00 EUR") || !strings.Contains(summary, "onboarding") {
		t.Fatalf("audit: %q", summary)
	}
	fin, err := s.Finalize(ctx, draft.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveManualLine(ctx, fin.ID, got.Lines[len(got.Lines)-1].ID); !errs.Is(err, "invoice_not_draft") {
		t.Fatalf("removing from a finalized invoice: %v", err)
	}
}

// A draft's PDF preview looks like the document to come, marked as a draft
// and without a number; no number is taken and nothing is stored.
func TestDraftPDFPreview(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 1234, "d")
	mustRun(t, s, "2026-10")
	ctx := context.Background()
	draft := invoiceFor(t, s, 1, "2026-10")
	b, err := s.PreviewPDF(ctx, draft.ID)
	if err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("preview: %v", err)
	}
	text := pdfText(t, b)
	for _, want := range []string{"ENTWURF / DRAFT", "Vorschau / preview", "24,68", "Werkstatt"} {
		if !strings.Contains(text, want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	if strings.Contains(text, "CD-2027") || strings.Contains(text, "CD-2026") {
		t.Error("the preview carries a number")
	}
	var series, docs int64
	gdb.Raw(`SELECT count(*) FROM invoice_number_series`).Scan(&series)
	gdb.Raw(`SELECT count(*) FROM invoice_documents`).Scan(&docs)
	if series != 0 || docs != 0 {
		t.Fatalf("a preview took a number (%d series) or stored a document (%d)", series, docs)
	}
	fin, err := s.Finalize(billingtest.Ctx(), draft.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PreviewPDF(ctx, fin.ID); !errs.Is(err, "invoice_not_draft") {
		t.Fatalf("preview of a finalized invoice: %v", err)
	}
	final, _ := s.Document(ctx, fin.ID, "pdf")
	if ft := pdfText(t, final.Content); strings.Contains(ft, "ENTWURF") || !strings.Contains(ft, *fin.Number) {
		t.Fatal("the finalized PDF is marked as a draft or lacks its number")
	}
	// A credit note's draft has a preview too, with its heading.
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), fin.ID, billing.CreditRequest{Reason: "Duplicates", Amount: "5.50"})
	if err != nil {
		t.Fatal(err)
	}
	b, err = s.PreviewPDF(ctx, cn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdfText(t, b); !strings.Contains(text, "ENTWURF / DRAFT") || !strings.Contains(text, "Credit note for invoice "+*fin.Number) ||
		!strings.Contains(text, "-5,50") {
		t.Errorf("credit note preview: %s", text)
	}
}

// The credit note's PDF says in proper German and English which invoice it
// corrects, and prints its amounts negative like the lists and the CSV;
// its e-invoice keeps them positive (the EN 16931 test validates it).
func TestCreditNotePDFHeadingAndSign(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 1234, "d")
	mustRun(t, s, "2026-10")
	inv, err := s.Finalize(billingtest.Ctx(), invoiceFor(t, s, 1, "2026-10").ID)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), inv.ID, billing.CreditRequest{Reason: "Duplicate deliveries"})
	if err != nil {
		t.Fatal(err)
	}
	cnFinal, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, _ := s.Document(ctx, cnFinal.ID, "pdf")
	text := pdfText(t, d.Content)
	issued := inv.IssueDate.Format("02.01.2006")
	for _, want := range []string{"Rechnungskorrektur zu Rechnung " + *inv.Number + " vom " + issued, "Credit note for invoice " + *inv.Number + " of " + issued,
		"Zu Rechnung / For invoice", *cnFinal.Number, "-1.234", "-24,68", "-29,37"} {
		if !strings.Contains(text, want) {
			t.Errorf("credit note PDF lacks %q", want)
		}
	}
	if strings.Contains(text, "Korrigiert Rechnung") {
		t.Error(`the credit note PDF still says "Korrigiert Rechnung"`)
	}
	x, _ := s.Document(ctx, cnFinal.ID, "ubl")
	if !bytes.Contains(x.Content, []byte(`<cbc:PayableAmount currencyID="EUR">29.37</cbc:PayableAmount>`)) {
		t.Errorf("the e-invoice keeps the credit note positive:\n%s", x.Content)
	}
	// The invoice's PDF is unsigned.
	d, _ = s.Document(ctx, inv.ID, "pdf")
	if text := pdfText(t, d.Content); strings.Contains(text, "-24,68") || !strings.Contains(text, "24,68") {
		t.Error("the invoice's amounts are not positive")
	}
}

// Tier rows: each row's mistake is reported on that row's field, blank
// rows are skipped, and good rows become tiers.
func TestParseTierRows(t *testing.T) {
	t.Parallel()
	v := &errs.Validation{}
	tiers := billing.ParseTierRows(v, "telematics", []billing.TierRow{{From: "1", Price: "0,0200"}, {}, {From: "10.001", Price: "0.0150"},
		{From: "100001", Price: "0.0100"}})
	if v.Err() != nil || len(tiers) != 3 || tiers[1].From != 10001 || !tiers[1].UnitPrice.Equal(dec("0.015")) || !tiers[0].UnitPrice.Equal(dec("0.02")) {
		t.Fatalf("good rows: %v %+v", v.Err(), tiers)
	}
	v = &errs.Validation{}
	billing.ParseTierRows(v, "push", []billing.TierRow{{From: "5", Price: "0.01"}, {From: "3", Price: "x"}, {From: "abc", Price: "0.00001"},
		{From: "20", Price: ""}, {From: "", Price: "0.5"}, {From: "30", Price: "-1"}})
	fe := errs.FieldMap(v.Err())
	want := map[string]string{
		"push_from_0": "the first tier must start at unit 1", "push_from_1": "a tier starts above", "push_price_1": "a unit price is a number",
		"push_from_2": "whole number", "push_price_2": "a unit price is a number", "push_price_3": "give the unit price",
		"push_from_4": "give the first unit", "push_price_5": "a unit price is a number",
	}
	for f, msg := range want {
		if !strings.Contains(fe[f], msg) {
			t.Errorf("%s: %q, want %q", f, fe[f], msg)
		}
	}
	if _, ok := fe["push_price_0"]; ok || len(fe) != len(want) {
		t.Errorf("errors: %v", fe)
	}
	v = &errs.Validation{}
	billing.ParseTierRows(v, "push", []billing.TierRow{{}, {}})
	if !strings.Contains(errs.FieldMap(v.Err())["push"], "at least one tier") {
		t.Errorf("no rows: %v", v.Err())
	}
}

// The revenue report: invoiced vs paid per period, receivables per
// provider, overdue invoices by age, all after credit notes.
func TestRevenueReport(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1), billingtest.Austrian(2)))
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 5000, "d") // 100.00 net, 119.00 gross
	billingtest.MustDeliveries(t, gdb, 2, billing.KindPull, utc("2026-10-02T07:00:00Z"), time.Minute, 2500, "a") // 50.00 net, AE: 50.00 gross
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-11-02T07:00:00Z"), time.Minute, 1000, "n") // 20.00 net, 23.80 gross
	mustRun(t, s, "2026-10")
	mustRun(t, s, "2026-11")
	ctx := billingtest.Ctx()
	var ids []int64
	for _, k := range []struct {
		p      int64
		period string
	}{{1, "2026-10"}, {2, "2026-10"}, {1, "2026-11"}} {
		inv, err := s.Finalize(ctx, invoiceFor(t, s, k.p, k.period).ID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inv.ID)
	}
	if _, err := s.BookPayment(ctx, ids[0], billing.NewPayment{Amount: "19.00", ReceivedOn: "2027-01-10"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BookPayment(ctx, ids[2], billing.NewPayment{Amount: "23.80", ReceivedOn: "2027-01-10"}); err != nil {
		t.Fatal(err)
	}
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), ids[1], billing.CreditRequest{Reason: "Goodwill", Amount: "10.00"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID); err != nil {
		t.Fatal(err)
	}
	// 45 days after the due date (issue 2027-01-15 + 30 days = 2027-02-14).
	s.Now = func() time.Time { return time.Date(2027, 3, 31, 10, 0, 0, 0, time.UTC) }
	r, err := s.RevenueReport(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Periods) != 2 || r.Periods[0].Period != "2026-10" || r.Periods[1].Period != "2026-11" {
		t.Fatalf("periods %+v", r.Periods)
	}
	oct, nov := r.Periods[0], r.Periods[1]
	// October: 119.00 + 50.00 - 10.00 credited = 159.00 invoiced, 19.00 paid, 140.00 open; net 150 - 10.
	if oct.Count != 2 || !oct.Invoiced.Equal(dec("159")) || !oct.Paid.Equal(dec("19")) || !oct.Open.Equal(dec("140")) || !oct.Net.Equal(dec("140")) ||
		oct.PaidShare() != 12 {
		t.Fatalf("October %+v (share %d)", oct, oct.PaidShare())
	}
	if !nov.Invoiced.Equal(dec("23.80")) || !nov.Paid.Equal(dec("23.80")) || !nov.Open.IsZero() || nov.PaidShare() != 100 {
		t.Fatalf("November %+v", nov)
	}
	if !r.Invoiced.Equal(dec("182.80")) || !r.Paid.Equal(dec("42.80")) || !r.Open.Equal(dec("140")) || !r.OverdueOpen.Equal(dec("140")) {
		t.Fatalf("totals invoiced %s paid %s open %s overdue %s", r.Invoiced, r.Paid, r.Open, r.OverdueOpen)
	}
	if len(r.Overdue) != 2 || r.Overdue[0].DaysOverdue != 45 || r.Aging[1].Count != 2 || !r.Aging[1].Open.Equal(dec("140")) || r.Aging[0].Count != 0 {
		t.Fatalf("overdue %+v aging %+v", r.Overdue, r.Aging)
	}
	if len(r.Providers) != 2 || r.Providers[0].ProviderID != 1 || !r.Providers[0].Open.Equal(dec("100")) || !r.Providers[0].Overdue.Equal(dec("100")) ||
		!r.Providers[1].Invoiced.Equal(dec("40")) || !r.Providers[1].Open.Equal(dec("40")) {
		t.Fatalf("providers %+v", r.Providers)
	}
	if r.Bar(dec("159")) != 100 || r.Bar(dec("23.80")) != 15 {
		t.Fatalf("bars %d %d", r.Bar(dec("159")), r.Bar(dec("23.80")))
	}
}
