// Package session keeps server-side login sessions in PostgreSQL. The
// browser holds a random token; the table holds only its SHA-256, so a
// database leak does not hand out live sessions.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
)

// Session is one row.
type Session struct {
	ID          int64 `gorm:"primaryKey"`
	TokenHash   []byte
	SubjectKind string
	SubjectID   int64
	ClientAddr  string
	UserAgent   string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time // absolute expiry
	// IdentityProvider names the OpenID provider the session was started
	// through (policies/identity RP name; empty: a local password), and
	// IdentitySubject the subject it signed in.
	IdentityProvider string
	IdentitySubject  string
	// Pending is set while a sign-in waits for its second step ("code": a
	// one-time code, "enrol": setting up the authenticator the account's
	// role requires). Such a session names its subject but is no sign-in:
	// it resolves to no principal (app/web.Sessions).
	Pending string
}

// The second steps a pending session waits for.
const (
	PendingCode  = "code"
	PendingEnrol = "enrol"
)

// Store creates and resolves sessions with an idle and an absolute limit.
type Store struct {
	DB     *gorm.DB
	Idle   time.Duration
	MaxAge time.Duration
	Now    func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken returns 32 random bytes, URL-safe encoded.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Create starts a session and returns its token for the cookie.
func (s *Store) Create(ctx context.Context, kind string, subjectID int64, addr, agent string) (string, *Session, error) {
	return s.CreateVia(ctx, kind, subjectID, addr, agent, "", "")
}

// CreateVia starts a session signed in through an OpenID provider
// (identity.RP name) as its subject.
func (s *Store) CreateVia(ctx context.Context, kind string, subjectID int64, addr, agent, provider, subject string) (string, *Session, error) {
	return s.create(ctx, &Session{SubjectKind: kind, SubjectID: subjectID, ClientAddr: addr, UserAgent: agent,
		IdentityProvider: provider, IdentitySubject: subject}, s.MaxAge)
}

// PendingTTL bounds a pending session: the second step of a sign-in is
// done within it or the password is asked again.
const PendingTTL = 10 * time.Minute

// CreatePending starts a session that waits for the second step of a
// password sign-in (PendingCode, PendingEnrol); it lapses after PendingTTL.
// Once the step is done the caller ends it and starts a full session
// (Create), so the token that passed only the password never becomes one.
func (s *Store) CreatePending(ctx context.Context, kind string, subjectID int64, addr, agent, pending string) (string, *Session, error) {
	return s.create(ctx, &Session{SubjectKind: kind, SubjectID: subjectID, ClientAddr: addr, UserAgent: agent, Pending: pending},
		min(PendingTTL, s.MaxAge))
}

func (s *Store) create(ctx context.Context, row *Session, ttl time.Duration) (string, *Session, error) {
	token := NewToken()
	now := s.now()
	if len(row.UserAgent) > 300 {
		row.UserAgent = row.UserAgent[:300]
	}
	row.TokenHash, row.CreatedAt, row.LastSeenAt, row.ExpiresAt = hash(token), now, now, now.Add(ttl)
	if err := s.DB.WithContext(ctx).Create(row).Error; err != nil {
		return "", nil, errs.Wrap(err, "create session")
	}
	return token, row, nil
}

// ErrNoSession is returned for unknown, idle or expired sessions.
var ErrNoSession = errs.New(errs.Unauthorized, "session_expired", "please sign in")

// Lookup resolves a token, enforcing both limits, and refreshes last-seen
// (at most once a minute, to spare the database).
func (s *Store) Lookup(ctx context.Context, token string) (*Session, error) {
	if token == "" {
		return nil, ErrNoSession
	}
	var row Session
	err := s.DB.WithContext(ctx).Where("token_hash = ?", hash(token)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, errs.Wrap(err, "lookup session")
	}
	now := s.now()
	if now.After(row.ExpiresAt) || now.Sub(row.LastSeenAt) > s.Idle {
		_ = s.DB.WithContext(ctx).Delete(&Session{}, row.ID).Error
		return nil, ErrNoSession
	}
	if now.Sub(row.LastSeenAt) > time.Minute {
		row.LastSeenAt = now
		_ = s.DB.WithContext(ctx).Model(&Session{}).Where("id = ?", row.ID).Update("last_seen_at", now).Error
	}
	return &row, nil
}

// Delete ends the session behind token (logout).
func (s *Store) Delete(ctx context.Context, token string) error {
	return errs.Wrap(s.DB.WithContext(ctx).Where("token_hash = ?", hash(token)).Delete(&Session{}).Error, "delete session")
}

// DeleteForSubject ends every session of a subject (deactivation, password change).
func (s *Store) DeleteForSubject(ctx context.Context, tx *gorm.DB, kind string, id int64) error {
	return errs.Wrap(tx.WithContext(ctx).Where("subject_kind = ? AND subject_id = ?", kind, id).Delete(&Session{}).Error, "delete sessions")
}

// Purge removes sessions past either limit and returns how many.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	now := s.now()
	res := s.DB.WithContext(ctx).Where("expires_at < ? OR last_seen_at < ?", now, now.Add(-s.Idle)).Delete(&Session{})
	return res.RowsAffected, errs.Wrap(res.Error, "purge sessions")
}
