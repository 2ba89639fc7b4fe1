// Package signin is what the three password sign-ins (staff, provider
// portal, customer pages) share: the throttle on failed attempts per account
// and per client address, the attempt record, and a password check that
// takes as long for unknown accounts as for known ones.
package signin

import (
	"strings"
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

// Attempts is one surface's attempt table (email, client_addr, succeeded, at).
type Attempts struct {
	Table    string
	Throttle Throttle
}

// Allow returns ErrThrottled while the account or the address has failed
// too often within the window.
func (a Attempts) Allow(db *gorm.DB, email, addr string, now time.Time) error {
	t := a.Throttle.withDefaults()
	var n struct{ ByAccount, ByAddr int64 }
	err := db.Raw(`SELECT count(*) FILTER (WHERE lower(email) = ?) AS by_account, count(*) FILTER (WHERE client_addr = ?) AS by_addr
		FROM `+a.Table+` WHERE NOT succeeded AND at > ?`, email, addr, now.Add(-t.Window)).Scan(&n).Error
	if err != nil {
		return errs.Wrap(err, "count attempts")
	}
	if int(n.ByAccount) >= t.PerAccount || int(n.ByAddr) >= t.PerAddress {
		return ErrThrottled
	}
	return nil
}

// Record stores an attempt; a successful one clears the account's failures.
func (a Attempts) Record(db *gorm.DB, email, addr string, ok bool, now time.Time) error {
	if err := db.Exec(`INSERT INTO `+a.Table+` (email, client_addr, succeeded, at) VALUES (?, ?, ?, ?)`, email, addr, ok, now).Error; err != nil {
		return errs.Wrap(err, "record attempt")
	}
	if ok {
		if err := db.Exec(`DELETE FROM `+a.Table+` WHERE lower(email) = ? AND NOT succeeded`, email).Error; err != nil {
			return errs.Wrap(err, "clear attempts")
		}
	}
	return nil
}

// dummyHash keeps the response time of unknown accounts equal to known ones.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("cardata-timing-equaliser"), bcrypt.MinCost)

// PasswordMatches compares password with a bcrypt hash; with no hash (an
// unknown account) it spends the same time and reports false.
func PasswordMatches(hash, password string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
