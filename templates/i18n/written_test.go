package i18n

import (
	"regexp"
	"testing"
)

func TestWrittenInSaysARecognisedNoteWithItsNamedGroups(t *testing.T) {
	ws := []Written{{Re: regexp.MustCompile(`^replaced by version (?P<N>\d+)$`), ID: "replaced by version {{.N}}"}}
	if got := WrittenIn(EN, "replaced by version 3", ws); got != "replaced by version 3" {
		t.Errorf("en: %q", got)
	}
	if got := WrittenIn(DE, "replaced by version 3", ws); got == "replaced by version 3" || !regexp.MustCompile(`\b3\b`).MatchString(got) {
		t.Errorf("de: %q, want the German text with the version", got)
	}
	if got := WrittenIn(DE, "a reason typed by a person", ws); got != "a reason typed by a person" {
		t.Errorf("typed text: %q", got)
	}
}
