package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/jobs"
	"cardata/policies"
)

// pool opens a separate connection pool on the database at url, the way a
// second replica would.
func pool(t testing.TB, url string) *gorm.DB {
	t.Helper()
	gdb, err := db.Open(url, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(gdb) })
	return gdb
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newScheduler(t testing.TB, gdb *gorm.DB, instance string) *jobs.Scheduler {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s := jobs.NewScheduler(gdb, loc, quietLog())
	s.Instance = instance
	s.HeartbeatEvery = 200 * time.Millisecond
	// Long: a tick claimed and not yet locked counts as abandoned after
	// StaleGrace, and on a loaded machine claim and lock can be far apart.
	s.StaleGrace = patience
	s.LockRetry = 300 * time.Millisecond
	return s
}

// freshDB returns a migrated database's URL and a pool on it.
func freshDB(t testing.TB) (string, *gorm.DB) {
	t.Helper()
	u := dbtest.URL(t)
	return u, pool(t, u)
}

func asSystem() context.Context {
	return policies.WithPrincipal(context.Background(), policies.System("test"))
}

func asStaff(id int64, roles ...string) context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindStaff, ID: id,
		Email: "staff@example.test", Name: "Staff", Roles: roles})
}

// patience bounds waits: no estimate of how long anything takes, only
// a hang reaches it.
const patience = 2 * time.Minute

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runs(t testing.TB, gdb *gorm.DB, job string) []jobs.RunRecord {
	t.Helper()
	var out []jobs.RunRecord
	if err := gdb.Where("job = ?", job).Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}
