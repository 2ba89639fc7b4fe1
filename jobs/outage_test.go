package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cardata/app/db/dbtest"
	"cardata/jobs"
)

// syncBuffer is a log sink the scheduler's goroutines may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A tick that falls into a database outage (a PostgreSQL restart, found by
// the soak) is claimed and run once the database is back, and every tick
// of the outage is recorded; before, its claim failed once and the tick was
// lost.
func TestTickDuringADatabaseOutageRunsWhenTheDatabaseIsBack(t *testing.T) {
	t.Parallel()
	u, gdb := freshDB(t)
	logs := &syncBuffer{}
	s := newScheduler(t, gdb, "outage")
	s.Log = slog.New(slog.NewTextHandler(logs, nil))
	s.MustRegister(jobs.Job{Name: "t.every_second", Spec: "* * * * * *", Run: func(ctx context.Context, r *jobs.Run) error { return nil }})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Loop(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, patience, "a first tick to run", func() bool {
		for _, r := range runs(t, gdb, "t.every_second") {
			if r.Outcome == jobs.Succeeded {
				return true
			}
		}
		return false
	})

	// The outage: no new connections, every open one ended, as in a restart.
	su, err := pgx.Connect(context.Background(), dbtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	name := pgx.Identifier{dbtest.Name(u)}.Sanitize()
	if _, err := su.Exec(context.Background(), "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = su.Exec(context.Background(), "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") })
	down := time.Now()
	if _, err := su.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbtest.Name(u)); err != nil {
		t.Fatal(err)
	}
	// The outage lasts until two ticks have failed to be recorded and are
	// being tried again: the first one's claim, the next one's skip.
	eventually(t, patience, "two ticks to fail during the outage", func() bool {
		return strings.Count(logs.String(), "database unavailable, trying again") >= 2
	})
	if _, err := su.Exec(context.Background(), "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	up := time.Now()

	// Every tick between the outage's start and its end is recorded (run or
	// skipped because the first one was still waiting), none lost.
	first, last := down.Truncate(time.Second).Add(time.Second), up.Truncate(time.Second)
	eventually(t, patience, "every tick of the outage recorded", func() bool {
		seen := map[time.Time]bool{}
		ran := false
		var recs []jobs.RunRecord
		// The pool's connections were ended: the first queries may fail.
		if err := gdb.Where("job = ?", "t.every_second").Find(&recs).Error; err != nil {
			return false
		}
		for _, r := range recs {
			if r.ScheduledFor == nil {
				continue
			}
			at := r.ScheduledFor.UTC()
			seen[at] = true
			ran = ran || (r.Outcome == jobs.Succeeded && !at.Before(first) && !at.After(last))
		}
		for at := first; !at.After(last); at = at.Add(time.Second) {
			if !seen[at.UTC()] {
				return false
			}
		}
		return ran
	})
	if strings.Contains(logs.String(), "job tick not claimed") || strings.Contains(logs.String(), "job tick not recorded") {
		t.Errorf("a tick was given up during a short outage:\n%s", logs.String())
	}
}
