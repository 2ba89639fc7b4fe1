package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/policies"
)

// Messages after a staff action that carry values (a provider decision, a
// market pause) are in the page's language, values included.
func TestStaffFlashWithValuesInGerman(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "flash-pm@test.local", policies.RolePartnerManager)
	r := mustRegisterProvider(t, tt, "Flash Versicherung AG", "AT", "ATU13585627")
	pm := tt.LoginStaff(t, "flash-pm@test.local")
	pm.Header.Set("Accept-Language", "de")

	flash := func(what, path string, form url.Values) string {
		t.Helper()
		res := pm.PostForm(path, form)
		if res.Status != http.StatusSeeOther {
			t.Fatalf("%s: status %d: %.400s", what, res.Status, res.Body)
		}
		return pm.Get(res.Header.Get("Location")).Body
	}
	body := flash("claim", fmt.Sprintf("/admin/providers/%d/transitions/claim", r.Provider.ID), url.Values{})
	if !strings.Contains(body, "Flash Versicherung AG: zur Prüfung übernommen (jetzt in Prüfung).") {
		t.Errorf("provider decision flash not German:\n%s", flashOf(body))
	}
	body = flash("pause", "/admin/markets/DE", url.Values{"active": {"false"}})
	if !strings.Contains(body, "ist pausiert: Der Markt nimmt keine Anfragen an") {
		t.Errorf("market pause flash not German:\n%s", flashOf(body))
	}

	// A ticket's priority, category and state read in German on the portal.
	a := mustActiveProvider(t, tt, "Flash Flotte GmbH", "DE", "DE136695976")
	tk, err := supportFor(tt, nil).OpenTicket(asProvider(a), support.NewTicket{Subject: "Webhooks", Description: "d",
		Category: support.CategoryAPIData, Priority: support.P2})
	if err != nil {
		t.Fatal(err)
	}
	pa := loginProvider(t, tt, a.Admin.Email, providerPassword)
	pa.Header.Set("Accept-Language", "de")
	res := pa.Get(fmt.Sprintf("/portal/tickets/%d", tk.ID))
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "P2 – große Auswirkung") || !strings.Contains(res.Body, "API und Daten") ||
		!strings.Contains(res.Body, `id="status">neu<`) {
		t.Errorf("ticket labels not German: status %d:\n%.3000s", res.Status, res.Body)
	}
	// A form's field errors are German on the page (the API keeps English and codes).
	res = postMultipart(t, pa, "/portal/tickets", part{name: "subject", value: "x"}, part{name: "category", value: "api_data"}, part{name: "priority", value: "P2"})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "geben Sie dem Ticket einen Betreff (mindestens 3 Zeichen)") ||
		!strings.Contains(res.Body, "beschreiben Sie das Problem") || !strings.Contains(res.Body, `value="x"`) {
		t.Errorf("field errors not German: status %d:\n%.3000s", res.Status, res.Body)
	}
	// The ticket's SLA standing and its timeline read in German, on the portal and for staff.
	res = pa.Get(fmt.Sprintf("/portal/tickets/%d", tk.ID))
	if !strings.Contains(res.Body, `id="sla-text">Antwort in `) || !strings.Contains(res.Body, "hat das Ticket eröffnet") {
		t.Errorf("SLA text or ticket event not German:\n%.4000s", res.Body)
	}
	// The staff provider page: timeline status words and the seat country in German;
	// the provider list names countries in German too.
	page := pm.Get(fmt.Sprintf("/admin/providers/%d", r.Provider.ID)).Body
	if !strings.Contains(page, "zur Prüfung übernommen: eingereicht → in Prüfung") || !strings.Contains(page, "Sitz Österreich") {
		t.Errorf("provider timeline or seat not German:\n%.5000s", page)
	}
	if list := pm.Get("/admin/providers").Body; !strings.Contains(list, "<td>Österreich</td>") {
		t.Errorf("provider list countries not German:\n%.5000s", list)
	}
	// A data container's purpose error on the portal form is German.
	res = pa.PostForm("/portal/containers", url.Values{"name": {"Fahrtenbuch"}, "purposeCode": {""}, "purpose": {"kurz"}, "intent": {"submit"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "Wählen Sie den Zweckcode") ||
		!strings.Contains(res.Body, "Beschreiben Sie den Zweck in mindestens einem ganzen Satz") {
		t.Errorf("container field errors not German: status %d:\n%.4000s", res.Status, res.Body)
	}
}

// flashOf cuts the flash message out of a page for a failure message.
func flashOf(body string) string {
	i := strings.Index(body, `class="flash`)
	if i < 0 {
		return "(no flash)"
	}
	end := min(len(body), i+400)
	return body[i:end]
}
