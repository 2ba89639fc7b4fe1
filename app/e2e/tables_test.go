package e2e

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/policies"
)

// csvRows parses a CSV download (status 200, a CSV content type).
func csvRows(t *testing.T, res *apptest.Response, what string) [][]string {
	t.Helper()
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("%s: %d %s %.300s", what, res.Status, res.Header.Get("Content-Type"), res.Body)
	}
	rows, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, res.Body)
	}
	return rows
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// inOrder fails unless the parts appear in body in this order.
func inOrder(t *testing.T, what, body string, parts ...string) {
	t.Helper()
	last := -1
	for _, p := range parts {
		i := strings.Index(body, p)
		if i < 0 {
			t.Fatalf("%s: %q missing", what, p)
		}
		if i < last {
			t.Fatalf("%s: %q out of order (want %q)", what, p, parts)
		}
		last = i
	}
}

// Staff lists sort on the server by a whitelisted column kept in the URL
// (with the filters), and export the same rows as CSV with the reader's
// language in the header; roles that cannot see a list cannot export it.
func TestTablesSortFiltersAndCSV(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	alpen := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU12345675")
	sued := mustActiveProvider(t, tt, "Werkstatt Süd AG", "DE", "DE123456788")
	mustRegisterProvider(t, tt, "Zebra Mobility AG", "AT", "ATU13585627")
	for _, r := range []*onboarding.Registered{alpen, sued} {
		if _, err := onboardingFor(tt).RequestMarkets(tt.Ctx, r.Provider.ID, []string{"FR"}); err != nil {
			t.Fatal(err)
		}
	}
	tt.MustCreateStaff(t, "pm@tables.example", "partner_manager")
	tt.MustCreateStaff(t, "auditor@tables.example", "auditor")
	tt.MustCreateStaff(t, "support@tables.example", "support")
	pm := tt.LoginStaff(t, "pm@tables.example")

	// The review queue's market requests sort by their own keys (one ?sort per page).
	queue := pm.Get("/admin/review-queue?sort=request_provider&dir=desc").Body
	inOrder(t, "market requests by provider desc", queue, `#markets">Werkstatt Süd AG`, `#markets">Alpen Versicherung AG`)
	inOrder(t, "market requests by provider", pm.Get("/admin/review-queue?sort=request_provider").Body, `#markets">Alpen Versicherung AG`, `#markets">Werkstatt Süd AG`)
	if !strings.Contains(queue, `href="/admin/review-queue?sort=answer_name"`) {
		t.Fatal("the answers table has no sort links")
	}

	// Ascending and descending by name; the default is by name.
	inOrder(t, "name asc", pm.Get("/admin/providers?sort=name").Body, "Alpen Versicherung", "Werkstatt Süd", "Zebra Mobility")
	desc := pm.Get("/admin/providers?sort=name&dir=desc").Body
	inOrder(t, "name desc", desc, "Zebra Mobility", "Werkstatt Süd", "Alpen Versicherung")
	if !strings.Contains(desc, `aria-sort="descending"`) {
		t.Fatal("the sorted column has no aria-sort")
	}
	inOrder(t, "-name", pm.Get("/admin/providers?sort=-name").Body, "Zebra Mobility", "Werkstatt Süd", "Alpen Versicherung")
	inOrder(t, "seat desc", pm.Get("/admin/providers?sort=seat&dir=desc").Body, "Werkstatt Süd", "Alpen Versicherung")
	// An unknown key or an injection attempt falls back to the default order.
	for _, bad := range []string{"name;drop", "name%3Bdrop%20table%20providers", "nope"} {
		res := pm.Get("/admin/providers?sort=" + bad + "&dir=desc")
		if res.Status != http.StatusOK {
			t.Fatalf("sort=%s: %d", bad, res.Status)
		}
		inOrder(t, "sort="+bad, res.Body, "Alpen Versicherung", "Werkstatt Süd", "Zebra Mobility")
	}
	// Sort links keep the filters; the filter form and the export link keep the sort.
	page := pm.Get("/admin/providers?status=active&sort=name").Body
	for _, want := range []string{
		`href="/admin/providers?dir=desc&amp;sort=name&amp;status=active"`,
		`<input type="hidden" name="sort" value="name">`,
		`href="/admin/providers/export.csv?sort=name&amp;status=active"`,
	} {
		if !strings.Contains(page, want) {
			t.Fatalf("filtered page lacks %s", want)
		}
	}
	if strings.Contains(page, "Zebra Mobility") {
		t.Fatal("the status filter let a submitted application through")
	}

	// The export has the page's rows in the page's order, and the German
	// header for a German reader.
	rows := csvRows(t, pm.Get("/admin/providers/export.csv?status=active&sort=name&dir=desc"), "providers csv")
	if len(rows) != 3 || rows[0][1] != "company" || rows[1][1] != "Werkstatt Süd AG" || rows[2][1] != "Alpen Versicherung AG" {
		t.Fatalf("providers csv = %q", rows)
	}
	if !strings.HasSuffix(rows[1][6], "Z") {
		t.Fatalf("registered_at is not UTC RFC 3339: %q", rows[1][6])
	}
	de := tt.LoginStaff(t, "pm@tables.example")
	de.Header.Set("Accept-Language", "de-AT,de;q=0.9")
	rows = csvRows(t, de.Get("/admin/providers/export.csv"), "providers csv de")
	if rows[0][0] != "Anbieter-ID" || rows[0][1] != "Unternehmen" || len(rows) != 4 {
		t.Fatalf("german providers csv = %q", rows)
	}
	if res := pm.Get("/admin/providers/export.csv?status=bogus"); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("export with a bad filter: %d", res.Status)
	}

	// The audit trail: sorted, exported with its filters; support may not.
	au := tt.LoginStaff(t, "auditor@tables.example")
	inOrder(t, "audit by action", au.Get("/admin/audit?sort=action").Body, "provider.approve", "provider.claim", "provider.submit")
	rows = csvRows(t, au.Get("/admin/audit/export.csv?action=provider.approve&sort=id"), "audit csv")
	if len(rows) != 3 || rows[1][4] != "provider.approve" || rows[2][4] != "provider.approve" || atoi(rows[1][0]) >= atoi(rows[2][0]) {
		t.Fatalf("audit csv = %q", rows)
	}
	su := tt.LoginStaff(t, "support@tables.example")
	if res := su.Get("/admin/audit/export.csv"); res.Status != http.StatusForbidden {
		t.Fatalf("support's audit export: %d", res.Status)
	}
	if res := su.Get("/admin/audit"); res.Status != http.StatusForbidden {
		t.Fatalf("support's audit trail: %d", res.Status)
	}
	if rows := csvRows(t, su.Get("/admin/providers/export.csv"), "support providers csv"); len(rows) != 4 {
		t.Fatalf("support providers csv = %q", rows)
	}

	// Price list versions and a job's run history sort by their columns.
	tt.MustCreateStaff(t, "fin@tables.example", policies.RoleFinance)
	fin := tt.LoginStaff(t, "fin@tables.example")
	for _, v := range []billing.Version{
		{ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Currency: "EUR", Note: "Zeta note", CreatedBy: "fin"},
		{ValidFrom: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Currency: "EUR", Note: "Alpha note", CreatedBy: "fin"},
	} {
		if err := tt.DB.Omit("Items").Create(&v).Error; err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "prices default", fin.Get("/admin/billing/prices").Body, "Alpha note", "Zeta note")
	inOrder(t, "prices valid_from", fin.Get("/admin/billing/prices?sort=valid_from").Body, "Zeta note", "Alpha note")
	inOrder(t, "prices note desc", fin.Get("/admin/billing/prices?sort=note&dir=desc").Body, "Zeta note", "Alpha note")
	now := time.Now().UTC()
	for _, r := range []jobs.RunRecord{
		{Job: "sessions.purge", Trigger: jobs.TriggerUI, ActorLabel: "actor-succeeded", Outcome: jobs.Succeeded},
		{Job: "sessions.purge", Trigger: jobs.TriggerUI, ActorLabel: "actor-failed", Outcome: jobs.Failed},
		{Job: "sessions.purge", Trigger: jobs.TriggerUI, ActorLabel: "actor-skipped", Outcome: jobs.Skipped},
	} {
		r.StartedAt, r.HeartbeatAt, r.FinishedAt, r.Figures = now, now, &now, jobs.Figures{}
		if err := tt.DB.Create(&r).Error; err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "runs default", fin.Get("/admin/jobs/sessions.purge").Body, "actor-skipped", "actor-failed", "actor-succeeded")
	inOrder(t, "runs by outcome", fin.Get("/admin/jobs/sessions.purge?sort=outcome").Body, "actor-failed", "actor-skipped", "actor-succeeded")
}

// A provider's portal exports (delivery log, invoices) hold its own rows
// only, sort like the page, and speak the reader's language; a portal role
// that cannot see the invoices cannot export them; the finance export has
// German headers for a German reader.
func TestTablesPortalExportsOwnRowsOnly(t *testing.T) {
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
	var numbers = map[int64][]string{}
	for _, period := range []string{"2026-09", "2026-10"} {
		if _, err := bs.RunPeriod(ctx, period, billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
			t.Fatal(err)
		}
		list, _, err := bs.ListInvoices(ctx, billing.InvoiceFilter{Period: period, DocType: billing.DocInvoice})
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range list {
			fin, err := bs.Finalize(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			numbers[fin.ProviderID] = append(numbers[fin.ProviderID], *fin.Number)
		}
	}
	if len(numbers[aid]) != 2 || len(numbers[bid]) != 1 {
		t.Fatalf("invoices: %v", numbers)
	}
	svc := onboardingFor(tt)
	inv, err := svc.InviteProviderUser(obProviderCtx(a.Admin), aid, onboarding.Invite{Email: "dev@tables.example", Name: "Dev", Role: onboarding.RoleProviderDeveloper})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AcceptInvitation(tt.Ctx, inv.Link[len(tt.App.Cfg.PublicURL+"/portal/invitations/"):], providerPassword); err != nil {
		t.Fatal(err)
	}
	pa := loginProvider(t, tt, a.Admin.Email, providerPassword)

	// The delivery log: A's 42 records in the range, none of B's.
	rows := csvRows(t, pa.Get("/portal/deliveries/export.csv?from=2026-09-01&to=2026-10-31"), "portal deliveries csv")
	if len(rows) != 43 || rows[0][0] != "delivery_id" {
		t.Fatalf("portal deliveries csv: %d rows, header %q", len(rows), rows[0])
	}
	for _, r := range rows[1:] {
		if !strings.HasPrefix(r[0], "a9-") && !strings.HasPrefix(r[0], "a10-") {
			t.Fatalf("provider A's export has a foreign row %q", r)
		}
	}
	if rows := csvRows(t, pa.Get("/portal/deliveries/export.csv?from=2026-10-01&to=2026-10-31&kind=push"), "push only"); len(rows) != 1 {
		t.Fatalf("kind=push: %q", rows)
	}
	if res := pa.Get("/portal/deliveries/export.csv?from=yesterday"); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad range: %d", res.Status)
	}

	// The invoices: A's two, sorted like the page, none of B's.
	page := pa.Get("/portal/invoices?sort=period&dir=desc").Body
	inOrder(t, "portal invoices period desc", page, numbers[aid][1], numbers[aid][0])
	inOrder(t, "portal invoices period asc", pa.Get("/portal/invoices?sort=period").Body, numbers[aid][0], numbers[aid][1])
	if !strings.Contains(page, `href="/portal/invoices/export.csv?dir=desc&amp;sort=period"`) {
		t.Fatal("the export link does not keep the order")
	}
	rows = csvRows(t, pa.Get("/portal/invoices/export.csv?dir=desc&sort=period"), "portal invoices csv")
	if len(rows) != 3 || rows[1][0] != numbers[aid][1] || rows[2][0] != numbers[aid][0] {
		t.Fatalf("portal invoices csv = %q (want %v)", rows, numbers[aid])
	}
	if strings.Contains(pa.Get("/portal/invoices/export.csv").Body, numbers[bid][0]) {
		t.Fatal("provider A's export names provider B's invoice")
	}
	pa.Header.Set("Accept-Language", "de")
	pa.SetCookie("cardata_lang", "")
	if rows := csvRows(t, pa.Get("/portal/invoices/export.csv"), "german invoices csv"); rows[0][0] != "Nummer" || rows[0][8] != "Bezahlt" {
		t.Fatalf("german invoices header = %q", rows[0])
	}
	// The tickets: A's own (in the list's order, German header), none of B's.
	for _, tk := range []struct {
		r       *onboarding.Registered
		subject string
	}{{a, "Alpha tickets export"}, {a, "Beta tickets export"}, {b, "Foreign tickets export"}} {
		if _, err := tt.App.Support.OpenTicket(asProvider(tk.r), support.NewTicket{Subject: tk.subject, Description: "d",
			Category: support.CategoryAPIData, Priority: support.P3}); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(pa.Get("/portal/tickets?sort=subject&dir=desc").Body, `href="/portal/tickets/export.csv?dir=desc&amp;sort=subject"`) {
		t.Fatal("the ticket export link does not keep the order")
	}
	rows = csvRows(t, pa.Get("/portal/tickets/export.csv?dir=desc&sort=subject"), "portal tickets csv")
	if len(rows) != 3 || rows[0][0] != "Ticket" || rows[0][1] != "Betreff" || rows[1][1] != "Beta tickets export" || rows[2][1] != "Alpha tickets export" {
		t.Fatalf("portal tickets csv = %q", rows)
	}
	if body := pa.Get("/portal/tickets/export.csv").Body; strings.Contains(body, "Foreign") {
		t.Fatal("provider A's ticket export names provider B's ticket")
	}
	dev := loginProvider(t, tt, "dev@tables.example", providerPassword)
	if res := dev.Get("/portal/invoices/export.csv"); res.Status != http.StatusForbidden {
		t.Fatalf("developer's invoice export: %d", res.Status)
	}
	// The developer's API clients sort by name.
	for _, name := range []string{"Zulu backend", "Alpha backend"} {
		if _, err := svc.CreateAPIClient(tt.Ctx, aid, name); err != nil {
			t.Fatal(err)
		}
	}
	inOrder(t, "clients default", dev.Get("/portal/clients").Body, "Alpha backend", "Zulu backend")
	inOrder(t, "clients name desc", dev.Get("/portal/clients?sort=name&dir=desc").Body, "Zulu backend", "Alpha backend")
	inOrder(t, "clients name", dev.Get("/portal/clients?sort=name").Body, "Alpha backend", "Zulu backend")

	// The staff side: the finance export's header in German.
	tt.MustCreateStaff(t, "fin@tables.example", policies.RoleFinance)
	fin := tt.LoginStaff(t, "fin@tables.example")
	fin.Header.Set("Accept-Language", "de-DE")
	if res := fin.Get("/portal/tickets/export.csv"); res.Status != http.StatusForbidden {
		t.Fatalf("staff on the portal ticket export: %d", res.Status)
	}
	if rows := csvRows(t, fin.Get("/admin/billing/export.csv?period=2026-10"), "finance export"); rows[0][0] != "Nummer" || len(rows) != 3 {
		t.Fatalf("finance export de = %q", rows)
	}
	rows = csvRows(t, fin.Get(fmt.Sprintf("/admin/deliveries/%d/export.csv?from=2026-10-01&to=2026-10-31", bid)), "staff ledger csv")
	if len(rows) != 13 || rows[0][0] != "Übermittlungs-ID" || !strings.HasPrefix(rows[1][0], "b10-") {
		t.Fatalf("staff ledger csv = %d rows, %q", len(rows), rows[:2])
	}
}
