// Package signin is what the three password sign-ins (staff, provider
// portal, customer pages) share: the throttle on failed attempts per account
// and per client address, the attempt record, and a password check that
// takes as long for unknown accounts as for known ones.
package signin

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"cardata/policies/errs"
)

// Sign-in errors; the message never says whether the account exists.
var (
	ErrBadCredentials = errs.New(errs.Unauthorized, "login_failed", "e-mail or password is wrong")
	ErrThrottled      = errs.New(errs.TooMany, "login_throttled", "too many failed sign-ins; wait a few minutes and try again")
)

// Throttle limits failed sign-ins; zero fields take the defaults (5 per
// account, 20 per address, within 15 minutes).
type Throttle struct {
	PerAccount int
	PerAddress int
	Window     time.Duration
}

func (t Throttle) withDefaults() Throttle {
	if t.PerAccount <= 0 {
		t.PerAccount = 5
	}
	if t.PerAddress <= 0 {
		t.PerAddress = 20
	}
	if t.Window <= 0 {
		t.Window = 15 * time.Minute
	}
	return t
}

// Email normalises a sign-in e-mail (lower case, trimmed, at most 320
// characters) for lookups and attempts.
func Email(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 320 {
		s = s[:320]
	}
	return s
}

// Attempts is one surface's attempt table (id, email, client_addr,
// succeeded, at) and its throttle.
type Attempts struct {
	Table    string
	Throttle Throttle
	// Cost is the bcrypt cost of the surface's real password hashes
	// (BCRYPT_COST); an unknown account is checked against a dummy hash of
	// the same cost, so it takes as long as a known one.
	Cost int
}

// Attempt is a sign-in attempt that holds one of the throttle's slots: it
// counts as a failure from Begin until Finish reports a success.
type Attempt struct {
	a     Attempts
	id    int64
	email string
}

// Begin reserves a slot for one password check, or returns ErrThrottled
// while the account or the address has used up its failures within the
// window. The count and the reservation happen under transaction-scoped
// advisory locks on the account and the address, so concurrent attempts
// (a burst of parallel requests, or several replicas) cannot all read the
// same count and all pass: at most PerAccount checks run per window.
func (a Attempts) Begin(db *gorm.DB, email, addr string, now time.Time) (*Attempt, error) {
	t := a.Throttle.withDefaults()
	at := &Attempt{a: a, email: email}
	err := db.Transaction(func(tx *gorm.DB) error {
		// Account before address, always: every attempt takes the two locks
		// in the same order, so two attempts never wait for each other in a
		// cycle. The lock class keeps accounts, addresses and tables apart.
		for _, k := range [][2]string{{a.Table + ":account", email}, {a.Table + ":address", addr}} {
			if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext(?), hashtext(?))`, k[0], k[1]).Error; err != nil {
				return errs.Wrap(err, "lock attempts")
			}
		}
		var n struct{ ByAccount, ByAddr int64 }
		err := tx.Raw(`SELECT count(*) FILTER (WHERE lower(email) = ?) AS by_account, count(*) FILTER (WHERE client_addr = ?) AS by_addr
			FROM `+a.Table+` WHERE NOT succeeded AND at > ? AND (lower(email) = ? OR client_addr = ?)`,
			email, addr, now.Add(-t.Window), email, addr).Scan(&n).Error
		if err != nil {
			return errs.Wrap(err, "count attempts")
		}
		if int(n.ByAccount) >= t.PerAccount || int(n.ByAddr) >= t.PerAddress {
			return ErrThrottled
		}
		err = tx.Raw(`INSERT INTO `+a.Table+` (email, client_addr, succeeded, at) VALUES (?, ?, false, ?) RETURNING id`,
			email, addr, now).Scan(&at.id).Error
		return errs.Wrap(err, "record attempt")
	})
	if err != nil {
		return nil, err
	}
	return at, nil
}

// Check compares password with a bcrypt hash; with no hash (an unknown
// account, or one without a password) it compares against a dummy hash of
// the same cost and reports false.
func (at *Attempt) Check(hash, password string) bool {
	if hash == "" {
		dummyChecks(at.a.Cost).Add(1)
		_ = bcrypt.CompareHashAndPassword(DummyHash(at.a.Cost), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// Finish settles the attempt. A failure keeps its slot for the window; a
// success marks the attempt succeeded and clears the account's failures,
// which frees the account's slots.
func (at *Attempt) Finish(db *gorm.DB, ok bool) error {
	if !ok {
		return nil
	}
	err := db.Exec(`WITH done AS (UPDATE `+at.a.Table+` SET succeeded = true WHERE id = ?)
		DELETE FROM `+at.a.Table+` WHERE lower(email) = ? AND NOT succeeded AND id <> ?`, at.id, at.email, at.id).Error
	return errs.Wrap(err, "clear attempts")
}

// normalCost is the cost bcrypt.GenerateFromPassword really uses for cost.
func normalCost(cost int) int {
	if cost < bcrypt.MinCost {
		return bcrypt.DefaultCost
	}
	return min(cost, bcrypt.MaxCost)
}

var dummies, dummyCounts sync.Map // cost → []byte, cost → *atomic.Int64

// DummyHash returns the hash an unknown account is checked against: a hash
// of a fixed password made with cost, so the comparison costs what a real
// account's does. It is made once per cost.
func DummyHash(cost int) []byte {
	cost = normalCost(cost)
	if h, ok := dummies.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("cardata-timing-equaliser"), cost)
	if err != nil {
		// Only an out-of-range cost fails, and normalCost rules that out.
		panic("signin: dummy hash: " + err.Error())
	}
	v, _ := dummies.LoadOrStore(cost, h)
	return v.([]byte)
}

func dummyChecks(cost int) *atomic.Int64 {
	v, _ := dummyCounts.LoadOrStore(normalCost(cost), new(atomic.Int64))
	return v.(*atomic.Int64)
}

// DummyChecks reports how many unknown-account checks this process has
// compared against the dummy hash of cost, so a test can see which cost a
// sign-in surface pays for an unknown e-mail without measuring time.
func DummyChecks(cost int) int64 { return dummyChecks(cost).Load() }
