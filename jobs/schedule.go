package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"cardata/templates/i18n"
)

// parser accepts the classic five cron fields (minute hour day-of-month month
// day-of-week), an optional leading seconds field (six fields, used by tests
// and by jobs that must run more often than once a minute) and the
// descriptors @hourly, @daily, @weekly, @monthly and @yearly.
//
// "@every 10m" is refused: its ticks depend on when each process started, so
// two replicas would never agree on a tick and the once-per-tick guarantee
// (a unique (job, scheduled_for) row) could not hold.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec parses a cron spec and pins it to loc (Europe/Berlin in
// production) unless the spec names its own zone with CRON_TZ=.
func ParseSpec(spec string, loc *time.Location) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "@every") {
		return nil, fmt.Errorf("cron spec %q: @every is not allowed (replicas could not agree on its ticks); use a cron expression", spec)
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	if ss, ok := s.(*cron.SpecSchedule); ok && ss.Location == time.Local && loc != nil {
		ss.Location = loc
	}
	return s, nil
}

var weekdays = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// Describe puts common cron specs into words ("daily at 03:10"); anything
// unusual is returned as "cron <spec>". Times are wall-clock times in the
// scheduler's zone.
func Describe(spec string) string { return DescribeIn(i18n.EN, spec) }

// DescribeIn is Describe in language l ("täglich um 03:10"): the English
// formats are the catalogs' ids (templates/i18n/messages.*.toml).
func DescribeIn(l i18n.Lang, spec string) string {
	say := func(format string, args ...any) string { return i18n.Sprintf(l, format, args...) }
	spec = strings.TrimSpace(spec)
	switch spec {
	case "":
		return say("manual only")
	case "@hourly":
		return say("hourly at :%02d", 0)
	case "@daily", "@midnight":
		return say("daily at %s", "00:00")
	case "@weekly":
		return say("every %s at %s", i18n.T(l, weekdays[0]), "00:00")
	case "@monthly":
		return say("monthly on day %d at %s", 1, "00:00")
	case "@yearly", "@annually":
		return say("yearly on 1 January at 00:00")
	}
	f := strings.Fields(spec)
	fallback := say("cron %s", spec)
	sec := "0"
	switch len(f) {
	case 5:
	case 6:
		sec, f = f[0], f[1:]
	default:
		return fallback
	}
	min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4]
	num := func(s string) (int, bool) { n, err := strconv.Atoi(s); return n, err == nil }
	step := func(s string) (int, bool) {
		if !strings.HasPrefix(s, "*/") {
			return 0, false
		}
		return num(s[2:])
	}
	if mon != "*" {
		return fallback
	}
	// Sub-minute and minute-level repetition.
	if hour == "*" && dom == "*" && dow == "*" {
		if min == "*" {
			if sec == "*" {
				return say("every second")
			}
			if n, ok := step(sec); ok {
				return say("every %d seconds", n)
			}
			if _, ok := num(sec); ok {
				return say("every minute")
			}
			return fallback
		}
		if _, ok := num(sec); !ok || sec != "0" {
			return fallback
		}
		if n, ok := step(min); ok {
			return say("every %d minutes", n)
		}
		if m, ok := num(min); ok {
			return say("hourly at :%02d", m)
		}
		return fallback
	}
	if sec != "0" {
		return fallback
	}
	m, okm := num(min)
	h, okh := num(hour)
	if !okm || !okh {
		if n, ok := step(hour); ok && okm && dom == "*" && dow == "*" {
			return say("every %d hours at :%02d", n, m)
		}
		// An hour range: "0 8-18 * * 1-5" is hourly 08:00-18:00 on weekdays.
		if from, to, ok := strings.Cut(hour, "-"); ok && okm && dom == "*" {
			a, oka := num(from)
			b, okb := num(to)
			if oka && okb && a < b && b < 24 {
				switch {
				case dow == "*":
					return say("hourly %02d:%02d–%02d:%02d", a, m, b, m)
				case dow == "1-5" || strings.EqualFold(dow, "mon-fri"):
					return say("on weekdays hourly %02d:%02d–%02d:%02d", a, m, b, m)
				}
			}
		}
		return fallback
	}
	at := fmt.Sprintf("%02d:%02d", h, m)
	switch {
	case dom == "*" && dow == "*":
		return say("daily at %s", at)
	case dom == "*" && (dow == "1-5" || strings.EqualFold(dow, "mon-fri")):
		return say("on weekdays at %s", at)
	case dom == "*":
		if d, ok := num(dow); ok && d >= 0 && d <= 7 {
			return say("every %s at %s", i18n.T(l, weekdays[d%7]), at)
		}
		return fallback
	case dow == "*":
		if d, ok := num(dom); ok {
			return say("monthly on day %d at %s", d, at)
		}
	}
	return fallback
}
