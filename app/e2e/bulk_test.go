package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies/audit"
)

// bulkStatus reads an invoice's status and number straight from the database.
func bulkStatus(t *testing.T, w *financeWorld, id int64) (string, string) {
	t.Helper()
	var row struct {
		Status string
		Number *string
	}
	if err := w.tt.DB.Raw("SELECT status, number FROM invoices WHERE id = ?", id).Scan(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.Number == nil {
		return row.Status, ""
	}
	return row.Status, *row.Number
}

// Finance finalizes a month's drafts in one post (after the confirmation
// page naming how many, the total and the numbers), one draft whose
// provider lacks an address failing without stopping the others; posting
// again skips what is done; then sends them in one post. A credit note in a
// bulk finalization still needs a second finance user. Auditors cannot.
func TestFinanceBulkFinalizesAndSendsAPeriod(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, false)
	ctx, bs := w.tt.Ctx, w.tt.App.Billing
	// A third provider in October whose address got lost: its draft cannot be finalized.
	nord := mustActiveProvider(t, w.tt, "Nord Flotten GmbH", "DE", "DE136695976")
	billingtest.MustDeliveries(t, w.tt.DB, nord.Provider.ID, billing.KindPull, time.Date(2026, 10, 2, 8, 0, 0, 0, time.UTC), time.Minute, 1000, "fno")
	if _, err := bs.RunPeriod(ctx, "2026-10", billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
		t.Fatal(err)
	}
	list, _, err := bs.ListInvoices(ctx, billing.InvoiceFilter{ProviderID: nord.Provider.ID, Period: "2026-10"})
	if err != nil || len(list) != 1 {
		t.Fatalf("nord draft: %v %d", err, len(list))
	}
	bad := list[0].ID
	if err := w.tt.DB.Exec("UPDATE providers SET street = '' WHERE id = ?", nord.Provider.ID).Error; err != nil {
		t.Fatal(err)
	}

	page := w.fiona.Get("/admin/billing/invoices?period=2026-10")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `id="bulk-finalize-all"`) || !strings.Contains(page.Body, "Finalize all 3 drafts of") ||
		!strings.Contains(page.Body, fmt.Sprintf(`id="select-%d"`, w.deInv.ID)) {
		t.Fatalf("invoice list offers no bulk finalization: %d %s", page.Status, section(page.Body, "section", "bulk-title"))
	}
	if a := w.otto.Get("/admin/billing/invoices?period=2026-10"); strings.Contains(a.Body, "bulk-finalize") || strings.Contains(a.Body, `name="ids"`) {
		t.Fatal("the auditor is offered bulk actions")
	}
	all := url.Values{"all": {"1"}, "period": {"2026-10"}}

	// The form's click asks first: how many, the total, the numbers.
	ask := url.Values{"_confirm": {"ask"}, "all": {"1"}, "period": {"2026-10"}}
	conf := w.fiona.PostForm("/admin/billing/bulk/finalize", ask)
	year := time.Now().In(bs.Location).Year()
	for _, want := range []string{"Finalize 3 drafts (€", `id="confirm-yes"`, fmt.Sprintf("CD-%d-000001 to CD-%d-000003", year, year), `name="all" value="1"`} {
		if conf.Status != http.StatusOK || !strings.Contains(conf.Body, want) {
			t.Fatalf("confirmation lacks %q: %d %s", want, conf.Status, section(conf.Body, "section", "confirm-action"))
		}
	}
	if s, _ := bulkStatus(t, w, w.deInv.ID); s != billing.StatusDraft {
		t.Fatalf("asking finalized already: %s", s)
	}
	// The menu marks the section the asking page belongs to: the invoices
	// (no item claims /admin/billing/bulk; the form was on the invoice list),
	// never the dashboard; the search results belong to no item.
	req := httptest.NewRequest(http.MethodPost, "/admin/billing/bulk/finalize", strings.NewReader(url.Values{"_confirm": {"ask"},
		"all": {"1"}, "period": {"2026-10"}, "_csrf": {w.fiona.CSRF()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", "http://example.com/admin/billing/invoices?period=2026-10")
	navCurrent := regexp.MustCompile(`<a href="([^"]+)" aria-current="page">`)
	for path, r := range map[string]*apptest.Response{"bulk": w.fiona.Do(req),
		"invoice": w.fiona.PostForm(fmt.Sprintf("/admin/billing/invoices/%d/finalize", w.deInv.ID), url.Values{"_confirm": {"ask"}})} {
		if cur := navCurrent.FindAllStringSubmatch(r.Body, -1); r.Status != http.StatusOK || len(cur) != 1 || cur[0][1] != "/admin/billing/invoices" {
			t.Errorf("%s confirmation highlights %v (%d)", path, cur, r.Status)
		}
	}
	if r := w.fiona.Get("/admin/search?q=Nord"); r.Status != http.StatusOK || navCurrent.MatchString(r.Body) {
		t.Errorf("search results highlight %v (%d)", navCurrent.FindAllStringSubmatch(r.Body, -1), r.Status)
	}

	res := w.fiona.PostForm("/admin/billing/bulk/finalize", all)
	if res.Status != http.StatusOK {
		t.Fatalf("bulk finalize: %d %s", res.Status, res.Body)
	}
	done, failed := section(res.Body, "table", "bulk-done"), section(res.Body, "table", "bulk-failed")
	if strings.Count(done, "<tr data-invoice") != 2 || strings.Count(failed, "<tr data-invoice") != 1 ||
		!strings.Contains(failed, "Nord Flotten GmbH") || !strings.Contains(failed, "address is incomplete") {
		t.Fatalf("bulk result: done %s failed %s", done, failed)
	}
	var numbers []string
	for _, id := range []int64{w.deInv.ID, w.atInv.ID} {
		s, n := bulkStatus(t, w, id)
		if s != billing.StatusFinalized || n == "" || !strings.Contains(done, n) {
			t.Fatalf("invoice %d after bulk: %s %q", id, s, n)
		}
		numbers = append(numbers, n)
	}
	if numbers[0] != fmt.Sprintf("CD-%d-000001", year) || numbers[1] != fmt.Sprintf("CD-%d-000002", year) {
		t.Fatalf("numbers not gapless in order: %v", numbers)
	}
	if s, n := bulkStatus(t, w, bad); s != billing.StatusDraft || n != "" {
		t.Fatalf("bad draft: %s %q", s, n)
	}
	entries, _, err := audit.List(ctx, w.tt.DB, audit.Filter{Action: "invoice.finalize"})
	if err != nil || len(entries) != 2 || entries[0].ActorLabel != "fiona@fin.test" {
		t.Fatalf("audit entries: %v %+v", err, entries)
	}

	// Posting again (a reload) changes nothing: the two are skipped.
	again := w.fiona.PostForm("/admin/billing/bulk/finalize", url.Values{"ids": {itoa(w.deInv.ID), itoa(w.atInv.ID), itoa(bad)}})
	if sk := section(again.Body, "table", "bulk-skipped"); again.Status != http.StatusOK || strings.Count(sk, "<tr data-invoice") != 2 ||
		!strings.Contains(sk, "already finalized") || strings.Contains(again.Body, `id="bulk-done"`) {
		t.Fatalf("re-post: %d %s", again.Status, again.Body)
	}
	if n, _, _ := audit.List(ctx, w.tt.DB, audit.Filter{Action: "invoice.finalize"}); len(n) != 2 {
		t.Fatalf("re-post wrote audit entries: %d", len(n))
	}

	// The auditor may not.
	if r := w.otto.PostForm("/admin/billing/bulk/finalize", url.Values{"ids": {itoa(bad)}}); r.Status != http.StatusForbidden {
		t.Fatalf("auditor bulk finalize: %d", r.Status)
	}

	// Send: the ticked ones, the draft among them refused with its reason.
	sel := url.Values{"ids": {itoa(w.deInv.ID), itoa(w.atInv.ID), itoa(bad)}}
	sel.Set("_confirm", "ask")
	conf = w.fiona.PostForm("/admin/billing/bulk/send", sel)
	if !strings.Contains(conf.Body, "Send 2 documents") || !strings.Contains(conf.Body, numbers[0]+" to "+numbers[1]) {
		t.Fatalf("send confirmation: %s", section(conf.Body, "section", "confirm-action"))
	}
	sel.Del("_confirm")
	res = w.fiona.PostForm("/admin/billing/bulk/send", sel)
	if done := section(res.Body, "table", "bulk-done"); res.Status != http.StatusOK || strings.Count(done, "<tr data-invoice") != 2 ||
		!strings.Contains(section(res.Body, "table", "bulk-failed"), "finalize it first") {
		t.Fatalf("bulk send: %d %s", res.Status, res.Body)
	}
	for _, id := range []int64{w.deInv.ID, w.atInv.ID} {
		if s, _ := bulkStatus(t, w, id); s != billing.StatusSent {
			t.Fatalf("invoice %d after bulk send: %s", id, s)
		}
	}
	res = w.fiona.PostForm("/admin/billing/bulk/send", url.Values{"all": {"1"}, "period": {"2026-10"}})
	if res.Status != http.StatusOK || strings.Contains(res.Body, `id="bulk-done"`) {
		t.Fatalf("send all again: %d %s", res.Status, res.Body)
	}

	// A credit note drafted by Fiona is issued in bulk only by Frank.
	cr := w.fiona.PostForm(fmt.Sprintf("/admin/billing/invoices/%d/credit-notes", w.deInv.ID), url.Values{"credit_reason": {"goodwill"}, "credit_amount": {"10.00"}})
	if cr.Status != http.StatusSeeOther {
		t.Fatalf("credit note: %d %s", cr.Status, cr.Body)
	}
	cn := idInPath.FindStringSubmatch(location(cr))[1]
	res = w.fiona.PostForm("/admin/billing/bulk/finalize", url.Values{"ids": {cn}})
	if !strings.Contains(section(res.Body, "table", "bulk-failed"), "second finance user") {
		t.Fatalf("four eyes in bulk: %s", res.Body)
	}
	res = w.frank.PostForm("/admin/billing/bulk/finalize", url.Values{"ids": {cn}})
	if !strings.Contains(section(res.Body, "table", "bulk-done"), fmt.Sprintf("CN-%d-", year)) {
		t.Fatalf("second finance user in bulk: %s", res.Body)
	}

	// Nothing ticked: told so, nothing happens.
	res = w.fiona.PostForm("/admin/billing/bulk/finalize", url.Values{"period": {"2026-10"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("empty selection: %d %s", res.Status, res.Body)
	}
}
