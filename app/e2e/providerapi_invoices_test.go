package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"cardata/app/apptest"
	"cardata/app/providerapi/client"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding"
	"cardata/policies"
)

// apiRawFor returns an OAuth client (real library) of a new API client
// of the provider, with a bare token-bearing HTTP client.
func apiRawFor(t *testing.T, tt *apptest.T, r *onboarding.Registered) *http.Client {
	t.Helper()
	ns, err := onboardingFor(tt).CreateAPIClient(tt.Ctx, r.Provider.ID, "invoices")
	if err != nil {
		t.Fatal(err)
	}
	return apiClient(t, tt, &apiWorld{ClientID: ns.Client.ClientID, Secret: ns.Secret})
}

// apiGenFor is the generated client on a new API client of the provider.
func apiGenFor(t *testing.T, tt *apptest.T, r *onboarding.Registered) *client.ClientWithResponses {
	t.Helper()
	return apiGenOver(t, apiRawFor(t, tt, r))
}

// Providers read their issued invoices and credit notes through the API;
// drafts and other providers' documents are indistinguishable from
// unknown ids (404), and the documents are the stored bytes.
func TestProviderAPIInvoices(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	ctx, bs := tt.Ctx, tt.App.Billing
	if _, err := bs.UpdateSeller(ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bs.EnsureInitialPriceList(ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU12345675")
	b := mustActiveProvider(t, tt, "Werkstatt Süd AG", "DE", "DE123456788")
	aid, bid := a.Provider.ID, b.Provider.ID
	billingtest.MustDeliveries(t, tt.DB, aid, billing.KindPull, time.Date(2026, 9, 2, 0, 0, 0, 0, time.UTC), time.Hour, 30, "a9")
	billingtest.MustDeliveries(t, tt.DB, aid, billing.KindPull, time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC), time.Hour, 12, "a10")
	billingtest.MustDeliveries(t, tt.DB, bid, billing.KindPull, time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC), time.Hour, 12, "b10")

	invoiceOf := func(pid int64, period string) *billing.Invoice {
		t.Helper()
		list, _, err := bs.ListInvoices(ctx, billing.InvoiceFilter{ProviderID: pid, Period: period, DocType: billing.DocInvoice})
		if err != nil || len(list) != 1 {
			t.Fatalf("invoice of %d for %s: %d %v", pid, period, len(list), err)
		}
		return &list[0]
	}
	// September: A's invoice, finalized, partly paid, partly credited.
	if _, err := bs.RunPeriod(ctx, "2026-09", billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
		t.Fatal(err)
	}
	sep, err := bs.Finalize(ctx, invoiceOf(aid, "2026-09").ID)
	if err != nil {
		t.Fatal(err)
	}
	// October: B's finalized, A's left a draft.
	if _, err := bs.RunPeriod(ctx, "2026-10", billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
		t.Fatal(err)
	}
	aDraft := invoiceOf(aid, "2026-10")
	bOct, err := bs.Finalize(ctx, invoiceOf(bid, "2026-10").ID)
	if err != nil {
		t.Fatal(err)
	}
	f1 := tt.MustCreateStaff(t, "fin1@invoices.test", policies.RoleFinance)
	f2 := tt.MustCreateStaff(t, "fin2@invoices.test", policies.RoleFinance)
	f1ctx := policies.WithPrincipal(context.Background(), f1.Principal(0))
	f2ctx := policies.WithPrincipal(context.Background(), f2.Principal(0))
	cnDraft, err := bs.RequestCreditNote(f1ctx, sep.ID, billing.CreditRequest{Reason: "Duplicate deliveries", Amount: "0.20"})
	if err != nil {
		t.Fatal(err)
	}
	cn, err := bs.Finalize(f2ctx, cnDraft.ID)
	if err != nil {
		t.Fatal(err)
	}
	pendingCN, err := bs.RequestCreditNote(f1ctx, sep.ID, billing.CreditRequest{Reason: "Still under review", Amount: "0.20"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.BookPayment(f1ctx, sep.ID, billing.NewPayment{Amount: "0.30", ReceivedOn: "2026-11-05", Reference: "SEPA 4711"}); err != nil {
		t.Fatal(err)
	}

	ca, cb := apiGenFor(t, tt, a), apiGenFor(t, tt, b)
	// Requests the generated client cannot make (undocumented parameters,
	// values outside an enum, malformed ids) go raw, as an attacker's would.
	raw := apiRawFor(t, tt, a)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		return apiGet(t, raw, apiBase+path)
	}
	ids := func(p *client.InvoicePage) []int64 {
		var out []int64
		for _, it := range p.Invoices {
			out = append(out, int64(it.Id))
		}
		return out
	}

	// The list: A's issued invoice and credit note, newest first; never the
	// drafts, never B's.
	list := call(ca.ListInvoicesWithResponse(ctx, nil)).must(t)
	if p := list.JSON200; p == nil || len(p.Invoices) != 2 || p.NextCursor != nil || ids(p)[0] != cn.ID || ids(p)[1] != sep.ID {
		t.Fatalf("A's invoices: %d %s", list.StatusCode(), list.Body)
	}
	if h := list.Headers200; h == nil || h.RateLimitLimit == nil || h.RateLimitRemaining == nil || h.RateLimitReset == nil {
		t.Errorf("rate limit headers missing: %v", list.HTTPResponse.Header)
	}
	gross := sep.GrossTotal.StringFixed(2)
	open := sep.GrossTotal.Sub(cn.GrossTotal).Sub(decimal.RequireFromString("0.30")).StringFixed(2)
	li := list.JSON200.Invoices[1]
	if li.Number != *sep.Number || li.Type != client.InvoiceTypeInvoice || li.Status != client.InvoiceStatusFinalized || li.GrossTotal != gross ||
		li.PaidTotal != "0.30" || li.CreditedTotal == nil || *li.CreditedTotal != cn.GrossTotal.StringFixed(2) || li.Outstanding == nil ||
		*li.Outstanding != open || li.Documents.Pdf != fmt.Sprintf("/api/v1/invoices/%d/pdf", sep.ID) {
		t.Fatalf("invoice in the list: %+v", li)
	}
	if lc := list.JSON200.Invoices[0]; lc.Type != client.InvoiceTypeCreditNote || lc.CorrectsNumber == nil || *lc.CorrectsNumber != *sep.Number ||
		lc.Outstanding != nil || lc.PaymentStatus != nil {
		t.Fatalf("credit note in the list: %+v", lc)
	}
	// Paid in part: the life cycle stays "finalized", the payment status says partially_paid (1.1).
	if li.PaymentStatus == nil || *li.PaymentStatus != "partially_paid" {
		t.Fatalf("payment status of the partly paid invoice: %v", li.PaymentStatus)
	}
	list = call(cb.ListInvoicesWithResponse(ctx, nil)).must(t)
	if p := list.JSON200; p == nil || len(p.Invoices) != 1 || ids(p)[0] != bOct.ID || p.Invoices[0].PaymentStatus == nil ||
		*p.Invoices[0].PaymentStatus != "unpaid" {
		t.Fatalf("B's invoices: %s", list.Body)
	}

	// Filters and pages.
	for _, f := range []struct {
		name string
		p    client.ListInvoicesParams
		want []int64
	}{
		{"period=2026-09", client.ListInvoicesParams{Period: ptr("2026-09")}, []int64{cn.ID, sep.ID}},
		{"period=2026-10", client.ListInvoicesParams{Period: ptr("2026-10")}, nil},
		{"type=credit_note", client.ListInvoicesParams{Type: ptr(client.ListInvoicesParamsTypeCreditNote)}, []int64{cn.ID}},
		{"type=invoice&status=finalized", client.ListInvoicesParams{Type: ptr(client.ListInvoicesParamsTypeInvoice),
			Status: ptr(client.ListInvoicesParamsStatusFinalized)}, []int64{sep.ID}},
		{"status=paid", client.ListInvoicesParams{Status: ptr(client.ListInvoicesParamsStatusPaid)}, nil},
		{"limit=1", client.ListInvoicesParams{Limit: ptr(1)}, []int64{cn.ID}},
	} {
		res := call(ca.ListInvoicesWithResponse(ctx, &f.p)).must(t)
		if res.JSON200 == nil || fmt.Sprint(ids(res.JSON200)) != fmt.Sprint(f.want) {
			t.Errorf("%s: %d %s, want %v", f.name, res.StatusCode(), res.Body, f.want)
		}
	}
	// The next page follows the cursor; a cursor not handed out is refused.
	list = call(ca.ListInvoicesWithResponse(ctx, &client.ListInvoicesParams{Limit: ptr(1)})).must(t)
	if list.JSON200 == nil || list.JSON200.NextCursor == nil {
		t.Fatalf("no next page: %s", list.Body)
	}
	list = call(ca.ListInvoicesWithResponse(ctx, &client.ListInvoicesParams{Limit: ptr(1), Cursor: list.JSON200.NextCursor})).must(t)
	if p := list.JSON200; p == nil || len(p.Invoices) != 1 || ids(p)[0] != sep.ID || p.NextCursor != nil {
		t.Fatalf("second page: %d %s", list.StatusCode(), list.Body)
	}
	if res := call(ca.ListInvoicesWithResponse(ctx, &client.ListInvoicesParams{Cursor: ptr("bm9wZQ")})).must(t); res.StatusCode() != http.StatusBadRequest {
		t.Errorf("a cursor not handed out: %d %s", res.StatusCode(), res.Body)
	}
	for _, q := range []string{"?page=2", "?perPage=1"} {
		if res, body := get("/api/v1/invoices" + q); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s", q, res.StatusCode, body)
		}
	}
	for _, q := range []string{"?period=2026-13", "?period=x", "?status=draft", "?status=discarded", "?type=bill", "?limit=0", "?limit=x",
		"?limit=501", "?limit=-1"} {
		res, body := get("/api/v1/invoices" + q)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s", q, res.StatusCode, body)
		}
	}

	// The detail: lines, payments, credit notes, outstanding.
	detail := call(ca.GetInvoiceWithResponse(ctx, int(sep.ID))).must(t)
	if d := detail.JSON200; d == nil || len(d.Lines) != len(sep.Lines) || len(d.Lines) == 0 || len(d.Payments) != 1 || d.Payments[0].Amount != "0.30" ||
		d.Payments[0].ReceivedOn.String() != "2026-11-05" || len(d.CreditNotes) != 1 || int64(d.CreditNotes[0].Id) != cn.ID ||
		d.Outstanding == nil || *d.Outstanding != open || d.PaymentStatus == nil || *d.PaymentStatus != "partially_paid" {
		t.Fatalf("invoice detail: %d %s", detail.StatusCode(), detail.Body)
	}
	detail = call(ca.GetInvoiceWithResponse(ctx, int(cn.ID))).must(t)
	if d := detail.JSON200; d == nil || d.Type != client.InvoiceDetailTypeCreditNote || d.CorrectsInvoiceId == nil ||
		int64(*d.CorrectsInvoiceId) != sep.ID || d.Outstanding != nil {
		t.Fatalf("credit note detail: %d %s", detail.StatusCode(), detail.Body)
	}

	// Documents: the stored bytes, their content types and SHA-256; the
	// ETag answers 304 to If-None-Match.
	document := func(c *client.ClientWithResponses, id int64, ext, etag string) (int, http.Header, []byte) {
		t.Helper()
		var match *string
		if etag != "" {
			match = &etag
		}
		if ext == "pdf" {
			r := call(c.GetInvoicePDFWithResponse(ctx, int(id), &client.GetInvoicePDFParams{IfNoneMatch: match})).must(t)
			return r.StatusCode(), r.HTTPResponse.Header, r.Body
		}
		r := call(c.GetInvoiceXMLWithResponse(ctx, int(id), &client.GetInvoiceXMLParams{IfNoneMatch: match})).must(t)
		return r.StatusCode(), r.HTTPResponse.Header, r.Body
	}
	for _, doc := range []struct {
		id              int64
		ext, fmt, ctype string
	}{{sep.ID, "pdf", "pdf", "application/pdf"}, {sep.ID, "xml", "ubl", "application/xml"}, {cn.ID, "pdf", "pdf", "application/pdf"}, {cn.ID, "xml", "ubl", "application/xml"}} {
		status, hdr, body := document(ca, doc.id, doc.ext, "")
		stored, err := bs.Document(ctx, doc.id, doc.fmt)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		if status != 200 || !bytes.Equal(body, stored.Content) || hdr.Get("Content-Type") != doc.ctype ||
			hdr.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` || stored.SHA256 != hex.EncodeToString(sum[:]) ||
			!strings.HasPrefix(hdr.Get("Repr-Digest"), "sha-256=:") || !strings.Contains(hdr.Get("Content-Disposition"), ".") {
			t.Fatalf("%d.%s: %d %s etag %s (%d bytes, stored %d)", doc.id, doc.ext, status, hdr.Get("Content-Type"), hdr.Get("ETag"), len(body), len(stored.Content))
		}
		if status, _, _ := document(ca, doc.id, doc.ext, hdr.Get("ETag")); status != http.StatusNotModified {
			t.Fatalf("%d.%s If-None-Match: %d", doc.id, doc.ext, status)
		}
	}

	// 404, never 403, for another provider's documents, for drafts and for
	// ids that do not exist: the answers are the same.
	unknown := call(ca.GetInvoiceWithResponse(ctx, 999999999)).must(t).Body
	for _, id := range []int64{bOct.ID, aDraft.ID, pendingCN.ID, 999999999} {
		inv := call(ca.GetInvoiceWithResponse(ctx, int(id))).must(t)
		if inv.StatusCode() != http.StatusNotFound || inv.ApplicationproblemJSON404 == nil || inv.ApplicationproblemJSON404.Code != "not_found" {
			t.Errorf("invoice %d: %d %s", id, inv.StatusCode(), inv.Body)
		}
		if stripInstance(string(inv.Body)) != stripInstance(string(unknown)) {
			t.Errorf("invoice %d answers differently from an unknown id: %s vs %s", id, inv.Body, unknown)
		}
		for _, ext := range []string{"pdf", "xml"} {
			status, hdr, body := document(ca, id, ext, "")
			if status != http.StatusNotFound || apiProblem(body) != "not_found" || !strings.Contains(hdr.Get("Content-Type"), "problem+json") {
				t.Errorf("invoice %d.%s: %d %s", id, ext, status, body)
			}
		}
	}
	for _, path := range []string{"/api/v1/invoices/abc", "/api/v1/invoices/0", "/api/v1/invoices/-1/pdf", "/api/v1/invoices/99999999999999999999999/xml"} {
		if res, body := get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d %s", path, res.StatusCode, body)
		}
	}
	// B reads its own document, and A's is hidden from it.
	if status, _, _ := document(cb, bOct.ID, "pdf", ""); status != 200 {
		t.Fatalf("B's own pdf: %d", status)
	}
	if res := call(cb.GetInvoiceWithResponse(ctx, int(sep.ID))).must(t); res.StatusCode() != http.StatusNotFound {
		t.Fatalf("A's invoice for B: %d", res.StatusCode())
	}
	// Without a token: 401.
	if res := call(apiGenOver(t, apiInProcessClient(t, tt)).ListInvoicesWithResponse(ctx, nil)).must(t); res.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d %s", res.StatusCode(), res.Body)
	}
}

// stripInstance drops the problem's instance (the request path) so that
// two 404s can be compared.
func stripInstance(body string) string {
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		return body
	}
	delete(m, "instance")
	b, _ := json.Marshal(m)
	return string(b)
}
