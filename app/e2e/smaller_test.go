package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/onboarding"
	"cardata/policies"
)

// optionOrder returns the labels of a <select>'s options, in page order.
func optionOrder(t *testing.T, body, selectID string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<select id="` + selectID + `"[^>]*>(.*?)</select>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no select #%s", selectID)
	}
	var out []string
	for _, o := range regexp.MustCompile(`<option value="[A-Z]{2}"[^>]*>([^<]*)</option>`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, o[1])
	}
	return out
}

// before fails unless a comes before b in list.
func before(t *testing.T, list []string, a, b string) {
	t.Helper()
	ia, ib := -1, -1
	for i, s := range list {
		switch s {
		case a:
			ia = i
		case b:
			ib = i
		}
	}
	if ia < 0 || ib < 0 || ia > ib {
		t.Errorf("%q should come before %q in %v", a, b, list)
	}
}

// The "Smaller" items of issue 18, each at the HTTP level: the provider's
// Decide panel offers only the valid actions with a specific label per note
// box; a refused decision leaves the browser at an address that answers GET
// with the error; a plain support agent cannot change the team lead (form
// hidden, 403), the lead can; the ticket's time booking and billable forms
// are separate panels; the market filter is sorted by the names shown, in
// German and in English; raw values are shown as translated labels.
func TestIssue18SmallerItems(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	lead := tt.MustCreateStaff(t, "lena@test.local", policies.RoleSupport)
	pm := tt.LoginStaff(t, "pm@test.local")

	// Decide panel of an application in review: no Terminate, one specific reason box.
	r := mustRegisterProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	base := fmt.Sprintf("/admin/providers/%d", r.Provider.ID)
	if res := pm.PostForm(base+"/transitions/claim", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("claim: %d", res.Status)
	}
	body := pm.Get(base).Body
	obMustContain(t, body, `id="action-reject"`, "Reason for the rejection (sent to the provider)", `id="action-approve"`)
	if strings.Contains(body, `id="action-terminate"`) || strings.Contains(body, `>Reason</label>`) {
		t.Fatal("an application in review is offered Terminate or a box labelled only \"Reason\"")
	}
	if res := pm.PostForm(base+"/transitions/terminate", url.Values{"note": {"no contract"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("terminate an application: %d", res.Status)
	}
	if p, _ := onboardingFor(tt).FindProviderByID(tt.Ctx, r.Provider.ID); p.Status != onboarding.StatusInReview {
		t.Fatalf("terminating an application changed it to %s", p.Status)
	}
	obMustContain(t, pm.Get(base).Body, "cannot terminate a provider that is in review")

	// A refused reject: redirected to the provider page, which answers GET with the error.
	res := pm.PostForm(base+"/transitions/reject", url.Values{"note": {"   "}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != base+"#actions" {
		t.Fatalf("refused reject: %d %q", res.Status, res.Header.Get("Location"))
	}
	res = pm.Get(base)
	if res.Status != http.StatusOK {
		t.Fatalf("GET after a refused reject: %d", res.Status)
	}
	obMustContain(t, res.Body, "enter the reason", `class="field invalid"`)
	if again := pm.Get(base); strings.Contains(again.Body, "enter the reason") {
		t.Fatal("the error outlives its page view")
	}

	// An active provider: suspend and terminate, each box with its own label.
	a := mustActiveProvider(t, tt, "Nordlys Forsikring AS", "NO", "NO917345821")
	body = pm.Get(fmt.Sprintf("/admin/providers/%d", a.Provider.ID)).Body
	obMustContain(t, body, "Reason for the suspension (sent to the provider)", "Reason for the termination (sent to the provider)")

	// The team lead: a plain agent sees no form and is refused; the lead may hand over.
	if err := supportFor(tt, nil).SetTeamLead(policies.WithPrincipal(tt.Ctx, policies.System("test")), &lead.ID); err != nil {
		t.Fatal(err)
	}
	sam := tt.LoginStaff(t, "sam@test.local")
	if strings.Contains(sam.Get("/admin/tickets/report").Body, `id="save-lead"`) {
		t.Fatal("a plain support agent is shown the team lead form")
	}
	samID := fmt.Sprint(tt.MustCreateStaff(t, "sue@test.local", policies.RoleSupport).ID)
	if res := sam.PostForm("/admin/tickets/settings", url.Values{"team_lead_id": {samID}}); res.Status != http.StatusForbidden {
		t.Fatalf("a plain support agent changes the team lead: %d", res.Status)
	}
	lc := tt.LoginStaff(t, "lena@test.local")
	obMustContain(t, lc.Get("/admin/tickets/report").Body, `id="save-lead"`)
	if res := lc.PostForm("/admin/tickets/settings", url.Values{"team_lead_id": {samID}}); res.Status != http.StatusSeeOther {
		t.Fatalf("the lead hands over: %d %s", res.Status, res.Body)
	}

	// The ticket: time booking and the billable decision are two framed forms.
	tk, err := supportFor(tt, nil).OpenTicket(asProvider(a), support.NewTicket{Subject: "Invoice question", Description: "Why?",
		Category: support.CategoryBilling, Priority: support.P3})
	if err != nil {
		t.Fatal(err)
	}
	body = sam.Get(fmt.Sprintf("/admin/tickets/%d", tk.ID)).Body
	tf := regexp.MustCompile(`(?s)<form[^>]*id="time-form".*?</form>`).FindString(body)
	bf := regexp.MustCompile(`(?s)<form[^>]*id="billable-form".*?</form>`).FindString(body)
	if !strings.Contains(tf, `id="f-minutes"`) || strings.Contains(tf, `id="f-reason"`) || !strings.Contains(bf, `id="f-reason"`) ||
		strings.Contains(bf, `id="f-minutes"`) || !strings.Contains(tf, `<h3`) || !strings.Contains(bf, `<h3`) {
		t.Fatalf("time and billable forms are not separate panels:\n%s\n%s", tf, bf)
	}
	// the ticket's category and channel are labels, in the page's language
	obMustContain(t, body, "· Billing ·", "via portal")

	// The market filter in the page's language, sorted by the names shown.
	en := optionOrder(t, pm.Get("/admin/providers").Body, "market")
	if len(en) != len(onboarding.SupportedMarkets) || en[0] != "Austria" {
		t.Fatalf("English markets: %v", en)
	}
	before(t, en, "Czechia", "Denmark")
	before(t, en, "Switzerland", "United Kingdom")
	if res := pm.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/admin/providers"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("switch to German: %d", res.Status)
	}
	de := optionOrder(t, pm.Get("/admin/providers").Body, "market")
	if len(de) != len(onboarding.SupportedMarkets) || de[0] != "Belgien" {
		t.Fatalf("German markets: %v", de)
	}
	before(t, de, "Dänemark", "Deutschland")
	before(t, de, "Norwegen", "Österreich")
	before(t, de, "Österreich", "Polen")
	before(t, de, "Tschechien", "Ungarn")

	// Raw values: the catalog's sensitivities are labels, never codes.
	cat := pm.Get("/admin/catalog").Body
	if strings.Contains(cat, ">driving_behaviour<") || !strings.Contains(cat, ">Fahrverhalten<") {
		t.Fatal("the catalog shows the raw sensitivity driving_behaviour")
	}
}
