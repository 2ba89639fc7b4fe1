package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"cardata/app/apptest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding"
	"cardata/policies"
)

type apiInvoiceJSON struct {
	ID                int64   `json:"id"`
	Number            string  `json:"number"`
	Type              string  `json:"type"`
	Status            string  `json:"status"`
	Period            string  `json:"period"`
	GrossTotal        string  `json:"grossTotal"`
	PaidTotal         string  `json:"paidTotal"`
	CreditedTotal     *string `json:"creditedTotal"`
	Outstanding       *string `json:"outstanding"`
	PaymentStatus     *string `json:"paymentStatus"`
	CorrectsInvoiceID *int64  `json:"correctsInvoiceId"`
	CorrectsNumber    *string `json:"correctsNumber"`
	Documents         struct {
		PDF string `json:"pdf"`
		XML string `json:"xml"`
	} `json:"documents"`
	Lines []struct {
		Item      string `json:"item"`
		NetAmount string `json:"netAmount"`
	} `json:"lines"`
	Payments []struct {
		Amount     string `json:"amount"`
		ReceivedOn string `json:"receivedOn"`
	} `json:"payments"`
	CreditNotes []struct {
		ID     int64  `json:"id"`
		Number string `json:"number"`
	} `json:"creditNotes"`
}

type apiInvoicePageJSON struct {
	Invoices   []apiInvoiceJSON `json:"invoices"`
	NextCursor *string          `json:"nextCursor"`
}

// apiClientFor returns an OAuth client (real library) of a new API client
// of the provider.
func apiClientFor(t *testing.T, tt *apptest.T, r *onboarding.Registered) *http.Client {
	t.Helper()
	ns, err := onboardingFor(tt).CreateAPIClient(tt.Ctx, r.Provider.ID, "invoices")
	if err != nil {
		t.Fatal(err)
	}
	return apiClient(t, tt, &apiWorld{ClientID: ns.Client.ClientID, Secret: ns.Secret})
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

	oa := newAPIOpenAPIChecker(t)
	ca, cb := apiClientFor(t, tt, a), apiClientFor(t, tt, b)
	get := func(c *http.Client, path string) (*http.Response, string) {
		t.Helper()
		res, body := apiGet(t, c, apiBase+path)
		oa.check("GET", path, res, body)
		return res, body
	}

	// The list: A's issued invoice and credit note, newest first; never the
	// drafts, never B's.
	res, body := get(ca, "/api/v1/invoices")
	var page apiInvoicePageJSON
	_ = json.Unmarshal([]byte(body), &page)
	if res.StatusCode != 200 || len(page.Invoices) != 2 || page.NextCursor != nil || page.Invoices[0].ID != cn.ID || page.Invoices[1].ID != sep.ID {
		t.Fatalf("A's invoices: %d %s", res.StatusCode, body)
	}
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if res.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	gross := sep.GrossTotal.StringFixed(2)
	open := sep.GrossTotal.Sub(cn.GrossTotal).Sub(decimal.RequireFromString("0.30")).StringFixed(2)
	li := page.Invoices[1]
	if li.Number != *sep.Number || li.Type != "invoice" || li.Status != "finalized" || li.GrossTotal != gross || li.PaidTotal != "0.30" ||
		li.CreditedTotal == nil || *li.CreditedTotal != cn.GrossTotal.StringFixed(2) || li.Outstanding == nil || *li.Outstanding != open ||
		li.Documents.PDF != fmt.Sprintf("/api/v1/invoices/%d/pdf", sep.ID) {
		t.Fatalf("invoice in the list: %+v", li)
	}
	if lc := page.Invoices[0]; lc.Type != "credit_note" || lc.CorrectsNumber == nil || *lc.CorrectsNumber != *sep.Number || lc.Outstanding != nil ||
		lc.PaymentStatus != nil {
		t.Fatalf("credit note in the list: %+v", lc)
	}
	// Paid in part: the life cycle stays "finalized", the payment status says partially_paid (1.1).
	if li.PaymentStatus == nil || *li.PaymentStatus != "partially_paid" {
		t.Fatalf("payment status of the partly paid invoice: %v", li.PaymentStatus)
	}
	res, body = get(cb, "/api/v1/invoices")
	page = apiInvoicePageJSON{}
	_ = json.Unmarshal([]byte(body), &page)
	if res.StatusCode != 200 || len(page.Invoices) != 1 || page.Invoices[0].ID != bOct.ID || page.Invoices[0].PaymentStatus == nil ||
		*page.Invoices[0].PaymentStatus != "unpaid" {
		t.Fatalf("B's invoices: %s", body)
	}

	// Filters and pages.
	for q, want := range map[string][]int64{
		"?period=2026-09": {cn.ID, sep.ID}, "?period=2026-10": {}, "?type=credit_note": {cn.ID}, "?type=invoice&status=finalized": {sep.ID},
		"?status=paid": {}, "?limit=1": {cn.ID},
	} {
		res, body := get(ca, "/api/v1/invoices"+q)
		page = apiInvoicePageJSON{}
		_ = json.Unmarshal([]byte(body), &page)
		var got []int64
		for _, it := range page.Invoices {
			got = append(got, it.ID)
		}
		if res.StatusCode != 200 || fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: %d %v, want %v", q, res.StatusCode, got, want)
		}
	}
	// The next page follows the cursor; a cursor not handed out is refused.
	res, body = get(ca, "/api/v1/invoices?limit=1")
	page = apiInvoicePageJSON{}
	_ = json.Unmarshal([]byte(body), &page)
	if page.NextCursor == nil {
		t.Fatalf("no next page: %s", body)
	}
	res, body = get(ca, "/api/v1/invoices?limit=1&cursor="+url.QueryEscape(*page.NextCursor))
	page = apiInvoicePageJSON{}
	_ = json.Unmarshal([]byte(body), &page)
	if res.StatusCode != 200 || len(page.Invoices) != 1 || page.Invoices[0].ID != sep.ID || page.NextCursor != nil {
		t.Fatalf("second page: %d %s", res.StatusCode, body)
	}
	for _, q := range []string{"?cursor=bm9wZQ", "?page=2", "?perPage=1"} {
		if res, body := get(ca, "/api/v1/invoices"+q); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s", q, res.StatusCode, body)
		}
	}
	for _, q := range []string{"?period=2026-13", "?period=x", "?status=draft", "?status=discarded", "?type=bill", "?limit=0", "?limit=x",
		"?limit=501", "?limit=-1"} {
		res, body := get(ca, "/api/v1/invoices"+q)
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s", q, res.StatusCode, body)
		}
	}

	// The detail: lines, payments, credit notes, outstanding.
	res, body = get(ca, fmt.Sprintf("/api/v1/invoices/%d", sep.ID))
	var d apiInvoiceJSON
	_ = json.Unmarshal([]byte(body), &d)
	if res.StatusCode != 200 || len(d.Lines) != len(sep.Lines) || len(d.Lines) == 0 || len(d.Payments) != 1 || d.Payments[0].Amount != "0.30" ||
		d.Payments[0].ReceivedOn != "2026-11-05" || len(d.CreditNotes) != 1 || d.CreditNotes[0].ID != cn.ID || d.Outstanding == nil || *d.Outstanding != open ||
		d.PaymentStatus == nil || *d.PaymentStatus != "partially_paid" {
		t.Fatalf("invoice detail: %d %s", res.StatusCode, body)
	}
	res, body = get(ca, fmt.Sprintf("/api/v1/invoices/%d", cn.ID))
	d = apiInvoiceJSON{}
	_ = json.Unmarshal([]byte(body), &d)
	if res.StatusCode != 200 || d.Type != "credit_note" || d.CorrectsInvoiceID == nil || *d.CorrectsInvoiceID != sep.ID || d.Outstanding != nil {
		t.Fatalf("credit note detail: %d %s", res.StatusCode, body)
	}

	// Documents: the stored bytes, their content types and SHA-256.
	for _, doc := range []struct {
		id              int64
		ext, fmt, ctype string
	}{{sep.ID, "pdf", "pdf", "application/pdf"}, {sep.ID, "xml", "ubl", "application/xml"}, {cn.ID, "pdf", "pdf", "application/pdf"}, {cn.ID, "xml", "ubl", "application/xml"}} {
		path := fmt.Sprintf("/api/v1/invoices/%d/%s", doc.id, doc.ext)
		res, body := get(ca, path)
		stored, err := bs.Document(ctx, doc.id, doc.fmt)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		if res.StatusCode != 200 || !bytes.Equal([]byte(body), stored.Content) || res.Header.Get("Content-Type") != doc.ctype ||
			res.Header.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` || stored.SHA256 != hex.EncodeToString(sum[:]) ||
			!strings.HasPrefix(res.Header.Get("Repr-Digest"), "sha-256=:") || !strings.Contains(res.Header.Get("Content-Disposition"), ".") {
			t.Fatalf("%s: %d %s etag %s (%d bytes, stored %d)", path, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("ETag"), len(body), len(stored.Content))
		}
		req, _ := http.NewRequest("GET", apiBase+path, nil)
		req.Header.Set("If-None-Match", res.Header.Get("ETag"))
		nm, err := ca.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		nm.Body.Close()
		if nm.StatusCode != http.StatusNotModified {
			t.Fatalf("%s If-None-Match: %d", path, nm.StatusCode)
		}
	}

	// 404, never 403, for another provider's documents, for drafts and for
	// ids that do not exist: the answers are the same.
	_, unknown := get(ca, "/api/v1/invoices/999999999")
	for _, id := range []int64{bOct.ID, aDraft.ID, pendingCN.ID, 999999999} {
		for _, suffix := range []string{"", "/pdf", "/xml"} {
			path := fmt.Sprintf("/api/v1/invoices/%d%s", id, suffix)
			res, body := get(ca, path)
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal([]byte(body), &p)
			if res.StatusCode != http.StatusNotFound || p.Code != "not_found" || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
				t.Errorf("%s: %d %s", path, res.StatusCode, body)
			}
			if suffix == "" && stripInstance(body) != stripInstance(unknown) {
				t.Errorf("%s answers differently from an unknown id: %s vs %s", path, body, unknown)
			}
		}
	}
	for _, path := range []string{"/api/v1/invoices/abc", "/api/v1/invoices/0", "/api/v1/invoices/-1/pdf", "/api/v1/invoices/99999999999999999999999/xml"} {
		if res, body := get(ca, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d %s", path, res.StatusCode, body)
		}
	}
	// B reads its own document, and A's is hidden from it.
	if res, _ := get(cb, fmt.Sprintf("/api/v1/invoices/%d/pdf", bOct.ID)); res.StatusCode != 200 {
		t.Fatalf("B's own pdf: %d", res.StatusCode)
	}
	if res, _ := get(cb, fmt.Sprintf("/api/v1/invoices/%d", sep.ID)); res.StatusCode != http.StatusNotFound {
		t.Fatalf("A's invoice for B: %d", res.StatusCode)
	}
	// Without a token: 401.
	if res, body := get(apiInProcessClient(t, tt), "/api/v1/invoices"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d %s", res.StatusCode, body)
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
