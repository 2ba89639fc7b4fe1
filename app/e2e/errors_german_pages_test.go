package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// An error a page shows is in the reader's language, its values included,
// while the same error as problem+json stays English; the job pages name
// outcomes, triggers, schedules and e-mail states in the page's language
// and keep the codes for experts.
func TestGermanErrorPagesAndJobLabels(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	admin := loginDemo(t, tt, demoLogins[4])
	admin.SetCookie("cardata_lang", "de")
	want := func(what string, res string, parts ...string) {
		t.Helper()
		for _, p := range parts {
			if !strings.Contains(res, p) {
				t.Errorf("%s lacks %q:\n%.4000s", what, p, res)
			}
		}
	}

	// A staff page with a broken query parameter: 400, said in German with
	// the parameter's name and where it was sent (a term of its own).
	res := admin.Get("/admin/jobs?stichwort=%FF")
	if res.Status != http.StatusBadRequest {
		t.Fatalf("bad input: status %d", res.Status)
	}
	want("German 400 page", res.Body, "Ungültige Anfrage", `Abfrageparameter &#34;stichwort&#34; enthält ein NUL-Byte oder ist kein gültiges UTF-8`)
	if strings.Contains(res.Body, "contains a NUL byte") || strings.Contains(res.Body, "query parameter") {
		t.Errorf("the German page still has English words:\n%.3000s", res.Body)
	}
	admin.Header.Set("Accept", "application/json")
	res = admin.Get("/admin/jobs?stichwort=%FF")
	admin.Header.Del("Accept")
	want("problem+json", res.Body, `"code":"invalid_input"`, `query parameter \"stichwort\" contains a NUL byte or is not valid UTF-8`)

	// A vehicle owner's page: someone else's consent is not found, in German.
	owner := loginDemo(t, tt, demoLogins[8])
	owner.SetCookie("cardata_lang", "de")
	res = owner.Get("/my/consents/987654321")
	if res.Status != http.StatusNotFound {
		t.Fatalf("unknown consent: status %d", res.Status)
	}
	want("German 404 for a vehicle owner", res.Body, "Nicht gefunden", "Einwilligung nicht gefunden", "Zur Startseite")

	// The job pages: a run by hand from the command line, labelled in
	// German with the code in the title; schedules and titles in German.
	if rec, err := tt.App.Jobs.RunAndWait(tt.Ctx, "sessions.purge"); err != nil || rec.Outcome != "succeeded" {
		t.Fatalf("sessions.purge: %v %v", rec, err)
	}
	res = admin.Get("/admin/jobs/sessions.purge")
	want("German job page", res.Body, "<h1>Bereinigung der Sitzungen</h1>", "alle 15 Minuten", `title="succeeded">erfolgreich<`,
		`title="cli">Kommandozeile<`, "Aktualisiert ", "<code>sessions.purge</code>")
	res = admin.Get("/admin/jobs/invoice.monthly_run")
	want("German monthly run", res.Body, "Monatlicher Rechnungslauf", "monatlich am 1. um 03:00", "<dd>6h</dd>")
	res = admin.Get("/admin/jobs")
	want("German job list", res.Body, "täglich um 04:40", "Prüfung der Audit-Kette",
		"Löscht E-Mails, die vor mehr als 90 Tagen gesendet (oder lokal abgelegt) wurden")
	res = admin.Get("/admin/jobs/outbox.purge")
	want("German outbox clean-up", res.Body, "<p>Löscht E-Mails, die vor mehr als 90 Tagen gesendet (oder lokal abgelegt) wurden (OUTBOX_RETENTION)")
	res = admin.Get("/admin/outbox?q=staff.welcome")
	want("German outbox", res.Body, `<option value="sent">versendet</option>`, `<option value="pending">ausstehend</option>`,
		"Begrüßung eines neuen Mitarbeiters <code>staff.welcome</code>")

	// The same pages in English keep their English words.
	admin.SetCookie("cardata_lang", "en")
	res = admin.Get("/admin/jobs/sessions.purge")
	want("English job page", res.Body, "<h1>Session clean-up</h1>", "every 15 minutes", `title="succeeded">succeeded<`, `title="cli">command line<`)
	res = admin.Get("/admin/jobs/outbox.purge")
	want("English outbox clean-up", res.Body, "<p>Deletes e-mails sent (or kept locally) more than 90 days ago (OUTBOX_RETENTION); pending and failed e-mails are kept.</p>")
}
