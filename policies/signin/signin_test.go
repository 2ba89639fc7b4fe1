package signin_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"cardata/app/db/dbtest"
	"cardata/policies/signin"
)

func TestDummyHashHasTheRequestedCost(t *testing.T) {
	t.Parallel()
	for cost, want := range map[int]int{4: 4, 6: 6, 0: bcrypt.DefaultCost} {
		got, err := bcrypt.Cost(signin.DummyHash(cost))
		if err != nil || got != want {
			t.Errorf("DummyHash(%d) has cost %d (%v), want %d", cost, got, err, want)
		}
	}
}

// Parallel attempts for one account reserve their slots one at a time:
// exactly PerAccount get to check a password, the rest are throttled; a
// success frees the account's slots.
func TestBeginReservesSlotsAtomically(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	a := signin.Attempts{Table: "login_attempts", Throttle: signin.Throttle{PerAccount: 3, PerAddress: 100, Window: time.Hour}, Cost: 4}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var (
		mu       sync.Mutex
		reserved []*signin.Attempt
		wg       sync.WaitGroup
	)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := a.Begin(db, "eve@test.local", "192.0.2.1", now)
			switch {
			case err == nil:
				mu.Lock()
				reserved = append(reserved, at)
				mu.Unlock()
			case !errors.Is(err, signin.ErrThrottled):
				t.Errorf("attempt %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if len(reserved) != 3 {
		t.Fatalf("%d attempts reserved a slot, want 3", len(reserved))
	}
	if reserved[0].Check("", "anything") {
		t.Fatal("an unknown account matched")
	}
	if err := reserved[0].Finish(db, true); err != nil {
		t.Fatal(err)
	}
	var failures int64
	db.Raw("SELECT count(*) FROM login_attempts WHERE NOT succeeded").Scan(&failures)
	if failures != 0 {
		t.Fatalf("%d failures left after a success", failures)
	}
	if _, err := a.Begin(db, "eve@test.local", "192.0.2.1", now); err != nil {
		t.Fatalf("after a success: %v", err)
	}
	// The window passes (the clock is the caller's).
	later := now.Add(2 * time.Hour)
	for range 3 {
		if _, err := a.Begin(db, "mallory@test.local", "192.0.2.2", now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Begin(db, "mallory@test.local", "192.0.2.2", now); !errors.Is(err, signin.ErrThrottled) {
		t.Fatalf("fourth: %v", err)
	}
	if _, err := a.Begin(db, "mallory@test.local", "192.0.2.2", later); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
