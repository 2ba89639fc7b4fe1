package consent

import "testing"

// The notes CarData writes into a consent's history read in the owner's
// language, old rows included; a typed reason stays as typed.
func TestChangeNoteInSaysSystemNotesInGerman(t *testing.T) {
	for note, want := range map[string]string{
		"carried over to version 2, which only removes keys: no new consent needed": "auf Version 2 übernommen, die nur Daten entfernt: keine neue Einwilligung nötig",
		"replaced by consent 41 for version 3":                                      "ersetzt durch die Einwilligung 41 für Version 3",
		"the provider was suspended: Unpaid invoices <b>":                           "der Anbieter wurde gesperrt: Unpaid invoices <b>",
		"the provider was terminated":                                               "die Partnerschaft mit dem Anbieter wurde beendet",
		"unanswered for 30 days":                                                    "30 Tage unbeantwortet",
		"the provider's data container was withdrawn: The campaign has ended.":      "der Anbieter hat den Datencontainer zurückgezogen: The campaign has ended.",
		"the data container was purged 29 days after its withdrawal":                "der Datencontainer wurde 29 Tage nach seiner Rücknahme gelöscht",
		"a reason somebody typed":                                                   "a reason somebody typed",
	} {
		if got := (Change{Note: note}).NoteIn("de"); got != want {
			t.Errorf("%q: got %q, want %q", note, got, want)
		}
		if got := (Change{Note: note}).NoteIn("en"); got != note {
			t.Errorf("English of %q: %q", note, got)
		}
	}
}
