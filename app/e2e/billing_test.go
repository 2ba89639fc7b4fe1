package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/apptest"
	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding"
	"cardata/policies"
)

var billingSeq atomic.Int64

// billingProvider registers a provider through onboarding and approves
// it, so billing reads it through the real provider directory.
func billingProvider(t *testing.T, gdb *gorm.DB, name, country, vatID string) int64 {
	t.Helper()
	svc := &onboarding.Service{DB: gdb, BcryptCost: 4, PublicURL: "http://cardata.test"}
	n := billingSeq.Add(1)
	ctx := policies.WithPrincipal(context.Background(), policies.System("test"))
	r, err := svc.Register(ctx, onboarding.Registration{LegalName: name, LegalForm: "AG", Street: "Hauptstraße 1", PostalCode: "80331",
		City: "München", Country: country, VATID: vatID, RegisterNumber: "HRB 12345", ContactName: "Clara Contact",
		ContactEmail: fmt.Sprintf("contact%d@billing.example", n), BillingEmail: fmt.Sprintf("billing%d@billing.example", n),
		IntendedServices: "Pay-as-you-drive insurance based on mileage.", TermsVersion: "2025-01", AcceptTerms: true,
		AdminPassword: "a-long-password", ClientAddr: "192.0.2.1",
		Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")}}})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	var staffID int64
	if err := gdb.Raw(`INSERT INTO staff_users (email, name, password_hash) VALUES (?, 'PM', 'x') RETURNING id`,
		fmt.Sprintf("pm%d@billing.example", n)).Scan(&staffID).Error; err != nil {
		t.Fatal(err)
	}
	pm := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindStaff, ID: staffID, Email: "pm@test",
		Roles: []string{policies.RolePartnerManager}})
	for _, a := range []onboarding.Action{onboarding.ActionClaim, onboarding.ActionApprove} {
		if _, err := svc.Review(pm, r.Provider.ID, a, ""); err != nil {
			t.Fatalf("%s %s: %v", a, name, err)
		}
	}
	return r.Provider.ID
}

// billingApp boots the app with a seller, the price list and October 2026
// deliveries for a German and an Austrian provider (onboarding's).
func billingApp(t *testing.T) (*apptest.T, int64, int64) {
	t.Helper()
	tt := apptest.New(t)
	ctx := tt.Ctx
	if _, err := tt.App.Billing.UpdateSeller(ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tt.App.Billing.EnsureInitialPriceList(ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	de := billingProvider(t, tt.DB, "Werkstatt Süd AG", "DE", "DE123456788")
	at := billingProvider(t, tt.DB, "Alpen Versicherung AG", "AT", "ATU12345675")
	oct := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	billingtest.MustDeliveries(t, tt.DB, de, billing.KindPull, oct, time.Minute, 10_002, "de")
	billingtest.MustDeliveries(t, tt.DB, at, billing.KindPull, oct, time.Hour, 40, "at")
	billingtest.MustDeliveries(t, tt.DB, at, billing.KindPush, oct, time.Hour, 5, "atp")
	return tt, de, at
}

func location(res *apptest.Response) string { return res.Header.Get("Location") }

var idInPath = regexp.MustCompile(`/(\d+)$`)

// Finance runs October from the UI (live progress, summary), finalizes,
// downloads, sends, books a payment and corrects by credit note with a
// second finance user; auditors read and cannot act.
func TestFinanceInvoicingThroughTheUI(t *testing.T) {
	t.Parallel()
	tt, de, _ := billingApp(t)
	tt.MustCreateStaff(t, "fiona@test.local", policies.RoleFinance)
	tt.MustCreateStaff(t, "frank@test.local", policies.RoleFinance)
	tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	fiona := tt.LoginStaff(t, "fiona@test.local")
	frank := tt.LoginStaff(t, "frank@test.local")
	otto := tt.LoginStaff(t, "otto@test.local")

	// Bad input re-renders with a field error, never a 500.
	if res := fiona.PostForm("/admin/billing/runs", url.Values{"period": {"2026-13"}}); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "year-month") {
		t.Fatalf("bad period: %d", res.Status)
	}
	// the month running in the billing time zone: near midnight UTC its month may differ
	running := time.Now().In(tt.App.Cfg.BillingTimezone).Format("2006-01")
	if res := fiona.PostForm("/admin/billing/runs", url.Values{"period": {running}}); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "not over yet") {
		t.Fatalf("running month: %d", res.Status)
	}
	res := fiona.PostForm("/admin/billing/runs", url.Values{"period": {"2026-10"}})
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(location(res), "/admin/billing/runs/") {
		t.Fatalf("start run: %d %s", res.Status, res.Body)
	}
	runPath := location(res)
	var progress string
	apptest.WaitFor(t, apptest.Patience, "the run to finish", func() bool {
		p := fiona.Get(runPath + "/progress")
		if p.Status != 200 || strings.Contains(p.Body, "<html") {
			t.Fatalf("progress fragment: %d %q", p.Status, p.Body)
		}
		progress = p.Body
		return !strings.Contains(progress, ">running<")
	})
	if !strings.Contains(progress, ">succeeded<") || !regexp.MustCompile(`Draft invoices created</dt><dd>2<`).MatchString(progress) {
		t.Fatalf("run summary: %s", progress)
	}
	if page := otto.Get(runPath); page.Status != 200 || !strings.Contains(page.Body, "succeeded") {
		t.Fatalf("auditor run page: %d", page.Status)
	}

	list := fiona.Get("/admin/billing/invoices?period=2026-10&status=draft")
	if list.Status != 200 || !strings.Contains(list.Body, "Werkstatt Süd AG") || !strings.Contains(list.Body, "Alpen Versicherung AG") {
		t.Fatalf("invoice list: %d", list.Status)
	}
	invs, _, _ := tt.App.Billing.ListInvoices(tt.Ctx, billing.InvoiceFilter{ProviderID: de, Period: "2026-10"})
	if len(invs) != 1 {
		t.Fatalf("%d invoices for the German provider", len(invs))
	}
	path := fmt.Sprintf("/admin/billing/invoices/%d", invs[0].ID)
	page := fiona.Get(path)
	for _, want := range []string{"10001-", "200.00", "0.03", "Finalize invoice", "Deliveries per container"} {
		if want == "10001-" {
			want = "units 10,001–10,002"
		}
		if !strings.Contains(page.Body, want) {
			t.Errorf("draft page lacks %q", want)
		}
	}
	if res := fiona.PostForm(path+"/lines", url.Values{"description": {"Setup"}, "amount": {"ten"}, "reason": {""}}); res.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(res.Body, "net amount") || !strings.Contains(res.Body, "say why") {
		t.Fatalf("manual line validation: %d", res.Status)
	}
	if res := fiona.Get(path + "/pdf"); res.Status != http.StatusNotFound {
		t.Fatalf("draft pdf: %d", res.Status)
	}
	// Auditors read, but cannot act.
	if res := otto.Get(path); res.Status != 200 || strings.Contains(res.Body, `id="finalize"`) {
		t.Fatalf("auditor view: %d", res.Status)
	}
	if res := otto.PostForm(path+"/finalize", nil); res.Status != http.StatusForbidden {
		t.Fatalf("auditor finalize: %d", res.Status)
	}
	if res := fiona.PostForm(path+"/finalize", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("finalize: %d", res.Status)
	}
	page = fiona.Get(path)
	if !strings.Contains(page.Body, "CD-") || !strings.Contains(page.Body, "is final") {
		t.Fatalf("finalized page: %s", page.Body[:min(len(page.Body), 400)])
	}
	pdf := otto.Get(path + "/pdf")
	stored, err := tt.App.Billing.Document(tt.Ctx, invs[0].ID, "pdf")
	if err != nil || pdf.Status != 200 || !bytes.Equal([]byte(pdf.Body), stored.Content) || pdf.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("pdf download: %d %v", pdf.Status, err)
	}
	if xml := otto.Get(path + "/xml"); xml.Status != 200 || !strings.Contains(xml.Body, "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>") {
		t.Fatalf("xml download: %d", xml.Status)
	}
	if res := fiona.PostForm(path+"/send", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("send: %d", res.Status)
	}
	var mails int64
	tt.DB.Raw(`SELECT count(*) FROM email_outbox WHERE kind = 'invoice.sent' AND object_id = ?`, fmt.Sprint(invs[0].ID)).Scan(&mails)
	if mails != 1 {
		t.Fatalf("%d invoice e-mails", mails)
	}
	if res := fiona.PostForm(path+"/payments", url.Values{"amount": {"lots"}, "received_on": {"2026-11-20"}}); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "amount received") {
		t.Fatalf("bad payment: %d", res.Status)
	}
	if res := fiona.PostForm(path+"/payments", url.Values{"amount": {"100.00"}, "received_on": {"2026-11-20"}, "reference": {"SEPA 4711"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("payment: %d %s", res.Status, res.Body)
	}
	// Credit note: Fiona drafts, may not issue; Frank issues.
	res = fiona.PostForm(path+"/credit-notes", url.Values{"credit_reason": {"Duplicate deliveries"}, "credit_amount": {"10.00"}})
	if res.Status != http.StatusSeeOther || !idInPath.MatchString(location(res)) {
		t.Fatalf("credit note: %d %s", res.Status, res.Body)
	}
	cnPath := location(res)
	fiona.PostForm(cnPath+"/finalize", nil)
	if page := fiona.Get(cnPath); !strings.Contains(page.Body, "second finance user") || !strings.Contains(page.Body, ">draft<") {
		t.Fatalf("four eyes not enforced")
	}
	if res := frank.PostForm(cnPath+"/finalize", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("issue credit note: %d", res.Status)
	}
	if page := frank.Get(cnPath); !strings.Contains(page.Body, "CN-") {
		t.Fatal("credit note has no number")
	}
	if res := fiona.Get("/admin/billing/export.csv?period=2026-10"); res.Status != 200 || !strings.Contains(res.Body, "credit_note") || !strings.Contains(res.Body, "-10.00") {
		t.Fatalf("csv export: %d %s", res.Status, res.Body)
	}
	if res := fiona.Get("/admin/billing/revenue"); res.Status != 200 || !strings.Contains(res.Body, "2026-10") {
		t.Fatalf("revenue: %d", res.Status)
	}
	// The pager counts the records in the page's number format ("of 10,002").
	if res := fiona.Get(path + "/records"); res.Status != 200 || !strings.Contains(res.Body, "10,002") {
		t.Fatalf("ledger records page: %d", res.Status)
	}
}

// Finance publishes a future price list version through the form, the
// graduated tiers edited as rows (from-unit and unit price per row): rows
// are added and removed with buttons that need no JavaScript, and each
// row's mistakes are shown beside that row with everything typed kept.
func TestFinancePublishesAPriceListVersion(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	if _, _, err := tt.App.Billing.EnsureInitialPriceList(tt.Ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	tt.MustCreateStaff(t, "fiona@test.local", policies.RoleFinance)
	c := tt.LoginStaff(t, "fiona@test.local")
	form := c.Get("/admin/billing/prices/new")
	// The current tiers, one row each: telematics 1 / 10001 / 100001 / 1000001, push 1 / 100001.
	for _, want := range []string{`name="telematics_rows" value="4"`, `name="telematics_from_1" inputmode="numeric" value="10001"`,
		`name="telematics_price_1" inputmode="decimal" value="0.0150"`, `name="push_rows" value="2"`, `name="push_from_1" inputmode="numeric" value="100001"`,
		`value="add telematics"`, `value="remove push 1"`} {
		if !strings.Contains(form.Body, want) {
			t.Errorf("form lacks %s", want)
		}
	}
	if form.Status != 200 || strings.Contains(form.Body, "1:0.0200, 10001:0.0150") {
		t.Fatalf("form: %d", form.Status)
	}
	valid := time.Now().AddDate(0, 2, 0).Format("2006-01-02")
	in := url.Values{"valid_from": {valid}, "telematics_rows": {"2"}, "telematics_from_0": {"1"}, "telematics_price_0": {"0,0190"},
		"telematics_from_1": {"20.001"}, "telematics_price_1": {"0.0140"}, "push_rows": {"1"}, "push_from_0": {"1"}, "push_price_0": {"0.01"},
		"support_case_p1": {"150"}, "support_case_p2": {"90"}, "support_case_p3": {"45"}, "support_case_p4": {"0"}, "support_time": {"27.50"}}
	// Add a row: the form comes back with an empty third row and nothing saved.
	add := url.Values{}
	for k, v := range in {
		add[k] = v
	}
	add.Set("edit", "add telematics")
	res := c.PostForm("/admin/billing/prices", add)
	if res.Status != 200 || !strings.Contains(res.Body, `name="telematics_rows" value="3"`) || !strings.Contains(res.Body, `name="telematics_from_2" inputmode="numeric" value=""`) ||
		!strings.Contains(res.Body, `value="20.001"`) || !strings.Contains(res.Body, `value="0,0190"`) {
		t.Fatalf("add a row: %d", res.Status)
	}
	// Remove the first row: the second moves up, its input kept.
	add.Set("edit", "remove telematics 0")
	res = c.PostForm("/admin/billing/prices", add)
	if res.Status != 200 || !strings.Contains(res.Body, `name="telematics_rows" value="1"`) ||
		!strings.Contains(res.Body, `name="telematics_from_0" inputmode="numeric" value="20.001"`) {
		t.Fatalf("remove a row: %d", res.Status)
	}
	var n int64
	tt.DB.Raw(`SELECT count(*) FROM price_list_versions`).Scan(&n)
	if n != 1 {
		t.Fatal("editing rows published a version")
	}
	// Mistakes per row, input kept.
	bad := url.Values{}
	for k, v := range in {
		bad[k] = v
	}
	bad.Set("valid_from", "2020-01-01")
	bad.Set("telematics_rows", "3")
	bad.Set("telematics_from_1", "0.5")
	bad.Set("telematics_from_2", "30001")
	bad.Set("telematics_price_2", "cheap")
	bad.Set("support_case_p1", "-3")
	res = c.PostForm("/admin/billing/prices", bad)
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid version: %d", res.Status)
	}
	row := func(i int) string {
		return rowOf(section(res.Body, "table", "tiers-telematics"), fmt.Sprintf(`name="telematics_from_%d"`, i))
	}
	if r := row(1); !strings.Contains(r, `field invalid"><input id="f-telematics_from_1"`) || !strings.Contains(r, "whole number from 1") || !strings.Contains(r, `value="0.5"`) {
		t.Errorf("row 2: %s", r)
	}
	if r := row(2); !strings.Contains(r, "a unit price is a number") || !strings.Contains(r, `value="cheap"`) || strings.Contains(r, "whole number") {
		t.Errorf("row 3: %s", r)
	}
	if r := row(0); strings.Contains(r, `class="error"`) {
		t.Errorf("row 1 has an error: %s", r)
	}
	if !strings.Contains(res.Body, "negative") {
		t.Error("the negative case fee is not reported")
	}
	bad = url.Values{}
	for k, v := range in {
		bad[k] = v
	}
	bad.Set("valid_from", "2020-01-01")
	if res := c.PostForm("/admin/billing/prices", bad); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "future") {
		t.Fatalf("past start: %d", res.Status)
	}
	if res := c.PostForm("/admin/billing/prices", in); res.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	var pub struct {
		Versions []struct {
			Current bool
			Items   []struct {
				Item, UnitPrice string
				TierFrom        *int64
			}
		}
	}
	// Anyone reads it, with the generated client and no token.
	priceList := call(apiGenOver(t, apiInProcessClient(t, tt)).GetPriceListWithResponse(t.Context())).must(t)
	if err := json.Unmarshal(priceList.Body, &pub); err != nil || priceList.JSON200 == nil || len(pub.Versions) != 2 || !pub.Versions[0].Current ||
		pub.Versions[1].Current {
		t.Fatalf("published list: %d %s", priceList.StatusCode(), priceList.Body)
	}
	found := false
	for _, it := range pub.Versions[1].Items {
		found = found || (it.Item == "telematics" && it.UnitPrice == "0.0140" && it.TierFrom != nil && *it.TierFrom == 20001)
	}
	if !found {
		t.Fatalf("announced version items: %s", res.Body)
	}
	if page := tt.Client(t).Get("/price-list"); page.Status != 200 || !strings.Contains(page.Body, "Announced") || !strings.Contains(page.Body, "0.0190") {
		t.Fatalf("public page: %d", page.Status)
	}
}

// The role matrix of the finance pages: finance may act, auditors read,
// everyone else gets 403.
func TestBillingRoleMatrix(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	clients := map[string]*apptest.Client{}
	for _, role := range policies.StaffRoles {
		tt.MustCreateStaff(t, role+"@test.local", role)
		clients[role] = tt.LoginStaff(t, role+"@test.local")
	}
	read := []string{"/admin/billing/invoices", "/admin/billing/runs", "/admin/billing/prices", "/admin/billing/prices/new",
		"/admin/billing/seller", "/admin/billing/revenue", "/admin/billing/export.csv"}
	write := map[string]url.Values{
		"/admin/billing/runs":   {"period": {"1999-13"}},
		"/admin/billing/seller": {"name": {""}},
		"/admin/billing/prices": {"valid_from": {"x"}},
	}
	for role, c := range clients {
		canRead := role == policies.RoleFinance || role == policies.RoleAuditor
		for _, p := range read {
			res := c.Get(p)
			if canRead && res.Status != 200 {
				t.Errorf("GET %s as %s: %d", p, role, res.Status)
			}
			if !canRead && res.Status != http.StatusForbidden {
				t.Errorf("GET %s as %s: %d, want 403", p, role, res.Status)
			}
		}
		for p, form := range write {
			res := c.PostForm(p, form)
			if role == policies.RoleFinance && (res.Status == http.StatusForbidden || res.Status >= 500) {
				t.Errorf("POST %s as finance: %d", p, res.Status)
			}
			if role != policies.RoleFinance && res.Status != http.StatusForbidden {
				t.Errorf("POST %s as %s: %d, want 403", p, role, res.Status)
			}
		}
		nav := c.Get("/admin")
		if has := strings.Contains(nav.Body, `href="/admin/billing/invoices"`); has != canRead {
			t.Errorf("finance navigation for %s: %v", role, has)
		}
	}
	// Seller identity: invalid input re-renders with field errors.
	res := clients[policies.RoleFinance].PostForm("/admin/billing/seller", url.Values{"name": {"X"}, "vat_id": {"DE1"}, "iban": {"DE00"}, "country": {"DE"}, "payment_terms_days": {"30"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "DE123456789") || !strings.Contains(res.Body, "IBAN is not valid") {
		t.Fatalf("seller validation: %d", res.Status)
	}
	form := url.Values{}
	s := billingtest.Seller()
	for k, v := range map[string]string{"name": s.Name, "street": s.Street, "postal_code": s.PostalCode, "city": s.City, "country": "DE",
		"vat_id": s.VATID, "tax_number": s.TaxNumber, "register_id": s.RegisterID, "iban": "DE89 3704 0044 0532 0130 00", "bic": s.BIC,
		"bank_name": s.BankName, "email": s.Email, "phone": s.Phone, "payment_terms_days": "14"} {
		form.Set(k, v)
	}
	if res := clients[policies.RoleFinance].PostForm("/admin/billing/seller", form); res.Status != http.StatusSeeOther {
		t.Fatalf("seller save: %d %s", res.Status, res.Body)
	}
}

// CLI: invoice run, reconcile (exit 1 after tampering), finalize, export.
// It sets DATABASE_URL, so it does not run in parallel.
func TestInvoiceCLI(t *testing.T) {
	gdb, u := cliDatabase(t)
	s := &billing.Service{DB: gdb, Location: billingtest.Berlin(t)}
	ctx := policies.WithPrincipal(context.Background(), policies.System("test"))
	if _, err := s.UpdateSeller(ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.EnsureInitialPriceList(ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	pid := billingProvider(t, gdb, "Nordlys Forsikring AS", "NO", "NO123456785MVA")
	billingtest.MustDeliveries(t, gdb, pid, billing.KindPull, time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC), time.Minute, 25, "cli")

	if code, out, errOut := runCLI(t, "", "invoice", "run", "--period", "2026-10"); code != 0 || !strings.Contains(out, "1 drafts created") {
		t.Fatalf("invoice run: %d %s %s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "", "invoice", "run", "--period", "2026-10"); code != 0 || !strings.Contains(out, "0 drafts created") {
		t.Fatalf("second run: %d %s", code, out)
	}
	if code, out, _ := runCLI(t, "", "invoice", "reconcile", "--period", "2026-10"); code != 0 || !strings.Contains(out, "no differences") {
		t.Fatalf("reconcile: %d %s", code, out)
	}
	if code, out, errOut := runCLI(t, "", "invoice", "finalize", "--period", "2026-10"); code != 0 || !strings.Contains(out, "1 finalized") {
		t.Fatalf("finalize: %d %s %s", code, out, errOut)
	}
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "", "invoice", "export", "--period", "2026-10", "--dir", dir); code != 0 || !strings.Contains(out, "exported 1") {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "CD-*"))
	csv, _ := os.ReadFile(filepath.Join(dir, "cardata-invoices-2026-10.csv"))
	if len(files) != 2 || !bytes.Contains(csv, []byte(",O,")) {
		t.Fatalf("exported %v; csv %s", files, csv)
	}
	su, err := db.Open(dbtest.SuperuserURL(t, u), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(su)
	if err := su.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SET LOCAL session_replication_role = replica").Error; err != nil {
			return err
		}
		return tx.Exec("UPDATE invoice_lines SET net_amount = net_amount + 1").Error
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "invoice", "reconcile", "--period", "2026-10")
	if code != 1 || !strings.Contains(out, "DIFFERENCE") || !strings.Contains(out, "net amount: stored 1.50, expected 0.50") {
		t.Fatalf("tampered reconcile: %d %s %s", code, out, errOut)
	}
}

// Providers read their own invoices in the portal, and only theirs.
func TestProvidersSeeTheirOwnInvoices(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	if _, err := tt.App.Billing.UpdateSeller(tt.Ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tt.App.Billing.EnsureInitialPriceList(tt.Ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU12345675")
	b := mustActiveProvider(t, tt, "Werkstatt Süd AG", "DE", "DE123456788")
	for _, p := range []int64{a.Provider.ID, b.Provider.ID} {
		billingtest.MustDeliveries(t, tt.DB, p, billing.KindPull, time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC), time.Hour, 12, fmt.Sprint("p", p))
	}
	if _, err := tt.App.Billing.RunPeriod(tt.Ctx, "2026-10", billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
		t.Fatal(err)
	}
	ids := map[int64]int64{}
	for _, p := range []int64{a.Provider.ID, b.Provider.ID} {
		list, _, _ := tt.App.Billing.ListInvoices(tt.Ctx, billing.InvoiceFilter{ProviderID: p})
		inv, err := tt.App.Billing.Finalize(tt.Ctx, list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = inv.ID
	}
	c := loginProvider(t, tt, a.Admin.Email, providerPassword)
	page := c.Get("/portal/invoices")
	if page.Status != 200 || !strings.Contains(page.Body, fmt.Sprintf("/portal/invoices/%d/pdf", ids[a.Provider.ID])) ||
		strings.Contains(page.Body, fmt.Sprintf("/portal/invoices/%d/pdf", ids[b.Provider.ID])) {
		t.Fatalf("portal invoice list: %d", page.Status)
	}
	pdf := c.Get(fmt.Sprintf("/portal/invoices/%d/pdf", ids[a.Provider.ID]))
	stored, _ := tt.App.Billing.Document(tt.Ctx, ids[a.Provider.ID], "pdf")
	if pdf.Status != 200 || !bytes.Equal([]byte(pdf.Body), stored.Content) {
		t.Fatalf("own pdf: %d", pdf.Status)
	}
	if res := c.Get(fmt.Sprintf("/portal/invoices/%d/xml", ids[b.Provider.ID])); res.Status != http.StatusNotFound {
		t.Fatalf("another provider's invoice: %d", res.Status)
	}
	if res := tt.Client(t).Get("/portal/invoices"); res.Status != http.StatusSeeOther {
		t.Fatalf("anonymous: %d", res.Status)
	}
}
