package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/audit"
)

// A partner manager claims ticked applications of the review queue at
// once: each becomes hers (audited like the single claim); one another
// manager claimed first is reported by name and stays his; posting again
// skips what is already hers. Support may not claim.
func TestPartnerManagerBulkClaim(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := mustRegisterProvider(t, tt, "Erste Flotte AG", "AT", "ATU13585627")
	b := mustRegisterProvider(t, tt, "Zweite Flotte AG", "DE", "DE136695976")
	c := mustRegisterProvider(t, tt, "Dritte Flotte AG", "AT", "ATU46080404")
	mia := tt.MustCreateStaff(t, "mia@claim.test", policies.RolePartnerManager)
	max := tt.MustCreateStaff(t, "max@claim.test", policies.RolePartnerManager)
	tt.MustCreateStaff(t, "sue@claim.test", policies.RoleSupport)
	miaC, maxC := tt.LoginStaff(t, "mia@claim.test"), tt.LoginStaff(t, "max@claim.test")

	// Max claims C alone, after Mia's queue page was drawn.
	queue := miaC.Get("/admin/review-queue")
	for _, id := range []int64{a.Provider.ID, b.Provider.ID, c.Provider.ID} {
		if !strings.Contains(queue.Body, fmt.Sprintf(`id="select-%d"`, id)) {
			t.Fatalf("queue lacks a checkbox for %d", id)
		}
	}
	if !strings.Contains(queue.Body, `id="claim-selected"`) {
		t.Fatal("queue lacks Claim selected")
	}
	if r := maxC.PostForm(fmt.Sprintf("/admin/providers/%d/transitions/claim", c.Provider.ID), url.Values{}); r.Status != http.StatusSeeOther {
		t.Fatalf("single claim: %d", r.Status)
	}

	ids := url.Values{"ids": {itoa(a.Provider.ID), itoa(b.Provider.ID), itoa(c.Provider.ID)}}
	res := miaC.PostForm("/admin/review-queue/claim", ids)
	done, refused := section(res.Body, "table", "claim-done"), section(res.Body, "table", "claim-refused")
	if res.Status != http.StatusOK || strings.Count(done, "<tr data-provider") != 2 || strings.Count(refused, "<tr data-provider") != 1 ||
		!strings.Contains(refused, "Dritte Flotte AG") || !strings.Contains(refused, "already claimed by "+max.Name) {
		t.Fatalf("bulk claim: %d done %s refused %s", res.Status, done, refused)
	}
	var rows []struct {
		ID         int64
		Status     string
		ReviewerID *int64
	}
	if err := tt.DB.Raw("SELECT id, status, reviewer_id FROM providers WHERE id IN ? ORDER BY id",
		[]int64{a.Provider.ID, b.Provider.ID, c.Provider.ID}).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		want := mia.ID
		if r.ID == c.Provider.ID {
			want = max.ID
		}
		if r.Status != "in_review" || r.ReviewerID == nil || *r.ReviewerID != want {
			t.Fatalf("provider %d after bulk claim: %s %v (want reviewer %d)", r.ID, r.Status, r.ReviewerID, want)
		}
	}
	entries, _, err := audit.List(tt.Ctx, tt.DB, audit.Filter{Action: "provider.claim", Actor: "mia@claim.test"})
	if err != nil || len(entries) != 2 {
		t.Fatalf("mia's claim audit entries: %v %d", err, len(entries))
	}
	// The queue shows her as the reviewer.
	if q := miaC.Get("/admin/review-queue"); !strings.Contains(rowOf(q.Body, "Erste Flotte AG"), mia.Name) {
		t.Fatalf("queue row: %s", rowOf(q.Body, "Erste Flotte AG"))
	}

	// Again: already hers, skipped; nothing changes.
	res = miaC.PostForm("/admin/review-queue/claim", url.Values{"ids": {itoa(a.Provider.ID)}})
	if sk := section(res.Body, "table", "claim-skipped"); !strings.Contains(sk, "already yours") || strings.Contains(res.Body, `id="claim-done"`) {
		t.Fatalf("re-claim: %s", res.Body)
	}
	// Nothing ticked: told so.
	if r := miaC.PostForm("/admin/review-queue/claim", url.Values{}); r.Status != http.StatusSeeOther || location(r) != "/admin/review-queue" {
		t.Fatalf("empty claim: %d %s", r.Status, location(r))
	}
	if r := tt.LoginStaff(t, "sue@claim.test").PostForm("/admin/review-queue/claim", url.Values{"ids": {itoa(b.Provider.ID)}}); r.Status != http.StatusForbidden {
		t.Fatalf("support bulk claim: %d", r.Status)
	}
}

// The header's search finds only the kinds the role may open: finance
// finds invoices and tickets but no vehicles, support tickets and vehicles
// but no invoices; a short query is refused kindly.
func TestHeaderSearchByRole(t *testing.T) {
	t.Parallel()
	w := newFinanceWorld(t, true)
	tt := w.tt
	tk, err := tt.App.Support.OpenTicket(asProvider(w.de), support.NewTicket{Subject: "Werkstatt data stale", Description: "Described.",
		Category: support.CategoryAPIData, Priority: support.P2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tt.App.Vehicles.RegisterVehicle(tt.Ctx, vehicles.NewVehicle{VIN: "WBA11AA0X0F0SUCH1", Brand: "BMW", Model: "X1", Drivetrain: "phev",
		Market: "AT", TelematicsCapable: true, SIMActive: true}); err != nil {
		t.Fatal(err)
	}
	tt.MustCreateStaff(t, "sam@search.test", policies.RoleSupport)
	sam := tt.LoginStaff(t, "sam@search.test")
	number := *w.deInv.Number

	// The box is in every staff page's header, labelled, as a search landmark.
	home := w.fiona.Get("/admin")
	if !strings.Contains(home.Body, `role="search" class="top-search"`) || !strings.Contains(home.Body, `<label for="top-search-q"`) {
		t.Fatal("no search box in the header")
	}
	for _, c := range []struct {
		who                *apptest.Client
		q                  string
		want, not          []string
		wantKinds, noKinds []string
	}{
		{w.fiona, number, []string{number}, nil, []string{"search-invoices"}, nil},
		{w.fiona, "werkstatt", []string{"Werkstatt Süd AG", tk.Number() + " Werkstatt data stale"}, nil, []string{"search-providers", "search-tickets"}, nil},
		{w.fiona, "WBA11AA0X0F0SUCH", nil, []string{"WBA11AA0X0F0SUCH1", `href="/admin/vehicles/`}, nil, []string{"search-vehicles"}},
		{sam, number, nil, []string{`href="/admin/billing/invoices/`}, nil, []string{"search-invoices"}},
		{sam, "wba11aa0x0f0such", []string{"WBA11AA0X0F0SUCH1"}, nil, []string{"search-vehicles"}, nil},
		{sam, tk.Number(), []string{"Werkstatt data stale"}, nil, []string{"search-tickets"}, []string{"search-invoices"}},
		{w.otto, "alpen", []string{"Alpen Versicherung AG"}, nil, []string{"search-providers"}, nil},
	} {
		res := c.who.Get("/admin/search?q=" + url.QueryEscape(c.q))
		if res.Status != http.StatusOK {
			t.Fatalf("search %q: %d", c.q, res.Status)
		}
		for _, s := range c.want {
			if !strings.Contains(res.Body, s) {
				t.Errorf("search %q lacks %q", c.q, s)
			}
		}
		for _, s := range c.not {
			if strings.Contains(res.Body, s) {
				t.Errorf("search %q shows %q", c.q, s)
			}
		}
		for _, k := range c.wantKinds {
			if !strings.Contains(res.Body, `id="`+k+`"`) {
				t.Errorf("search %q lacks section %s", c.q, k)
			}
		}
		for _, k := range c.noKinds {
			if strings.Contains(res.Body, `id="`+k+`"`) {
				t.Errorf("search %q shows section %s", c.q, k)
			}
		}
	}
	// The portal's box finds the provider's own tickets and invoices, never another's.
	if _, err := tt.App.Support.OpenTicket(asProvider(w.at), support.NewTicket{Subject: "Alpen data stale", Description: "Described.",
		Category: support.CategoryAPIData, Priority: support.P2}); err != nil {
		t.Fatal(err)
	}
	de := loginProvider(t, tt, w.de.Admin.Email, providerPassword)
	if home := de.Get("/portal"); !strings.Contains(home.Body, `action="/portal/search" role="search"`) {
		t.Fatal("no search box in the portal header")
	}
	res := de.Get("/portal/search?q=stale")
	if res.Status != http.StatusOK || !strings.Contains(section(res.Body, "section", "search-tickets"), "Werkstatt data stale") || strings.Contains(res.Body, "Alpen data stale") {
		t.Fatalf("portal ticket search: %d %s", res.Status, section(res.Body, "section", "search-tickets"))
	}
	res = de.Get("/portal/search?q=" + url.QueryEscape(*w.atInv.Number))
	if res.Status != http.StatusOK || strings.Contains(res.Body, `id="search-invoices"`) || !strings.Contains(res.Body, `id="search-empty"`) {
		t.Fatalf("portal search found another provider's invoice: %s", section(res.Body, "section", "search-invoices"))
	}
	res = de.Get("/portal/search?q=" + url.QueryEscape(number))
	if !strings.Contains(section(res.Body, "section", "search-invoices"), fmt.Sprintf(`href="/portal/invoices#invoice-%d"`, w.deInv.ID)) {
		t.Fatalf("portal invoice search: %s", res.Body)
	}
	// The numbers are filtered in the query: any case, and a typed % or _
	// is a character, not a wildcard that would list every invoice.
	res = de.Get("/portal/search?q=" + url.QueryEscape(strings.ToLower(number[1:])))
	if !strings.Contains(section(res.Body, "section", "search-invoices"), fmt.Sprintf(`href="/portal/invoices#invoice-%d"`, w.deInv.ID)) {
		t.Fatalf("portal invoice search in lower case: %s", section(res.Body, "section", "search-invoices"))
	}
	for _, q := range []string{"%%", "__"} {
		if res := de.Get("/portal/search?q=" + url.QueryEscape(q)); strings.Contains(res.Body, `id="search-invoices"`) {
			t.Errorf("portal search %q lists invoices: %s", q, section(res.Body, "section", "search-invoices"))
		}
	}
	if res := sam.Get("/admin/search?q=x"); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "Type at least 2 characters.") ||
		!strings.Contains(res.Body, `value="x"`) {
		t.Fatalf("short query: %d", res.Status)
	}
	if res := sam.Get("/admin/search?q=nichts-zu-finden"); res.Status != http.StatusOK || !strings.Contains(res.Body, `id="search-empty"`) {
		t.Fatalf("nothing found: %d", res.Status)
	}
}
