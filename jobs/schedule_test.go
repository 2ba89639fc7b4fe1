package jobs_test

import (
	"testing"
	"time"

	"cardata/jobs"
	"cardata/templates/i18n"
)

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestSpecsAreReadInBerlinTime(t *testing.T) {
	t.Parallel()
	loc := berlin(t)
	s, err := jobs.ParseSpec("0 2 1 * *", loc) // 02:00 on the 1st, Berlin wall clock
	if err != nil {
		t.Fatal(err)
	}
	winter := s.Next(time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 2, 1, 1, 0, 0, 0, time.UTC); !winter.Equal(want) {
		t.Errorf("winter tick = %s, want %s (CET = UTC+1)", winter.UTC(), want)
	}
	summer := s.Next(time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC); !summer.Equal(want) {
		t.Errorf("summer tick = %s, want %s (CEST = UTC+2)", summer.UTC(), want)
	}
}

func TestSpecParsing(t *testing.T) {
	t.Parallel()
	loc := berlin(t)
	for _, ok := range []string{"*/15 * * * *", "* * * * * *", "10 3 * * *", "@daily", "@monthly", "0 7 * * 1-5"} {
		if _, err := jobs.ParseSpec(ok, loc); err != nil {
			t.Errorf("ParseSpec(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "@every 1m", "61 * * * *", "nonsense", "1 2 3"} {
		if _, err := jobs.ParseSpec(bad, loc); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
	// Six fields: seconds first.
	s, _ := jobs.ParseSpec("*/2 * * * * *", loc)
	from := time.Date(2026, 3, 3, 10, 0, 0, 500, loc)
	if next := s.Next(from); !next.Equal(time.Date(2026, 3, 3, 10, 0, 2, 0, loc)) {
		t.Errorf("every 2s from %s: %s", from, next)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":               "manual only",
		"*/15 * * * *":   "every 15 minutes",
		"5 * * * *":      "hourly at :05",
		"10 3 * * *":     "daily at 03:10",
		"0 2 1 * *":      "monthly on day 1 at 02:00",
		"0 7 * * 1":      "every Monday at 07:00",
		"0 7 * * 1-5":    "on weekdays at 07:00",
		"* * * * * *":    "every second",
		"*/5 * * * * *":  "every 5 seconds",
		"@daily":         "daily at 00:00",
		"0 0 1 1 *":      "cron 0 0 1 1 *",
		"0 */6 * * *":    "every 6 hours at :00",
		"0 8-18 * * 1-5": "on weekdays hourly 08:00–18:00",
		"30 9-17 * * *":  "hourly 09:30–17:30",
		"0 18-8 * * *":   "cron 0 18-8 * * *",
		"0 8-18 * * 6":   "cron 0 8-18 * * 6",
		"0 0 10 * * *":   "daily at 10:00",
		"30 0 10 * * *":  "cron 30 0 10 * * *",
		"0 9,17 * * *":   "cron 0 9,17 * * *",
		"0 0 * * 7":      "every Sunday at 00:00",
		"0 12 * * sun":   "cron 0 12 * * sun",
		"15 4 * * * * *": "cron 15 4 * * * * *",
	}
	for spec, want := range cases {
		if got := jobs.Describe(spec); got != want {
			t.Errorf("Describe(%q) = %q, want %q", spec, got, want)
		}
	}
}

// A German page says the schedule in German; unusual specs keep their cron.
func TestDescribeInGerman(t *testing.T) {
	for spec, want := range map[string]string{
		"40 4 * * *":     "täglich um 04:40",
		"*/10 * * * *":   "alle 10 Minuten",
		"17 * * * *":     "stündlich zur Minute 17",
		"0 3 1 * *":      "monatlich am 1. um 03:00",
		"30 8 * * 1-5":   "werktags um 08:30",
		"0 8-18 * * 1-5": "werktags stündlich 08:00–18:00",
		"0 9 * * 1":      "jeden Montag um 09:00",
		"@weekly":        "jeden Sonntag um 00:00",
		"":               "nur manuell",
		"0 3 1 6 *":      "Cron 0 3 1 6 *",
	} {
		if got := jobs.DescribeIn(i18n.DE, spec); got != want {
			t.Errorf("DescribeIn(de, %q) = %q, want %q", spec, got, want)
		}
	}
}
