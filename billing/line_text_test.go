package billing

import "testing"

// The descriptions the run writes read in German on a German page, and
// their English rendering is the issued text itself.
func TestLineDescriptionInTheReadersLanguage(t *testing.T) {
	for _, c := range []struct{ desc, period, de string }{
		{"Telematics deliveries, November 2026, units 1–1,350 of the month (price list of 2025-01-01)", "2026-11",
			"Telematik-Übermittlungen, November 2026, Einheiten 1–1.350 des Monats (Preisliste vom 01.01.2025)"},
		{"Support case fee P3, November 2026: T-1009, T-1011", "2026-11", "Supportfall-Gebühr P3, November 2026: T-1009, T-1011"},
		{"Support time, ticket T-1001 (P2), October 2026: 1440 min = 96 × started 15 min", "2026-10",
			"Supportzeit, Ticket T-1001 (P2), Oktober 2026: 1.440 Min. = 96 × angefangene 15 Min."},
		{"Credit on invoice CD-2026-000001: wrong count", "2026-11", "Gutschrift zur Rechnung CD-2026-000001: wrong count"},
		{"Consulting by hand", "2026-11", "Consulting by hand"},
	} {
		l := &Line{Description: c.desc, ServicePeriod: c.period}
		if got := l.DescriptionIn("de"); got != c.de {
			t.Errorf("German of %q:\n got %q\nwant %q", c.desc, got, c.de)
		}
		if got := l.DescriptionIn("en"); got != c.desc {
			t.Errorf("English of %q: %q", c.desc, got)
		}
	}
}
