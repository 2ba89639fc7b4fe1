package support_test

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/app/db"
	"cardata/policies/audit"
	"cardata/templates/i18n"
)

// events are a ticket's events as stored, oldest first.
func (f *fixture) events(t *testing.T, ticketID int64) []support.Event {
	t.Helper()
	var out []support.Event
	if err := f.db.Where("ticket_id = ?", ticketID).Order("at, id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

// checkNote: an event's note reads as its stored English text in English,
// and in German as the catalog's German, every parameter filled.
func checkNote(t *testing.T, e support.Event) {
	t.Helper()
	if e.NoteID == "" {
		return
	}
	for _, l := range i18n.Supported {
		if !i18n.Has(l, e.NoteID) {
			t.Errorf("%s: note id %q is not in the %s catalog", e.Action, e.NoteID, l)
		}
	}
	if en := e.NoteIn("en"); en != e.Note {
		t.Errorf("%s: English %q, stored %q", e.Action, en, e.Note)
	}
	de := e.NoteIn("de")
	if de == e.Note || strings.Contains(de, "{{") || strings.Contains(de, "<no value>") || strings.Contains(de, "map[") {
		t.Errorf("%s: German %q (English %q)", e.Action, de, e.Note)
	}
}

// What the desk writes to a ticket's history is a message of the catalogs
// with its parameters; the page says it in German or English, the stored
// note stays the English text, and what a person typed stays as typed.
func TestEventNotesAreMessagesInBothLanguages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam := f.staff(f.agent)
	surv := f.mustOpen(t, f.a, support.P2, support.CategoryAPIData, "Webhooks not arriving")
	dup := f.mustOpen(t, f.a, support.P3, support.CategoryAPIData, "No pushes since Monday")

	must[*support.Ticket](t)(f.svc.Assign(sam, surv.ID, f.agent.ID))
	must[*support.Ticket](t)(f.svc.Assign(sam, surv.ID, f.agent2.ID))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, surv.ID, support.NewTimeEntry{Minutes: 30, Billable: true}))
	gone := must[*support.TimeEntry](t)(f.svc.BookTime(sam, surv.ID, support.NewTimeEntry{Minutes: 10, Billable: false}))
	if err := f.svc.DeleteTimeEntry(sam, surv.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.AddLink(sam, surv.ID, support.LinkInput{Kind: support.LinkInvoice, Ref: "CD-2026-000123"}); err != nil {
		t.Fatal(err)
	}
	links := must[[]support.Link](t)(f.svc.Links(sam, surv.ID))
	if err := f.svc.RemoveLink(sam, surv.ID, links[0].ID); err != nil {
		t.Fatal(err)
	}
	must[*support.Ticket](t)(f.svc.Classify(sam, surv.ID, support.Classification{Priority: support.P1,
		Category: support.CategoryDataQuality, Subject: "Webhooks stopped"}))
	must[*support.Ticket](t)(f.svc.SetBillable(sam, surv.ID, false, "Goodwill: our outage"))
	must[*support.Ticket](t)(f.svc.SetBillable(sam, surv.ID, true, ""))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, dup.ID, support.NewTimeEntry{Minutes: 12, Billable: true}))
	must[*support.Ticket](t)(f.svc.Merge(sam, dup.ID, surv.ID))
	f.set("2026-03-05 09:00") // past the P1 targets
	if _, err := f.svc.CheckSLAs(f.sys); err != nil {
		t.Fatal(err)
	}
	must[*support.Ticket](t)(f.svc.Transition(sam, surv.ID, support.ActionResolve, support.TransitionInput{Message: "Re-enabled."}))
	f.set("2026-03-13 09:00")
	if _, err := f.svc.CloseResolved(f.sys); err != nil {
		t.Fatal(err)
	}

	seen := map[string]string{}
	for _, id := range []int64{surv.ID, dup.ID} {
		for _, e := range f.events(t, id) {
			checkNote(t, e)
			if e.NoteID == "" && e.Note != "" {
				t.Errorf("%s: note %q has no id", e.Action, e.Note)
			}
			if _, ok := seen[e.NoteID]; !ok && e.NoteID != "" {
				seen[e.NoteID] = e.NoteIn("de") // the survivor's first
			}
		}
	}
	for id, want := range map[string]string{
		"via portal":   "über das Portal",
		"to {{.Name}}": "an Sam Support",
		"{{.Minutes}} min billable by {{.Agent}}":                              "30 Min. berechenbar, von Sam Support",
		"removed {{.Minutes}} min booked by {{.Agent}}":                        "10 Min., gebucht von Sam Support",
		"linked {{.Kind}} {{.Ref}}":                                            "Rechnung CD-2026-000123",
		"removed link to {{.Kind}} {{.Ref}}":                                   "Rechnung CD-2026-000123",
		"priority {{.From}} → {{.To}}":                                         "Priorität P2 → P1",
		"category {{.From}} → {{.To}}":                                         "Kategorie API und Daten → Datenqualität",
		`subject "{{.Subject}}"`:                                               "Betreff „Webhooks stopped“",
		"marked not billable: {{.Reason}}":                                     "als nicht berechenbar markiert: Goodwill: our outage",
		"marked billable":                                                      "als berechenbar markiert",
		"{{.Number}} was merged into this ticket":                              dup.Number() + " wurde mit diesem Ticket zusammengeführt",
		"{{.Count}} time entries of {{.Number}} moved here ({{.Minutes}} min)": "1 Zeitbuchung von " + dup.Number() + " hierher verschoben (12 Min.)",
		"into {{.Number}}":                                                     "mit " + surv.Number(),
		"{{.Days}} days after resolution":                                      "7 Tage nach der Lösung",
	} {
		if got, ok := seen[id]; !ok {
			t.Errorf("no event wrote %q (seen %v)", id, seen)
		} else if got != want {
			t.Errorf("%q in German: %q, want %q", id, got, want)
		}
	}
	var sla, billing bool
	for id := range seen {
		sla = sla || strings.Contains(id, "target breached") || strings.Contains(id, "at 80 %")
		billing = billing || strings.HasPrefix(id, "to billing:")
	}
	if !sla || !billing {
		t.Errorf("SLA note %v, billing note %v: %v", sla, billing, seen)
	}
	// The audit entry of the classification lists the changes as the
	// history says them, in English as hashed and change by change in German.
	entries, err := audit.ForObject(f.sys, f.db, "support_ticket", strconv.FormatInt(surv.ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	classified := false
	for _, e := range entries {
		if e.Action != "support_ticket.classify" {
			continue
		}
		classified = true
		en := surv.Number() + `: priority P2 → P1, category API and data → Data quality, subject "Webhooks stopped"`
		de := surv.Number() + ": Priorität P2 → P1, Kategorie API und Daten → Datenqualität, Betreff „Webhooks stopped“"
		if e.Summary != en || e.SummaryIn("en") != en {
			t.Errorf("classify in English: %q / %q, want %q", e.Summary, e.SummaryIn("en"), en)
		}
		if got := e.SummaryIn("de"); got != de {
			t.Errorf("classify in German: %q, want %q", got, de)
		}
	}
	if !classified {
		t.Error("no audit entry for the classification")
	}
}

// Migration 00094 gives the notes written before it their ids where the
// English text is recognised exactly: re-run on rows written the old way,
// each converted note reads as it was in English and in German from the
// catalog; anything else stays English text.
func TestMigrationGivesOldNotesTheirIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tk := f.mustOpen(t, f.a, support.P2, support.CategoryAPIData, "Old notes")
	old := map[string]string{ // action, note of an event written before 00094
		"via portal": "created", "to Sam Support": "open", "to Sue": "assign", "into T-1001": "merge",
		"7 days after resolution": "close", "T-1002 was merged into this ticket": "merged_in",
		"2 time entries of T-1002 moved here (45 min)": "time_moved", "1 time entry of T-1003 moved here (5 min)": "time_moved",
		"30 min billable by Sam Support": "time", "15 min non-billable by Sam by the lake": "time",
		"removed 10 min booked by Sam Support": "time_removed", "marked billable": "billable",
		"marked not billable: goodwill: outage": "billable", "to billing: 45 min": "billing",
		"to billing: 45 min and the P2 case fee": "billing", "first response at 80 %": "sla_warning",
		"resolution target breached": "sla_breach", "linked Invoice CD-2026-000123": "link",
		"removed link to Vehicle (VIN) WBA00000000000001": "unlink", "priority P3 → P1": "classify",
		"category Billing → Data quality": "classify", `subject "Pushes stopped"`: "classify",
		// not recognised: stay English text
		`priority P3 → P1, subject "New"`: "classify", `subject "say \"hi\""`: "classify", "via carrier pigeon": "created",
	}
	for note, action := range old {
		if err := f.db.Exec(`INSERT INTO support_events (ticket_id, actor_kind, actor_label, action, note) VALUES (?, 'staff', 'Sam', ?, ?)`,
			tk.ID, action, note).Error; err != nil { // note_id '' and note_args '{}' as the migration leaves them
			t.Fatal(err)
		}
	}
	b, err := fs.ReadFile(db.Migrations(), "00094_ticket_event_note_ids.sql")
	if err != nil {
		t.Fatal(err)
	}
	up := strings.Split(strings.Split(string(b), "-- +goose Down")[0], ";")
	for _, stmt := range up {
		if s := strings.TrimSpace(stmt); strings.Contains(s, "UPDATE support_events") {
			if err := f.db.Exec(s).Error; err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	kept := map[string]bool{`priority P3 → P1, subject "New"`: true, `subject "say \"hi\""`: true, "via carrier pigeon": true}
	n := 0
	for _, e := range f.events(t, tk.ID) {
		if e.ActorLabel != "Sam" {
			continue // the ticket's own opening
		}
		n++
		if kept[e.Note] {
			if e.NoteID != "" || e.NoteIn("de") != e.Note {
				t.Errorf("%q was converted to %q", e.Note, e.NoteID)
			}
			continue
		}
		if e.NoteID == "" {
			t.Errorf("%s %q was not converted", e.Action, e.Note)
			continue
		}
		checkNote(t, e)
	}
	if n != len(old) {
		t.Fatalf("%d old rows read back, want %d", n, len(old))
	}
	for _, e := range f.events(t, tk.ID) {
		if e.Note == "marked not billable: goodwill: outage" && e.NoteIn("de") != "als nicht berechenbar markiert: goodwill: outage" {
			t.Errorf("reason: %q", e.NoteIn("de"))
		}
		if e.Note == "removed link to Vehicle (VIN) WBA00000000000001" && e.NoteIn("de") != "Fahrzeug (VIN) WBA00000000000001" {
			t.Errorf("unlink: %q", e.NoteIn("de"))
		}
	}
}
