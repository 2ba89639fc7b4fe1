package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/policies"
)

// The notes the desk writes to a ticket's history ("via portal", "to Sam",
// "30 min billable by Sam", "linked Invoice ...") are said in the page's
// language: a ticket opened in the portal, assigned, with time booked and an
// invoice linked, reads in German on the staff ticket page (and its public
// notes on the portal's), in English for an English reader; what a person
// typed stays as typed. A form error of the ticket page is German as well.
func TestTicketNotesInGerman(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "sam.notes@test.local", policies.RoleSupport)
	a := mustActiveProvider(t, tt, "Notiz Versicherung AG", "AT", "ATU13585627")
	pa := loginProvider(t, tt, a.Admin.Email, providerPassword)
	pa.Header.Set("Accept-Language", "de")

	res := postMultipart(t, pa, "/portal/tickets", part{name: "subject", value: "Kilometerstand veraltet"},
		part{name: "description", value: "Der Kilometerstand ist drei Tage alt."}, part{name: "category", value: "data_quality"},
		part{name: "priority", value: "P3"})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("open ticket: %d %.2000s", res.Status, res.Body)
	}
	id := strings.TrimPrefix(res.Header.Get("Location"), "/portal/tickets/")

	sam := tt.LoginStaff(t, "sam.notes@test.local")
	sam.Header.Set("Accept-Language", "de")
	for path, form := range map[string]url.Values{
		"/assign": {"me": {"true"}},
		"/time":   {"minutes": {"30"}, "billable": {"true"}, "note": {"Analyse der Übertragung"}},
		"/links":  {"kind": {"invoice"}, "ref": {"CD-2026-000123"}},
	} {
		if res := sam.PostForm("/admin/tickets/"+id+path, form); res.Status != http.StatusSeeOther {
			t.Fatalf("%s: %d %.2000s", path, res.Status, res.Body)
		}
	}

	page := sam.Get("/admin/tickets/" + id)
	if page.Status != http.StatusOK {
		t.Fatalf("staff ticket page: %d", page.Status)
	}
	history := timelineOf(page.Body)
	for _, want := range []string{
		"hat das Ticket eröffnet: neu · über das Portal",
		"zugewiesen: neu → offen · an sam.notes",
		"Zeit gebucht · 30 Min. berechenbar, von sam.notes",
		"verknüpft · Rechnung CD-2026-000123",
	} {
		if !strings.Contains(history, want) {
			t.Errorf("the staff ticket page's history lacks %q:\n%s", want, history)
		}
	}
	for _, english := range []string{"via portal", "to sam.notes", "min billable by", "linked Invoice"} {
		if strings.Contains(history, english) {
			t.Errorf("the German history says %q:\n%s", english, history)
		}
	}
	// The time booked keeps its typed note as typed.
	if !strings.Contains(page.Body, "Analyse der Übertragung") {
		t.Error("the typed note of the time entry is gone")
	}

	// The portal shows the public notes, in German too (never the internal ones).
	portal := timelineOf(pa.Get("/portal/tickets/" + id).Body)
	if !strings.Contains(portal, "über das Portal") || !strings.Contains(portal, "zugewiesen: an sam.notes") {
		t.Errorf("the portal's history is not German:\n%s", portal)
	}
	if strings.Contains(portal, "Min.") || strings.Contains(portal, "CD-2026-000123") {
		t.Errorf("the portal shows internal notes:\n%s", portal)
	}

	// The ticket page's form errors are German too (errors-admin).
	res = sam.PostForm("/admin/tickets/"+id+"/links", url.Values{"kind": {"container"}, "ref": {"Flottendaten"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "geben Sie die Nummer des Datencontainers an (z. B. 12)") {
		t.Errorf("link to no container: %d %.3000s", res.Status, res.Body)
	}

	// An English reader reads the same history in English.
	sam.Header.Set("Accept-Language", "en")
	history = timelineOf(sam.Get("/admin/tickets/" + id).Body)
	for _, want := range []string{"opened the ticket: new · via portal", "· to sam.notes", "30 min billable by sam.notes", "linked Invoice CD-2026-000123"} {
		if !strings.Contains(history, want) {
			t.Errorf("the English history lacks %q:\n%s", want, history)
		}
	}
}

// timelineOf is the text of a ticket page's history entries (the events'
// lines), tags removed, one line per event.
func timelineOf(body string) string {
	var out []string
	for _, part := range strings.Split(body, `<li class="event`)[1:] {
		line, _, _ := strings.Cut(part, "</li>")
		if _, rest, ok := strings.Cut(line, ">"); ok {
			line = rest
		}
		var b strings.Builder
		in := false
		for _, r := range line {
			switch {
			case r == '<':
				in = true
			case r == '>':
				in = false
			case !in:
				b.WriteRune(r)
			}
		}
		out = append(out, strings.Join(strings.Fields(b.String()), " "))
	}
	return strings.Join(out, "\n")
}
