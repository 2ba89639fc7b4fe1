package e2e

import (
	"fmt"
	"html"
	"regexp"
	"sort"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/policies"
)

var tagRe = regexp.MustCompile(`<[^>]*>`)

// figure is the value a dashboard shows for the figure labelled label
// ("" when the page has none), and the link behind it.
func figure(t *testing.T, body, label string) (value, link string) {
	t.Helper()
	re := regexp.MustCompile(`(?s)data-figure="` + regexp.QuoteMeta(html.EscapeString(label)) + `">.*?<dd>(.*?)</dd>`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return "", ""
	}
	if l := regexp.MustCompile(`href="([^"]*)"`).FindStringSubmatch(m[1]); l != nil {
		link = html.UnescapeString(l[1])
	}
	dd := regexp.MustCompile(`(?s)<span class="detail">.*?</span>`).ReplaceAllString(m[1], "")
	return strings.TrimSpace(html.UnescapeString(tagRe.ReplaceAllString(dd, ""))), link
}

func wantFigure(t *testing.T, who, body, label, want, wantLink string) {
	t.Helper()
	got, link := figure(t, body, label)
	if got != want {
		t.Errorf("%s: %q shows %q, want %q", who, label, got, want)
	}
	if wantLink != "" && link != wantLink {
		t.Errorf("%s: %q links to %q, want %q", who, label, link, wantLink)
	}
}

// chartRow is a row of a chart's table ("Show as table"): its cells' text.
func chartRow(body, caption, label string) string {
	i := strings.Index(body, "<caption>"+html.EscapeString(caption)+"</caption>")
	if i < 0 {
		return ""
	}
	table := body[i:]
	table = table[:strings.Index(table, "</table>")]
	for _, row := range strings.Split(table, "<tr>") {
		cells := strings.Fields(html.UnescapeString(tagRe.ReplaceAllString(strings.ReplaceAll(row, "</t", " </t"), "")))
		if len(cells) > 0 && strings.Join(cells, " ") != "" && strings.HasPrefix(strings.Join(cells, " "), label+" ") {
			return strings.Join(cells, " ")
		}
	}
	return ""
}

// The staff dashboard follows the live data, each role sees its own
// sections, and the figures link to the filtered lists.
func TestStaffDashboardsFollowLiveData(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "maria@dash.test", policies.RolePartnerManager)
	tt.MustCreateStaff(t, "sam@dash.test", policies.RoleSupport)
	tt.MustCreateStaff(t, "ada@dash.test", policies.RoleAdmin)
	tt.MustCreateStaff(t, "multi@dash.test", policies.RolePartnerManager, policies.RoleSupport)
	maria, sam, ada, multi := tt.LoginStaff(t, "maria@dash.test"), tt.LoginStaff(t, "sam@dash.test"),
		tt.LoginStaff(t, "ada@dash.test"), tt.LoginStaff(t, "multi@dash.test")
	dash := func(c *apptest.Client, who string) string {
		t.Helper()
		res := c.Get("/admin")
		if res.Status != 200 {
			t.Fatalf("%s /admin: %d", who, res.Status)
		}
		return res.Body
	}

	// Sections per role; a person with several roles sees each of theirs.
	sections := map[string][]string{"Partner management": nil, "Support": nil, "System": nil, "Finance": nil}
	for who, c := range map[string]*apptest.Client{"maria": maria, "sam": sam, "ada": ada, "multi": multi} {
		b := dash(c, who)
		for s := range sections {
			if regexp.MustCompile(`id="dash-\d+">` + s + `</h2>`).MatchString(b) {
				sections[s] = append(sections[s], who)
			}
		}
		if !strings.Contains(b, `role="img"`) || !strings.Contains(b, "<title>") {
			t.Errorf("%s: no accessible chart", who)
		}
	}
	for s, want := range map[string]string{"Partner management": "maria multi", "Support": "multi sam", "System": "ada", "Finance": ""} {
		got := strings.Fields(strings.Join(sections[s], " "))
		sortStrings(got)
		if strings.Join(got, " ") != want {
			t.Errorf("section %s shown to %v, want %q", s, got, want)
		}
	}

	// Partner management: an application submitted is waiting, the oldest links to it.
	wantFigure(t, "maria", dash(maria, "maria"), "Waiting for review", "0", "/admin/review-queue")
	r := mustRegisterProvider(t, tt, "Dash Fleet GmbH", "AT", "ATU10223006")
	b := dash(maria, "maria")
	wantFigure(t, "maria", b, "Waiting for review", "1", "/admin/review-queue")
	wantFigure(t, "maria", b, "Oldest waiting", "0 days", fmt.Sprintf("/admin/providers/%d", r.Provider.ID))
	if !strings.Contains(b, "Dash Fleet GmbH") {
		t.Error("the oldest application is not named")
	}
	if row := chartRow(b, "Providers by status", "submitted"); row != "submitted 1" {
		t.Errorf("providers by status, submitted: %q", row)
	}
	if !strings.Contains(b, `href="/admin/providers?status=submitted"`) {
		t.Error("the chart's row does not link to the filtered list")
	}

	// Support: a P1 ticket opened by a provider counts as open and P1.
	wantFigure(t, "sam", dash(sam, "sam"), "Open tickets", "0", "/admin/tickets")
	a := mustActiveProvider(t, tt, "Dash Insurance AG", "DE", "DE123456788")
	if _, err := supportFor(tt, nil).OpenTicket(asProvider(a), support.NewTicket{Subject: "Everything is down", Description: "500 on every call",
		Category: support.CategoryAPIData, Priority: support.P1}); err != nil {
		t.Fatal(err)
	}
	b = dash(sam, "sam")
	wantFigure(t, "sam", b, "Open tickets", "1", "/admin/tickets")
	wantFigure(t, "sam", b, "P1 – production down", "1", "/admin/tickets?priority=P1")
	if row := chartRow(b, "Open tickets by priority", "P1"); row != "P1 1" {
		t.Errorf("open tickets by priority, P1: %q", row)
	}
	if strings.Contains(b, `data-figure="Waiting for review"`) {
		t.Error("support sees the partner managers' figures")
	}
	// The multi-role user sees both, with the same figures.
	b = dash(multi, "multi")
	wantFigure(t, "multi", b, "Open tickets", "1", "/admin/tickets")
	wantFigure(t, "multi", b, "Waiting for review", "1", "/admin/review-queue")

	// System: a new staff user counts.
	wantFigure(t, "ada", dash(ada, "ada"), "Active users", "4", "/admin/users")
	tt.MustCreateStaff(t, "fin@dash.test", policies.RoleFinance)
	b = dash(ada, "ada")
	wantFigure(t, "ada", b, "Active users", "5", "/admin/users")
	if row := chartRow(b, "Staff users by role", "Finance"); row != "Finance 1" {
		t.Errorf("staff by role, finance: %q", row)
	}
	wantFigure(t, "ada", b, "Audit chain", "not checked yet", "/admin/jobs/audit.verify")
}

// Finance's dashboard follows invoices through their life, and the portal
// home shows each provider its own figures only.
func TestFinanceDashboardAndPortalHomeFollowInvoices(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, false)
	tt, bs := w.tt, w.tt.App.Billing
	b := w.fiona.Get("/admin").Body
	wantFigure(t, "fiona", b, "Drafts awaiting finalization", "2", "/admin/billing/invoices?status=draft")
	wantFigure(t, "fiona", b, "Open receivables", "€0.00", "/admin/billing/revenue")
	wantFigure(t, "fiona", b, "Last invoice run", "succeeded", "")
	if _, err := bs.Finalize(tt.Ctx, w.deInv.ID); err != nil {
		t.Fatal(err)
	}
	b = w.fiona.Get("/admin").Body
	wantFigure(t, "fiona", b, "Drafts awaiting finalization", "1", "")
	wantFigure(t, "fiona", b, "Open receivables", "€119.00", "")
	wantFigure(t, "fiona", b, "Overdue", "€0.00", "/admin/billing/invoices?overdue=1")
	if row := chartRow(b, "Revenue by month", "October 2026"); row != "October 2026 €119.00 €0.00" {
		t.Errorf("revenue chart, October: %q", row)
	}
	if !strings.Contains(b, `href="/admin/billing/invoices?period=2026-10"`) {
		t.Error("the revenue chart's month does not link to its invoices")
	}
	// The auditor holds no finance section (and the finance figures are finance's).
	if ob := w.otto.Get("/admin").Body; strings.Contains(ob, `data-figure="Drafts awaiting finalization"`) {
		t.Error("the auditor sees finance's figures")
	}

	// The portal home: the German provider's open invoice, never the Austrian's.
	if _, err := bs.Finalize(tt.Ctx, w.atInv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := supportFor(tt, nil).OpenTicket(asProvider(w.at), support.NewTicket{Subject: "Question about pushes", Description: "d",
		Category: support.CategoryAPIData, Priority: support.P3}); err != nil {
		t.Fatal(err)
	}
	de := loginProvider(t, tt, w.de.Admin.Email, providerPassword)
	at := loginProvider(t, tt, w.at.Admin.Email, providerPassword)
	db, ab := de.Get("/portal").Body, at.Get("/portal").Body
	wantFigure(t, "de", db, "Open amount", "€119.00", "/portal/invoices")
	wantFigure(t, "de", db, "Open invoices", "1", "/portal/invoices")
	wantFigure(t, "de", db, "Open tickets", "0", "/portal/tickets")
	wantFigure(t, "at", ab, "Open amount", "€50.00", "/portal/invoices")
	wantFigure(t, "at", ab, "Open tickets", "1", "/portal/tickets")
	for _, s := range []string{"€50.00", "Question about pushes", "Alpen"} {
		if strings.Contains(db, s) {
			t.Errorf("the German provider's home shows %q", s)
		}
	}
	// No deliveries this month yet: the first tier is where it stands.
	wantFigure(t, "de", db, "Billed deliveries", "0", "/portal/deliveries")
	if !strings.Contains(db, `class="current" aria-current="step">1 to 10,000`) {
		t.Error("the price ladder does not mark the first tier")
	}
	wantFigure(t, "de", db, "Endpoints", "0", "/portal/webhooks")
}

func sortStrings(s []string) { sort.Strings(s) }
