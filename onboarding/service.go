package onboarding

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/policies/signin"
)

// Service is the onboarding domain: registration and review of providers,
// their users and API clients, markets and market access. Every method owns
// its transaction, audits what it changes and queues its e-mails in the same
// transaction. Methods that act for a provider take its id and use it inside
// every query, so a provider can never reach another provider's records.
type Service struct {
	DB         *gorm.DB
	BcryptCost int
	// PublicURL is the base of links in e-mails (set-password links).
	PublicURL string
	// Sessions, when set, ends a provider user's sessions when they are deactivated.
	Sessions *session.Store
	Throttle signin.Throttle // limits failed portal sign-ins
	// RegistrationLimits bound the public registration per client address (Apply).
	RegistrationLimits RegistrationLimits
	// InviteTTL is how long a set-password link works (default 7 days).
	InviteTTL time.Duration
	// EligibleVehicles counts the vehicles registered in a market that could
	// be served (wired by app once the vehicles module exists); nil shows "—".
	EligibleVehicles func(ctx context.Context, market string) (int64, error)
	// SandboxFleet creates the provider's simulated fleet if it has none
	// (idempotent; wired by app to the vehicle registry). A sandbox client's
	// creation calls it; nil leaves the fleet to the sandbox job.
	SandboxFleet func(ctx context.Context, providerID int64) error
	// Now is the clock (tests may replace it).
	Now func() time.Time

	// Company sign-in (sso.go). Secrets seals the client secrets at rest
	// (nil: in clear); SignInHTTP talks to the companies' identity
	// providers (nil: a plain client with a 15 s timeout; app wires one
	// that reaches public addresses only); SignInLoopback accepts http
	// issuers on loopback addresses (development and tests); SignInRPs
	// keeps each provider's relying party (nil: built at every sign-in).
	Secrets        Sealer
	SignInHTTP     *http.Client
	SignInLoopback bool
	SignInRPs      *RPCache
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) inviteTTL() time.Duration {
	if s.InviteTTL > 0 {
		return s.InviteTTL
	}
	return 7 * 24 * time.Hour
}

func (s *Service) link(path string) string { return strings.TrimRight(s.PublicURL, "/") + path }

// randomToken returns n random bytes, URL-safe encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func notFound(what string) error {
	return errs.New(errs.NotFound, what+"_not_found", "%s not found", errs.Term(strings.ReplaceAll(what, "_", " ")))
}

// translate turns gorm's not-found into the domain's 404 and wraps the rest.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return notFound(what)
	}
	return errs.Wrap(err, "load "+what)
}

// mail queues an e-mail about a provider in tx.
func enqueueMail(ctx context.Context, tx *gorm.DB, kind, to, subject, body string, providerID int64, dedupe string) error {
	return jobs.Enqueue(ctx, tx, jobs.Message{Kind: kind, To: to, Subject: subject, Body: body,
		ObjectType: "provider", ObjectID: fmt.Sprint(providerID), DedupeKey: dedupe})
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
