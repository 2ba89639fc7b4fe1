package db

import (
	"fmt"
	"strings"
)

// PoolBudget splits the application's connection pool (DB_MAX_OPEN_CONNS)
// between the subsystems that take connections on their own. Each one is
// bounded by its share: a semaphore sized from it (job runs, push
// attempts, ingest writers, read batches, ledger committers). What the
// shares leave is for HTTP requests (admin and portal pages, the API's
// other endpoints, token and VIN look-ups), which so can never be starved
// by background work, however much of it falls due at once.
//
// Shares only add up when nobody holds a connection while waiting for
// another from the same pool; the job scheduler is built that way (see
// jobs.Session) and the transactions of the services never call a service
// that takes a second connection.
type PoolBudget struct {
	Total int // the pool's size (DB_MAX_OPEN_CONNS)
	// Jobs: the scheduler's session (every job lock and the scheduler's own
	// statements), the e-mail outbox worker, and one per job body running
	// at once (JobRuns). DB_POOL_JOBS.
	Jobs int
	// Push: the push worker's loop (fan-out and claims) and one per push
	// attempt in the database at once (PushAttempts). DB_POOL_PUSH.
	Push int
	// Ingest: telemetry batches written at once. DB_POOL_INGEST.
	Ingest int
	// APIReads: pipelined provider API read batches at once. DB_POOL_API_READS.
	APIReads int
	// Ledger: delivery-ledger commits at once. DB_POOL_LEDGER.
	Ledger int
}

// The smallest shares that work, and what requests keep at least.
const (
	MinPoolJobs     = 3 // session, outbox, one run
	MinPoolPush     = 2 // loop, one attempt
	MinPoolIngest   = 1
	MinPoolAPIReads = 1
	MinPoolLedger   = 1
	MinPoolRequests = 2
)

// Requests is what the shares leave for HTTP requests.
func (b PoolBudget) Requests() int {
	return b.Total - b.Jobs - b.Push - b.Ingest - b.APIReads - b.Ledger
}

// JobRuns is how many job bodies may run at once.
func (b PoolBudget) JobRuns() int { return b.Jobs - 2 }

// PushAttempts is how many push attempts may use the database at once.
func (b PoolBudget) PushAttempts() int { return b.Push - 1 }

func (b PoolBudget) String() string {
	return fmt.Sprintf("jobs %d + push %d + ingest %d + API reads %d + ledger %d + requests %d = %d",
		b.Jobs, b.Push, b.Ingest, b.APIReads, b.Ledger, b.Requests(), b.Total)
}

// PlanPool completes want for a pool of total connections: a zero share is
// sized from the pool (a fifth for jobs and for ingest, 15% for pushes and
// for API reads, a tenth for the ledger, never below its minimum, and
// smaller again as far as needed to leave requests MinPoolRequests); a
// share that is set is kept. It fails, naming the settings, when the
// shares do not fit.
func PlanPool(total int, want PoolBudget) (PoolBudget, error) {
	b := want
	b.Total = total
	type share struct {
		v        *int
		min      int
		percent  int
		setting  string
		explicit bool
	}
	shares := []share{ // in the order they give way when the pool is small
		{&b.Ingest, MinPoolIngest, 20, "DB_POOL_INGEST", want.Ingest != 0},
		{&b.APIReads, MinPoolAPIReads, 15, "DB_POOL_API_READS", want.APIReads != 0},
		{&b.Push, MinPoolPush, 15, "DB_POOL_PUSH", want.Push != 0},
		{&b.Jobs, MinPoolJobs, 20, "DB_POOL_JOBS", want.Jobs != 0},
		{&b.Ledger, MinPoolLedger, 10, "DB_POOL_LEDGER", want.Ledger != 0},
	}
	var bad []string
	for _, s := range shares {
		switch {
		case s.explicit && *s.v < s.min:
			bad = append(bad, fmt.Sprintf("%s must be at least %d, got %d", s.setting, s.min, *s.v))
		case !s.explicit:
			*s.v = max(s.min, total*s.percent/100)
		}
	}
	if len(bad) > 0 {
		return b, fmt.Errorf("connection pool budget: %s", strings.Join(bad, "; "))
	}
	for b.Requests() < MinPoolRequests {
		// The largest sized share gives one connection (the first listed on a tie).
		var give *int
		for _, s := range shares {
			if !s.explicit && *s.v > s.min && (give == nil || *s.v > *give) {
				give = s.v
			}
		}
		if give == nil {
			taken := total - b.Requests()
			return b, fmt.Errorf("connection pool budget: DB_MAX_OPEN_CONNS=%d is too small: jobs %d, push %d, ingest %d, "+
				"API reads %d and ledger %d take %d connections, and HTTP requests need at least %d more; "+
				"raise DB_MAX_OPEN_CONNS to at least %d or lower the DB_POOL_* settings",
				total, b.Jobs, b.Push, b.Ingest, b.APIReads, b.Ledger, taken, MinPoolRequests, taken+MinPoolRequests)
		}
		*give--
	}
	return b, nil
}
