package support

import (
	"fmt"
	"strings"
	"time"

	"github.com/rickar/cal/v2"
	"github.com/rickar/cal/v2/de"
)

// Target is the service level of a priority, in business hours.
type Target struct {
	FirstResponse time.Duration // until the first public reply of support
	Resolution    time.Duration // until resolved, not counting time waiting on the provider
}

// targets are the published service levels (one business day = 10 hours).
var targets = map[Priority]Target{
	P1: {FirstResponse: 1 * time.Hour, Resolution: 10 * time.Hour},
	P2: {FirstResponse: 4 * time.Hour, Resolution: 30 * time.Hour},
	P3: {FirstResponse: 10 * time.Hour, Resolution: 50 * time.Hour},
	P4: {FirstResponse: 20 * time.Hour, Resolution: 100 * time.Hour},
}

// TargetOf returns the published service level of a priority (one
// business day = 10 hours); the table cannot be changed from outside.
func TargetOf(p Priority) Target { return targets[p] }

// WarnShare is the share of a target after which the desk is warned (80 %).
const (
	warnNum, warnDen = 4, 5
)

func warnPart(d time.Duration) time.Duration { return d * warnNum / warnDen }

// Clock measures business time: Monday to Friday 08:00-18:00 in
// Europe/Berlin, without Germany's nationwide public holidays (regional
// ones such as Epiphany or Corpus Christi count as working days, since the
// desk serves providers across Europe from more than one state). It is safe
// for concurrent use: the holiday cache of the library stays off.
type Clock struct {
	loc *time.Location
	cal *cal.BusinessCalendar
}

// NewClock returns the desk's business clock in loc (Europe/Berlin).
func NewClock(loc *time.Location) *Clock {
	if loc == nil {
		loc = berlin()
	}
	c := cal.NewBusinessCalendar()
	c.SetWorkHours(8*time.Hour, 18*time.Hour)
	c.AddHoliday(de.Holidays...)
	return &Clock{loc: loc, cal: c}
}

func berlin() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}

// Location is the clock's time zone.
func (c *Clock) Location() *time.Location { return c.loc }

// Add returns the instant when d of business time has passed after t (UTC).
// d <= 0 returns t.
func (c *Clock) Add(t time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return t.UTC()
	}
	return c.cal.AddWorkHours(t.In(c.loc).Truncate(time.Second), d.Truncate(time.Second)).UTC()
}

// Between returns the business time from a to b (0 when b is not after a).
func (c *Clock) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	return c.cal.WorkHoursInRange(a.In(c.loc).Truncate(time.Second), b.In(c.loc).Truncate(time.Second))
}

// Holiday names the public holiday on t's day, if any.
func (c *Clock) Holiday(t time.Time) (string, bool) {
	_, obs, h := c.cal.IsHoliday(t.In(c.loc))
	if !obs || h == nil {
		return "", false
	}
	return h.Name, true
}

// FormatBusiness renders business time for people: "2 h 05 min", "40 min".
func FormatBusiness(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case h == 0:
		return fmt.Sprintf("%d min", m)
	case m == 0:
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %02d min", h, m)
}

// SLA levels.
const (
	LevelOK      = "ok"
	LevelWarning = "warning" // 80 % of the target used
	LevelBreach  = "breach"  // the target passed
)

// SLA clocks.
const (
	ClockFirstResponse = "first_response"
	ClockResolution    = "resolution"
)

// SLAState is where a ticket stands against its targets at one moment.
type SLAState struct {
	Clock     string        // the clock that matters now: first_response, resolution, or "" when done
	Paused    bool          // waiting on the provider
	Due       *time.Time    // when the current clock's target passes (nil while paused or done)
	Left      time.Duration // business time left on the current clock (negative: overdue)
	Level     string        // ok, warning, breach
	Text      string        // for lists: "response in 2 h 10 min", "resolution overdue by 1 h" (English)
	TextID    string        // Text's message id for the page's language: "response in {{.Left}}"
	TextLeft  string        // its parameter Left: FormatBusiness of the time left or overdue
	TextTo    string        // its parameter Ticket: the ticket merged into
	FirstMet  *bool         // first response in time (nil until it happened)
	ResultMet *bool         // resolved in time (nil until resolved)
}

// Tone names the badge colour of the standing (ok, warn, bad, off).
func (st SLAState) Tone() string {
	switch {
	case st.Level == LevelBreach:
		return "bad"
	case st.Level == LevelWarning:
		return "warn"
	case st.Paused || st.Clock == "":
		return "off"
	}
	return "ok"
}

// FirstResponseLabel says whether the first response came in time.
func (st SLAState) FirstResponseLabel() string {
	switch {
	case st.FirstMet == nil:
		return ""
	case *st.FirstMet:
		return "in time"
	}
	return "late"
}

// say sets the standing's text: the message id with its parameters (Left, Ticket),
// and the English text for logs and tests.
func (st *SLAState) say(id, left, ticket string) {
	st.TextID, st.TextLeft, st.TextTo = id, left, ticket
	r := strings.NewReplacer("{{.Left}}", left, "{{.Ticket}}", ticket)
	st.Text = r.Replace(id)
}

// levelOf grades used of target.
func levelOf(used, target time.Duration) string {
	switch {
	case used >= target:
		return LevelBreach
	case used >= warnPart(target):
		return LevelWarning
	}
	return LevelOK
}

// usedResolution is the business time the resolution clock has consumed at now.
func (c *Clock) usedResolution(t *Ticket, now time.Time) time.Duration {
	used := time.Duration(t.SLAUsedSeconds) * time.Second
	if t.SLARunningSince != nil {
		used += c.Between(*t.SLARunningSince, now)
	}
	return used
}

// State computes the ticket's SLA standing at now.
func (c *Clock) State(t *Ticket, now time.Time) SLAState {
	tg := targets[t.Priority]
	var st SLAState
	if t.FirstResponseAt != nil {
		met := !t.FirstResponseAt.After(t.FirstResponseDue)
		st.FirstMet = &met
	}
	if t.Status == StatusResolved || t.Status == StatusClosed {
		if t.MergedIntoID != nil {
			st.say("merged into {{.Ticket}}", "", TicketNumber(*t.MergedIntoID))
			st.Level = LevelOK
			return st
		}
		met := time.Duration(t.SLAUsedSeconds)*time.Second <= tg.Resolution
		st.ResultMet = &met
		st.Level = LevelOK
		if met {
			st.say("resolved within target", "", "")
		} else {
			st.Level = LevelBreach
			st.say("resolved late", "", "")
		}
		return st
	}
	if t.FirstResponseAt == nil {
		st.Clock = ClockFirstResponse
		due := t.FirstResponseDue
		st.Due = &due
		used := c.Between(t.CreatedAt, now)
		st.Level = levelOf(used, tg.FirstResponse)
		if now.Before(due) {
			st.Left = c.Between(now, due)
			st.say("response in {{.Left}}", FormatBusiness(st.Left), "")
		} else {
			st.Left = -c.Between(due, now)
			st.say("response overdue by {{.Left}}", FormatBusiness(st.Left), "")
		}
		return st
	}
	st.Clock = ClockResolution
	used := c.usedResolution(t, now)
	st.Level = levelOf(used, tg.Resolution)
	st.Left = tg.Resolution - used
	if t.SLARunningSince == nil {
		st.Paused = true
		if st.Left >= 0 {
			st.say("paused, {{.Left}} left", FormatBusiness(st.Left), "")
		} else {
			st.say("paused, overdue by {{.Left}}", FormatBusiness(st.Left), "")
		}
		return st
	}
	st.Due = t.ResolutionDue
	if st.Left > 0 {
		st.say("resolution in {{.Left}}", FormatBusiness(st.Left), "")
	} else {
		st.say("resolution overdue by {{.Left}}", FormatBusiness(st.Left), "")
	}
	return st
}

// schedule recomputes the due and warning instants from the ticket's
// priority, creation time and resolution clock. Call it after every change
// to the priority, the status or the clock.
func (c *Clock) schedule(t *Ticket) {
	tg := targets[t.Priority]
	t.FirstResponseDue = c.Add(t.CreatedAt, tg.FirstResponse)
	t.FirstResponseWarnAt = c.Add(t.CreatedAt, warnPart(tg.FirstResponse))
	if t.SLARunningSince == nil {
		t.ResolutionDue, t.ResolutionWarnAt = nil, nil
		return
	}
	used := time.Duration(t.SLAUsedSeconds) * time.Second
	since := *t.SLARunningSince
	// A target already used up in an earlier segment is due at once.
	due := c.Add(since, tg.Resolution-used)
	warn := c.Add(since, warnPart(tg.Resolution)-used)
	t.ResolutionDue, t.ResolutionWarnAt = &due, &warn
}

// runs reports whether the resolution clock runs in status s.
func runs(s Status) bool { return s == StatusNew || s == StatusOpen }

// moveClock switches the ticket to status to at now, stopping or starting
// the resolution clock, and reschedules.
func (c *Clock) moveClock(t *Ticket, to Status, now time.Time) {
	if t.SLARunningSince != nil && !runs(to) {
		t.SLAUsedSeconds += int64(c.Between(*t.SLARunningSince, now) / time.Second)
		t.SLARunningSince = nil
	}
	if t.SLARunningSince == nil && runs(to) {
		n := now
		t.SLARunningSince = &n
	}
	t.Status = to
	c.schedule(t)
}
