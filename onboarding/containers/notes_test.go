package containers

import "testing"

func TestEventNoteInSaysServiceNotesInGerman(t *testing.T) {
	for note, want := range map[string]string{
		"approval 1 of 2 (sensitive keys: a second partner manager must approve)": "Freigabe 1 von 2 (sensible Daten: eine zweite Person aus dem Partnermanagement muss freigeben)",
		"approval 2 of 2":       "Freigabe 2 von 2",
		"replaced by version 3": "ersetzt durch Version 3",
		"based on version 1":    "auf Grundlage von Version 1",
		"too much data":         "too much data",
	} {
		if got := (Event{Note: note}).NoteIn("de"); got != want {
			t.Errorf("%q: got %q, want %q", note, got, want)
		}
		if got := (Event{Note: note}).NoteIn("en"); got != note {
			t.Errorf("English of %q: %q", note, got)
		}
	}
}
