package support

import (
	"testing"
	"time"
)

var berlinLoc = berlin()

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, berlinLoc)
	if err != nil {
		panic(err)
	}
	return t
}

func TestBusinessClockAddsWorkingHoursOnly(t *testing.T) {
	t.Parallel()
	c := NewClock(berlinLoc)
	cases := []struct {
		name  string
		start string
		add   time.Duration
		want  string
	}{
		{"within a day", "2026-03-03 09:00", 4 * time.Hour, "2026-03-03 13:00"},
		{"before opening starts at 08:00", "2026-03-03 06:30", 1 * time.Hour, "2026-03-03 09:00"},
		{"after closing starts next morning", "2026-03-03 19:00", 1 * time.Hour, "2026-03-04 09:00"},
		{"exactly at closing", "2026-03-03 18:00", 30 * time.Minute, "2026-03-04 08:30"},
		{"over the weekend", "2026-03-06 16:00", 4 * time.Hour, "2026-03-09 10:00"},
		{"opened on Saturday", "2026-03-07 11:00", 2 * time.Hour, "2026-03-09 10:00"},
		{"Christmas: Thursday 24th is a working day, 25th and 26th holidays", "2026-12-24 16:00", 4 * time.Hour, "2026-12-28 10:00"},
		{"New Year 2027 is a Friday holiday", "2026-12-31 17:00", 2 * time.Hour, "2027-01-04 09:00"},
		{"Good Friday and Easter Monday 2026", "2026-04-02 17:00", 3 * time.Hour, "2026-04-07 10:00"},
		{"summer time starts (29 March 2026)", "2026-03-27 17:00", 2 * time.Hour, "2026-03-30 09:00"},
		{"winter time starts (25 October 2026)", "2026-10-23 17:00", 2 * time.Hour, "2026-10-26 09:00"},
		{"several days", "2026-03-02 09:00", 30 * time.Hour, "2026-03-05 09:00"},
		{"zero", "2026-03-07 11:00", 0, "2026-03-07 11:00"},
	}
	for _, tc := range cases {
		got := c.Add(at(tc.start), tc.add).In(berlinLoc)
		if want := at(tc.want); !got.Equal(want) {
			t.Errorf("%s: %s + %s = %s, want %s", tc.name, tc.start, tc.add, got.Format("2006-01-02 15:04 MST"), tc.want)
		}
	}
}

func TestBusinessClockMeasuresBetween(t *testing.T) {
	t.Parallel()
	c := NewClock(berlinLoc)
	cases := []struct {
		name     string
		from, to string
		want     time.Duration
	}{
		{"same day", "2026-03-03 09:15", "2026-03-03 17:45", 8*time.Hour + 30*time.Minute},
		{"night and early morning do not count", "2026-03-03 17:00", "2026-03-04 09:00", 2 * time.Hour},
		{"weekend does not count", "2026-03-06 17:00", "2026-03-09 09:00", 2 * time.Hour},
		{"a whole week", "2026-03-02 08:00", "2026-03-09 08:00", 50 * time.Hour},
		{"Christmas week 2026: Friday 25th is off", "2026-12-21 08:00", "2026-12-28 08:00", 40 * time.Hour},
		{"across New Year 2027", "2026-12-31 08:00", "2027-01-04 18:00", 20 * time.Hour},
		// 2026-03-29 has 23 hours; a business day still has 10.
		{"over the spring DST change", "2026-03-27 08:00", "2026-03-30 18:00", 20 * time.Hour},
		{"over the autumn DST change", "2026-10-23 08:00", "2026-10-26 18:00", 20 * time.Hour},
		{"reversed is zero", "2026-03-04 09:00", "2026-03-03 09:00", 0},
	}
	for _, tc := range cases {
		if got := c.Between(at(tc.from), at(tc.to)); got != tc.want {
			t.Errorf("%s: %s .. %s = %s, want %s", tc.name, tc.from, tc.to, got, tc.want)
		}
	}
	// Wall time across the spring change is one hour shorter than it looks.
	if d := at("2026-03-30 09:00").Sub(at("2026-03-27 17:00")); d != 63*time.Hour {
		t.Fatalf("DST fixture: %s", d)
	}
	if name, ok := c.Holiday(at("2026-12-25 12:00")); !ok || name == "" {
		t.Fatal("25 December is not a holiday")
	}
	if _, ok := c.Holiday(at("2026-01-06 12:00")); ok {
		t.Fatal("Epiphany is regional, not nationwide")
	}
}

// The resolution clock stops while the ticket waits on the provider and
// runs on from where it stopped.
func TestResolutionClockPausesWhileWaitingOnTheProvider(t *testing.T) {
	t.Parallel()
	c := NewClock(berlinLoc)
	tk := &Ticket{ID: 1, Priority: P2, CreatedAt: at("2026-03-02 09:00").UTC()} // Monday
	c.moveClock(tk, StatusNew, tk.CreatedAt)
	if got := tk.ResolutionDue.In(berlinLoc); !got.Equal(at("2026-03-05 09:00")) {
		t.Fatalf("P2 resolution due %s, want Thursday 09:00 (30 business hours)", got)
	}
	if got := tk.FirstResponseDue.In(berlinLoc); !got.Equal(at("2026-03-02 13:00")) {
		t.Fatalf("first response due %s", got)
	}
	c.moveClock(tk, StatusOpen, at("2026-03-02 10:00"))
	tk.FirstResponseAt = ptr(at("2026-03-02 10:00"))
	c.moveClock(tk, StatusWaiting, at("2026-03-02 11:00")) // 2 h used
	if tk.SLAUsedSeconds != 2*3600 || tk.ResolutionDue != nil || tk.SLARunningSince != nil {
		t.Fatalf("pause: used %d due %v running %v", tk.SLAUsedSeconds, tk.ResolutionDue, tk.SLARunningSince)
	}
	st := c.State(tk, at("2026-03-04 10:00"))
	if !st.Paused || st.Left != 28*time.Hour || st.Level != LevelOK {
		t.Fatalf("paused state %+v", st)
	}
	// The provider answers on Wednesday 10:00: 28 h left -> Friday 18:00.
	c.moveClock(tk, StatusOpen, at("2026-03-04 10:00"))
	if got := tk.ResolutionDue.In(berlinLoc); !got.Equal(at("2026-03-06 18:00")) {
		t.Fatalf("resolution due after the pause %s, want Friday 18:00", got)
	}
	// 80 % of 30 h = 24 h: 22 h after Wednesday 10:00 (8 + 10 + 4) -> Friday 12:00.
	if got := tk.ResolutionWarnAt.In(berlinLoc); !got.Equal(at("2026-03-06 12:00")) {
		t.Fatalf("warning at %s, want Friday 12:00", got)
	}
	if st := c.State(tk, at("2026-03-06 11:00")); st.Level != LevelOK {
		t.Fatalf("state %+v", st)
	}
	st = c.State(tk, at("2026-03-06 13:00"))
	if st.Level != LevelWarning || st.Left != 5*time.Hour {
		t.Fatalf("state %+v", st)
	}
	c.moveClock(tk, StatusResolved, at("2026-03-06 17:00"))
	if tk.SLAUsedSeconds != 29*3600 {
		t.Fatalf("used %s", time.Duration(tk.SLAUsedSeconds)*time.Second)
	}
	tk.ResolvedAt = ptr(at("2026-03-06 17:00"))
	if st := c.State(tk, at("2026-03-10 12:00")); st.ResultMet == nil || !*st.ResultMet {
		t.Fatalf("resolved in 29 of 30 h should be met: %+v", st)
	}
}

func TestFirstResponseStateAndFormatting(t *testing.T) {
	t.Parallel()
	c := NewClock(berlinLoc)
	tk := &Ticket{ID: 7, Priority: P1, CreatedAt: at("2026-12-24 17:30").UTC()}
	c.moveClock(tk, StatusNew, tk.CreatedAt)
	// 30 min on Thursday, then the 25th/26th and the weekend: Monday 08:30.
	if got := tk.FirstResponseDue.In(berlinLoc); !got.Equal(at("2026-12-28 08:30")) {
		t.Fatalf("P1 first response due %s", got)
	}
	st := c.State(tk, at("2026-12-26 12:00"))
	if st.Clock != ClockFirstResponse || st.Left != 30*time.Minute || st.Text != "response in 30 min" {
		t.Fatalf("%+v", st)
	}
	st = c.State(tk, at("2026-12-28 10:00"))
	if st.Level != LevelBreach || st.Text != "response overdue by 1 h 30 min" {
		t.Fatalf("%+v", st)
	}
	if FormatBusiness(125*time.Minute) != "2 h 05 min" || FormatBusiness(3*time.Hour) != "3 h" {
		t.Fatal("format")
	}
}

func ptr[T any](v T) *T { return &v }
