package db_test

import (
	"strings"
	"testing"

	"cardata/app/db"
)

func TestPlanPoolSplitsThePoolAndLeavesRequestsTheirShare(t *testing.T) {
	b, err := db.PlanPool(20, db.PoolBudget{})
	if err != nil {
		t.Fatal(err)
	}
	if b != (db.PoolBudget{Total: 20, Jobs: 4, Push: 3, Ingest: 4, APIReads: 3, Ledger: 2}) || b.Requests() != 4 || b.JobRuns() != 2 || b.PushAttempts() != 2 {
		t.Errorf("default budget of 20: %+v (requests %d)", b, b.Requests())
	}
	// The smallest pool that fits: every share at its minimum.
	b, err = db.PlanPool(10, db.PoolBudget{})
	if err != nil {
		t.Fatal(err)
	}
	if b != (db.PoolBudget{Total: 10, Jobs: 3, Push: 2, Ingest: 1, APIReads: 1, Ledger: 1}) || b.Requests() != 2 {
		t.Errorf("budget of 10: %+v (requests %d)", b, b.Requests())
	}
	if _, err := db.PlanPool(9, db.PoolBudget{}); err == nil || !strings.Contains(err.Error(), "DB_MAX_OPEN_CONNS=9 is too small") ||
		!strings.Contains(err.Error(), "at least 10") {
		t.Errorf("9: %v", err)
	}
	// Set shares are kept; the others make room around them.
	b, err = db.PlanPool(20, db.PoolBudget{Ingest: 8})
	if err != nil || b.Ingest != 8 || b.Requests() < db.MinPoolRequests {
		t.Errorf("ingest 8 of 20: %+v (requests %d), %v", b, b.Requests(), err)
	}
	if _, err := db.PlanPool(20, db.PoolBudget{Ingest: 10, Jobs: 8}); err == nil || !strings.Contains(err.Error(), "DB_POOL_*") {
		t.Errorf("over-committed shares: %v", err)
	}
	if _, err := db.PlanPool(20, db.PoolBudget{Jobs: 2}); err == nil || !strings.Contains(err.Error(), "DB_POOL_JOBS must be at least 3") {
		t.Errorf("jobs 2: %v", err)
	}
	for total := 10; total <= 200; total++ {
		b, err := db.PlanPool(total, db.PoolBudget{})
		if err != nil || b.Requests() < db.MinPoolRequests || b.Jobs < db.MinPoolJobs || b.Push < db.MinPoolPush {
			t.Fatalf("%d: %+v, %v", total, b, err)
		}
	}
}
