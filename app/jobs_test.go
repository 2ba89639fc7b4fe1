package app

import (
	"strings"
	"testing"
	"time"

	"cardata/jobs"
)

// The outbox clean-up says its retention in the reader's language for any
// OUTBOX_RETENTION, not only the default 90 days; the English stays as it
// was written before.
func TestOutboxPurgeDescriptionIsInBothLanguagesForAnyRetention(t *testing.T) {
	t.Parallel()
	const tail = " (OUTBOX_RETENTION); pending and failed e-mails are kept."
	for _, c := range []struct {
		keep   time.Duration
		en, de string
	}{
		{90 * 24 * time.Hour, "more than 90 days ago", "vor mehr als 90 Tagen gesendet"},
		{30 * 24 * time.Hour, "more than 30 days ago", "vor mehr als 30 Tagen gesendet"},
		{24 * time.Hour, "more than 1 day ago", "vor mehr als einem Tag gesendet"},
		{36 * time.Hour, "more than 36h0m0s ago", "vor mehr als 36h0m0s gesendet"},
	} {
		desc, args := outboxPurgeDescription(c.keep)
		j := jobs.Job{Description: desc, DescriptionArgs: args}
		if en, want := j.DescriptionIn("en"), "Deletes e-mails sent (or kept locally) "+c.en+tail; en != want {
			t.Errorf("%s: English %q, want %q", c.keep, en, want)
		}
		de := j.DescriptionIn("de")
		if !strings.HasPrefix(de, "Löscht E-Mails, die "+c.de) || strings.Contains(de, "{{") {
			t.Errorf("%s: German %q, want it to say %q", c.keep, de, c.de)
		}
	}
}
