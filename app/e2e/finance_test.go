package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding"
	"cardata/policies"
)

// financeWorld is October 2026 billed for a German provider (5,000
// deliveries: 100.00 net, 119.00 gross) and an Austrian one (2,500: 50.00
// net, reverse charge), with two finance users and an auditor signed in.
type financeWorld struct {
	tt                 *apptest.T
	de, at             *onboarding.Registered
	deInv, atInv       *billing.Invoice // drafts, or finalized when asked
	fiona, frank, otto *apptest.Client
}

func newFinanceWorld(t *testing.T, finalize bool) *financeWorld {
	t.Helper()
	tt := apptest.New(t)
	ctx, bs := tt.Ctx, tt.App.Billing
	if _, err := bs.UpdateSeller(ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bs.EnsureInitialPriceList(ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	w := &financeWorld{tt: tt}
	w.de = mustActiveProvider(t, tt, "Werkstatt Süd AG", "DE", "DE123456788")
	w.at = mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU12345675")
	oct := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	billingtest.MustDeliveries(t, tt.DB, w.de.Provider.ID, billing.KindPull, oct, time.Minute, 5000, "fde")
	billingtest.MustDeliveries(t, tt.DB, w.at.Provider.ID, billing.KindPull, oct, time.Minute, 2500, "fat")
	if _, err := bs.RunPeriod(ctx, "2026-10", billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		id  int64
		out **billing.Invoice
	}{{w.de.Provider.ID, &w.deInv}, {w.at.Provider.ID, &w.atInv}} {
		list, _, err := bs.ListInvoices(ctx, billing.InvoiceFilter{ProviderID: p.id, Period: "2026-10", DocType: billing.DocInvoice})
		if err != nil || len(list) != 1 {
			t.Fatalf("invoice of provider %d: %v %d", p.id, err, len(list))
		}
		inv, err := bs.FindInvoice(ctx, list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if finalize {
			if inv, err = bs.Finalize(ctx, inv.ID); err != nil {
				t.Fatal(err)
			}
		}
		*p.out = inv
	}
	tt.MustCreateStaff(t, "fiona@fin.test", policies.RoleFinance)
	tt.MustCreateStaff(t, "frank@fin.test", policies.RoleFinance)
	tt.MustCreateStaff(t, "otto@fin.test", policies.RoleAuditor)
	w.fiona, w.frank, w.otto = tt.LoginStaff(t, "fiona@fin.test"), tt.LoginStaff(t, "frank@fin.test"), tt.LoginStaff(t, "otto@fin.test")
	return w
}

// section returns the element of body whose opening tag carries id (a
// table, a tbody) up to its closing tag.
func section(body, tag, id string) string {
	i := strings.Index(body, `<`+tag+` class="list" id="`+id+`"`)
	if i < 0 {
		i = strings.Index(body, `id="`+id+`"`)
	}
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</"+tag+">")
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j]
}

// rowOf is the table row of body that mentions s.
func rowOf(body, s string) string {
	for _, r := range strings.Split(body, "<tr") {
		if strings.Contains(r, s) {
			return r
		}
	}
	return ""
}

// A partial payment makes the invoice "partially paid" with its open
// amount on the staff list and page, in the portal, the CSV and the
// revenue figures; a credit note is negative in every list, page, PDF and
// CSV, and lowers the open amount.
func TestFinancePartialPaymentOpenAmountAndCreditNoteSigns(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, true)
	tt := w.tt
	path := fmt.Sprintf("/admin/billing/invoices/%d", w.deInv.ID)
	today := time.Now().In(tt.App.Cfg.BillingTimezone).Format("2006-01-02")

	if res := w.otto.PostForm(path+"/payments", url.Values{"amount": {"50,00"}, "received_on": {today}}); res.Status != http.StatusForbidden {
		t.Fatalf("auditor books a payment: %d", res.Status)
	}
	res := w.fiona.PostForm(path+"/payments", url.Values{"amount": {"50,00"}, "received_on": {today}, "reference": {"SEPA 4711"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("payment: %d %s", res.Status, res.Body)
	}
	page := w.fiona.Get(path)
	for _, want := range []string{"Payment of €50.00 booked; €69.00 is still open.", `data-status="partially_paid">partially paid<`,
		`id="open-amount"><strong>€69.00</strong>`, `id="paid-total">€50.00<`} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("invoice page after a partial payment lacks %q", want)
		}
	}
	list := w.fiona.Get("/admin/billing/invoices?status=partially_paid")
	row := rowOf(section(list.Body, "table", "invoices"), *w.deInv.Number)
	if list.Status != 200 || !strings.Contains(row, "partially paid") || !strings.Contains(row, "€69.00") ||
		strings.Contains(list.Body, *w.atInv.Number) || !strings.Contains(list.Body, `<option value="partially_paid" selected>partially paid</option>`) {
		t.Fatalf("partially paid filter: %d %q", list.Status, row)
	}
	if list := w.fiona.Get("/admin/billing/invoices?status=finalized"); strings.Contains(list.Body, *w.deInv.Number) || !strings.Contains(list.Body, *w.atInv.Number) {
		t.Fatal("the partially paid invoice is listed as finalized, or the unpaid one is not")
	}

	// A credit note of 10.00 net (11.90 gross): Fiona drafts, Frank issues.
	res = w.fiona.PostForm(path+"/credit-notes", url.Values{"credit_reason": {"Duplicate deliveries"}, "credit_amount": {"10,00"}})
	if res.Status != http.StatusSeeOther || !idInPath.MatchString(location(res)) {
		t.Fatalf("credit note: %d %s", res.Status, res.Body)
	}
	cnPath := location(res)
	if res := w.frank.PostForm(cnPath+"/finalize", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("issue: %d", res.Status)
	}
	cnPage := w.frank.Get(cnPath)
	cnNumber := regexp.MustCompile(`CN-\d{4}-\d{6}`).FindString(cnPage.Body)
	lines := section(cnPage.Body, "table", "lines")
	if cnNumber == "" || !strings.Contains(lines, "-€10.00") || !strings.Contains(lines, "-€1.90") || !strings.Contains(lines, "<strong>-€11.90</strong>") ||
		!strings.Contains(lines, ">-1<") {
		t.Fatalf("credit note page %s: %s", cnNumber, lines)
	}
	page = w.fiona.Get(path)
	if !strings.Contains(page.Body, `id="open-amount"><strong>€57.10</strong>`) || !strings.Contains(page.Body, "-€11.90") {
		t.Errorf("invoice page after the credit: open amount or credit")
	}
	list = w.fiona.Get("/admin/billing/invoices?period=2026-10")
	cnRow := rowOf(section(list.Body, "table", "invoices"), cnNumber)
	if !strings.Contains(cnRow, `class="credit-note"`) || !strings.Contains(cnRow, "-€10.00") || !strings.Contains(cnRow, "-€11.90") {
		t.Errorf("credit note row in the staff list: %q", cnRow)
	}
	if row := rowOf(section(list.Body, "table", "invoices"), *w.deInv.Number); !strings.Contains(row, "€57.10") {
		t.Errorf("invoice row after the credit: %q", row)
	}

	// German: the same figures the German way.
	w.fiona.SetCookie("cardata_lang", "de")
	list = w.fiona.Get("/admin/billing/invoices?period=2026-10")
	if !strings.Contains(list.Body, "teilweise bezahlt") || !strings.Contains(list.Body, "57,10\u00a0€") || !strings.Contains(list.Body, "-11,90\u00a0€") {
		t.Errorf("German invoice list lacks teilweise bezahlt / 57,10 € / -11,90 €")
	}
	w.fiona.SetCookie("cardata_lang", "en")

	// The CSV: the credit note negative, the invoice's status, credit and open amount.
	csvRes := w.fiona.Get("/admin/billing/export.csv?period=2026-10")
	rows, err := csv.NewReader(strings.NewReader(csvRes.Body)).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("csv: %v %s", err, csvRes.Body)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, r := range rows[1:] {
		switch r[col["number"]] {
		case cnNumber:
			if r[col["net"]] != "-10.00" || r[col["gross"]] != "-11.90" {
				t.Errorf("csv credit note %q", r)
			}
		case *w.deInv.Number:
			if r[col["status"]] != "partially_paid" || r[col["open"]] != "57.10" || r[col["credited"]] != "11.90" || r[col["paid"]] != "50.00" {
				t.Errorf("csv invoice %q", r)
			}
		}
	}
	// The PDF: negative too, under a proper heading.
	cnID := idInPath.FindStringSubmatch(cnPath)[1]
	pdf := w.otto.Get("/admin/billing/invoices/" + cnID + "/pdf")
	text := pdfText(t, []byte(pdf.Body))
	if pdf.Status != 200 || !strings.Contains(text, "-10,00") || !strings.Contains(text, "-11,90") ||
		!strings.Contains(text, "Rechnungskorrektur zu Rechnung "+*w.deInv.Number) || !strings.Contains(text, "Credit note for invoice "+*w.deInv.Number) {
		t.Errorf("credit note PDF: %d", pdf.Status)
	}

	// The portal: the provider sees the same.
	pc := loginProvider(t, tt, w.de.Admin.Email, providerPassword)
	portal := pc.Get("/portal/invoices")
	prow := rowOf(section(portal.Body, "table", "invoices"), *w.deInv.Number)
	crow := rowOf(section(portal.Body, "table", "invoices"), cnNumber)
	if portal.Status != 200 || !strings.Contains(prow, "partially paid") || !strings.Contains(prow, "€57.10") || !strings.Contains(prow, "€50.00") ||
		!strings.Contains(crow, "-€11.90") || !strings.Contains(portal.Body, "Open in total: €57.10") {
		t.Fatalf("portal: %d\n%s\n%s", portal.Status, prow, crow)
	}
}

// Finance removes a manual line from a draft: after the confirmation page,
// audited; usage lines and finalized invoices refuse; auditors may not.
func TestFinanceRemovesAManualDraftLine(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, false)
	path := fmt.Sprintf("/admin/billing/invoices/%d", w.deInv.ID)
	if res := w.fiona.PostForm(path+"/lines", url.Values{"description": {"Setup fee"}, "amount": {"25,00"}, "reason": {"onboarding workshop"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("add line: %d", res.Status)
	}
	inv, err := w.tt.App.Billing.FindInvoice(w.tt.Ctx, w.deInv.ID)
	if err != nil {
		t.Fatal(err)
	}
	manual := inv.Lines[len(inv.Lines)-1]
	usage := inv.Lines[0]
	del := fmt.Sprintf("%s/lines/%d/delete", path, manual.ID)
	page := w.fiona.Get(path)
	if !strings.Contains(page.Body, `action="`+del+`"`) || strings.Count(page.Body, "/delete\"") != 1 {
		t.Fatalf("only the manual line has a remove button")
	}
	if page := w.otto.Get(path); strings.Contains(page.Body, "/delete\"") {
		t.Fatal("the auditor is shown the remove button")
	}
	if res := w.otto.PostForm(del, nil); res.Status != http.StatusForbidden {
		t.Fatalf("auditor removes: %d", res.Status)
	}
	// A click asks first, naming the line and its amount.
	ask := w.fiona.PostForm(del, url.Values{"_confirm": {"ask"}})
	if ask.Status != 200 || !strings.Contains(ask.Body, fmt.Sprintf("Remove line %d “Setup fee” from draft #%d?", manual.Position, w.deInv.ID)) ||
		!strings.Contains(ask.Body, "€25.00 net") || !strings.Contains(ask.Body, `id="confirm-yes"`) {
		t.Fatalf("confirmation: %d %s", ask.Status, ask.Body)
	}
	if inv, _ := w.tt.App.Billing.FindInvoice(w.tt.Ctx, w.deInv.ID); len(inv.Lines) != len(w.deInv.Lines)+1 {
		t.Fatal("asking removed the line")
	}
	if res := w.fiona.PostForm(del, nil); res.Status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", res.Status, res.Body)
	}
	page = w.fiona.Get(path)
	if lines := section(page.Body, "table", "lines"); strings.Contains(lines, "Setup fee") {
		t.Fatal("the line is still shown")
	}
	if !strings.Contains(page.Body, fmt.Sprintf("Line %d “Setup fee” was removed.", manual.Position)) || !strings.Contains(page.Body, "removed manual line") {
		t.Fatal("no flash or history entry for the removal")
	}
	if got, _ := w.tt.App.Billing.FindInvoice(w.tt.Ctx, w.deInv.ID); !got.NetTotal.Equal(w.deInv.NetTotal) || len(got.Lines) != len(w.deInv.Lines) {
		t.Fatalf("after removal: net %s (was %s), %d lines", got.NetTotal, w.deInv.NetTotal, len(got.Lines))
	}
	// A usage line cannot go: the page says why.
	if res := w.fiona.PostForm(fmt.Sprintf("%s/lines/%d/delete", path, usage.ID), nil); res.Status != http.StatusSeeOther {
		t.Fatalf("usage line: %d", res.Status)
	}
	if page := w.fiona.Get(path); !strings.Contains(page.Body, "only manual lines can be removed") {
		t.Fatal("no refusal for the usage line")
	}
	if res := w.fiona.PostForm(fmt.Sprintf("%s/lines/%d/delete", path, 99999999), nil); res.Status != http.StatusNotFound {
		t.Fatalf("unknown line: %d", res.Status)
	}
	// Finalized: no more removals.
	if res := w.fiona.PostForm(path+"/lines", url.Values{"description": {"Goodwill"}, "amount": {"-5.00"}, "reason": {"late start"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("add line: %d", res.Status)
	}
	inv, _ = w.tt.App.Billing.FindInvoice(w.tt.Ctx, w.deInv.ID)
	goodwill := inv.Lines[len(inv.Lines)-1]
	if res := w.fiona.PostForm(path+"/finalize", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("finalize: %d", res.Status)
	}
	if page := w.fiona.Get(path); strings.Contains(page.Body, "/delete\"") {
		t.Fatal("a finalized invoice offers to remove lines")
	}
	w.fiona.PostForm(fmt.Sprintf("%s/lines/%d/delete", path, goodwill.ID), nil)
	if inv, _ := w.tt.App.Billing.FindInvoice(w.tt.Ctx, w.deInv.ID); len(inv.Lines) != len(w.deInv.Lines)+1 {
		t.Fatal("a line was removed from a finalized invoice")
	}
}

// A draft's PDF preview: linked from the draft, clearly a draft without a
// number; no number is taken; finalized invoices have their document.
func TestFinanceDraftPDFPreview(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, false)
	w.tt.MustCreateStaff(t, "sam@fin.test", policies.RoleSupport)
	sam := w.tt.LoginStaff(t, "sam@fin.test")
	path := fmt.Sprintf("/admin/billing/invoices/%d", w.deInv.ID)
	if page := w.fiona.Get(path); !strings.Contains(page.Body, `href="`+path+`/preview"`) || !strings.Contains(page.Body, "PDF preview (draft, no number)") {
		t.Fatal("the draft page does not link its preview")
	}
	for _, c := range []*apptest.Client{w.fiona, w.otto} {
		res := c.Get(path + "/preview")
		text := pdfText(t, []byte(res.Body))
		if res.Status != 200 || res.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "inline") ||
			!strings.Contains(text, "ENTWURF / DRAFT") || !strings.Contains(text, "Vorschau / preview") || strings.Contains(text, "CD-20") {
			t.Fatalf("preview: %d %s %s", res.Status, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
		}
	}
	if res := sam.Get(path + "/preview"); res.Status != http.StatusForbidden {
		t.Fatalf("support previews: %d", res.Status)
	}
	var series int64
	w.tt.DB.Raw(`SELECT count(*) FROM invoice_number_series`).Scan(&series)
	if series != 0 {
		t.Fatal("a preview took a number")
	}
	if res := w.fiona.PostForm(path+"/finalize", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("finalize: %d", res.Status)
	}
	if page := w.fiona.Get(path); strings.Contains(page.Body, path+"/preview") {
		t.Fatal("a finalized invoice links a preview")
	}
	if res := w.fiona.Get(path + "/preview"); res.Status != http.StatusConflict {
		t.Fatalf("preview of a finalized invoice: %d", res.Status)
	}
}

// The revenue page: invoiced vs paid per period, overdue receivables by
// age, per provider; money in the reader's language.
func TestFinanceRevenuePage(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, true)
	bs := w.tt.App.Billing
	if _, err := bs.BookPayment(w.tt.Ctx, w.deInv.ID, billing.NewPayment{Amount: "50.00",
		ReceivedOn: time.Now().In(w.tt.App.Cfg.BillingTimezone).Format("2006-01-02")}); err != nil {
		t.Fatal(err)
	}
	// 45 days past the due date (payment terms 30 days).
	later := time.Now().AddDate(0, 0, 75)
	bs.Now = func() time.Time { return later }
	page := w.fiona.Get("/admin/billing/revenue")
	if page.Status != 200 {
		t.Fatalf("revenue: %d", page.Status)
	}
	period := rowOf(section(page.Body, "table", "revenue"), `data-period="2026-10"`)
	for _, want := range []string{"October 2026", "€169.00", "€50.00", "€119.00", "invoiced €169.00, paid €50.00 (30 %)"} {
		if !strings.Contains(period, want) {
			t.Errorf("period row lacks %q: %s", want, period)
		}
	}
	overdue := section(page.Body, "table", "overdue")
	if !strings.Contains(overdue, *w.deInv.Number) || !strings.Contains(overdue, *w.atInv.Number) || !strings.Contains(rowOf(overdue, *w.deInv.Number), "€69.00") {
		t.Errorf("overdue table: %s", overdue)
	}
	if aging := rowOf(section(page.Body, "table", "aging"), "31–60 days"); !strings.Contains(aging, ">2<") || !strings.Contains(aging, "€119.00") {
		t.Errorf("aging: %s", aging)
	}
	providers := section(page.Body, "table", "providers")
	if row := rowOf(providers, "Werkstatt Süd AG"); !strings.Contains(row, "€69.00") || !strings.Contains(row, "€119.00") {
		t.Errorf("provider row: %s", row)
	}
	if !strings.Contains(page.Body, `id="total-overdue"><a href="/admin/billing/invoices?overdue=1">€119.00</a>`) {
		t.Error("overdue total")
	}
	w.fiona.SetCookie("cardata_lang", "de")
	de := w.fiona.Get("/admin/billing/revenue")
	for _, want := range []string{"Umsatz und Forderungen", "169,00\u00a0€", "69,00\u00a0€", "Oktober 2026", "31–60 Tage", "Forderungen je Anbieter"} {
		if !strings.Contains(de.Body, want) {
			t.Errorf("German revenue page lacks %q", want)
		}
	}
}

// The demo has a second finance user, so a credit note Fiona drafts can be
// issued with demo logins.
func TestDemoSecondFinanceUserIssuesACreditNote(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	var id int64
	tt.DB.Raw(`SELECT id FROM invoices WHERE doc_type = 'invoice' AND status IN ('sent','finalized') ORDER BY id LIMIT 1`).Scan(&id)
	if id == 0 {
		t.Fatal("the demo has no finalized invoice")
	}
	login := func(email string) *apptest.Client {
		c := tt.Client(t)
		if res := c.PostForm("/admin/login", url.Values{"email": {email}, "password": {demo.Password}}); res.Status != http.StatusSeeOther {
			t.Fatalf("login %s: %d", email, res.Status)
		}
		return c
	}
	fiona, felix := login("finance@demo.local"), login("finance2@demo.local")
	res := fiona.PostForm(fmt.Sprintf("/admin/billing/invoices/%d/credit-notes", id), url.Values{"credit_reason": {"Goodwill"}, "credit_amount": {"1.00"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("draft: %d", res.Status)
	}
	cn := location(res)
	if res := felix.PostForm(cn+"/finalize", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("issue: %d", res.Status)
	}
	if page := felix.Get(cn); !regexp.MustCompile(`CN-\d{4}-\d{6}`).MatchString(page.Body) {
		t.Fatal("the credit note was not issued")
	}
	if _, err := tt.App.Staff.FindByEmail(context.Background(), "finance2@demo.local"); err != nil {
		t.Fatal(err)
	}
}
