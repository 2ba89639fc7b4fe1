// Package identity signs people in through an external OpenID Connect
// provider: cardata is the relying party (RP) of an authorization code flow
// with PKCE (golang.org/x/oauth2), and the ID token is verified with
// github.com/coreos/go-oidc/v3 (signature against the provider's published
// keys, issuer, audience, expiry) plus the nonce of this sign-in.
//
// It knows nothing of HTTP frameworks, accounts or roles: a surface asks it
// for the URL to send the browser to and for the verified identity when the
// browser comes back, and decides itself who that identity is in cardata.
// Staff (/admin, the company's identity provider) and vehicle owners (/my,
// the manufacturer's customer identity) use it; so can provider users with
// their own company's provider, one RP per provider.
//
// How to use it (one RP per provider, built once at start):
//
//	rp, err := identity.New(db, identity.Settings{Name: "staff", Issuer: ..., ClientID: ...,
//		ClientSecret: ..., RedirectURL: publicURL + "/admin/oidc/callback"})
//
//	// GET /admin/oidc/login: remember the browser, send it to the provider.
//	start, err := rp.Begin(ctx, next)
//	set cookie identity.CookieName(rp.Name()) = start.Cookie (HttpOnly, SameSite=Lax, Secure behind TLS, ~10 min)
//	redirect 303 to start.URL
//
//	// GET /admin/oidc/callback?code=...&state=...: prove and read the identity.
//	id, err := rp.Finish(ctx, cookieValue, identity.Callback{State: q("state"), Code: q("code"),
//		Error: q("error"), ErrorDescription: q("error_description")})
//	clear the cookie; on error show the sign-in page with errs.As(err).Message (never a 500:
//	every refusal is an *errs.Error of kind Unauthorized or Unavailable);
//	otherwise map id.Subject / id.Email / id.Strings(claim) to an account, start the session,
//	and redirect to id.Next (still to be checked with templates.SafeNext).
//
//	// logout: end the local session, then, when rp.LogoutURL returns one, send the
//	// browser there so the provider's session ends too (RP-initiated logout).
//
// Begin stores one row per sign-in (oidc_sign_ins: only the SHA-256 of the
// state) and Finish consumes it, so a state is good for one return within
// ten minutes and in the browser that started it; the nonce and the PKCE
// verifier are derived from the browser's cookie secret and never stored.
// The provider's discovery document is fetched at the first sign-in, not at
// start, so cardata starts while the provider is unreachable.
package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"cardata/policies/errs"
)

// Settings configure one relying party.
type Settings struct {
	// Name identifies the RP in its sign-in rows, cookie and messages
	// ("staff", "customer", "provider-42"): letters, digits, '-' and '_'.
	Name         string
	Issuer       string // the provider's issuer URL, exactly as its discovery document states it
	ClientID     string
	ClientSecret string
	// RedirectURL is this site's callback, registered with the provider.
	RedirectURL string
	// Scopes besides "openid"; empty: profile and email.
	Scopes []string
	// HTTPClient talks to the provider (discovery, keys, token); nil: a
	// client with a 15 s timeout.
	HTTPClient *http.Client
	// Now is the clock for expiry checks; nil: time.Now.
	Now func() time.Time
}

// RP is the relying party of one OpenID provider. It is safe for
// concurrent use.
type RP struct {
	db  *gorm.DB
	set Settings

	mu   sync.Mutex
	disc *discovered // nil until the first successful discovery
}

type discovered struct {
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
}

// Lifetime is how long a started sign-in may take.
const Lifetime = 10 * time.Minute

// New checks the settings; it makes no network call.
func New(db *gorm.DB, s Settings) (*RP, error) {
	if s.Name == "" || strings.TrimLeft(s.Name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return nil, fmt.Errorf("identity: name %q: use letters, digits, - and _", s.Name)
	}
	for _, f := range [][2]string{{"issuer", s.Issuer}, {"client id", s.ClientID}, {"redirect URL", s.RedirectURL}} {
		if strings.TrimSpace(f[1]) == "" {
			return nil, fmt.Errorf("identity: %s: %s is required", s.Name, f[0])
		}
	}
	for _, f := range [][2]string{{"issuer", s.Issuer}, {"redirect URL", s.RedirectURL}} {
		u, err := url.Parse(f[1])
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("identity: %s: %s must be an http(s) URL, got %q", s.Name, f[0], f[1])
		}
	}
	if len(s.Scopes) == 0 {
		s.Scopes = []string{"profile", "email"}
	}
	if s.HTTPClient == nil {
		s.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	return &RP{db: db, set: s}, nil
}

// Name is the RP's name (Settings.Name).
func (rp *RP) Name() string { return rp.set.Name }

// Issuer is the provider's issuer URL.
func (rp *RP) Issuer() string { return rp.set.Issuer }

func (rp *RP) now() time.Time {
	if rp.set.Now != nil {
		return rp.set.Now().UTC()
	}
	return time.Now().UTC()
}

func (rp *RP) httpContext(ctx context.Context) context.Context {
	ctx = oidc.ClientContext(ctx, rp.set.HTTPClient)
	return context.WithValue(ctx, oauth2.HTTPClient, rp.set.HTTPClient)
}

// ErrUnreachable is returned while the provider's discovery document
// cannot be read.
var ErrUnreachable = errs.New(errs.Unavailable, "oidc_provider_unreachable",
	"The identity provider cannot be reached at the moment; try again in a minute")

// discover reads the provider's discovery document once; a failure is
// retried at the next sign-in.
func (rp *RP) discover(ctx context.Context) (*discovered, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.disc != nil {
		return rp.disc, nil
	}
	p, err := oidc.NewProvider(rp.httpContext(ctx), rp.set.Issuer)
	if err != nil {
		return nil, &errs.Error{Kind: errs.Unavailable, Code: ErrUnreachable.Code, Message: ErrUnreachable.Message,
			Err: fmt.Errorf("identity %s: discovery of %s: %w", rp.set.Name, rp.set.Issuer, err)}
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&extra)
	d := &discovered{
		provider: p,
		verifier: p.Verifier(&oidc.Config{ClientID: rp.set.ClientID, Now: rp.now}),
		oauth: oauth2.Config{ClientID: rp.set.ClientID, ClientSecret: rp.set.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: rp.set.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, rp.set.Scopes...)},
		endSession: extra.EndSession,
	}
	rp.disc = d
	return d, nil
}

// Check reads the provider's discovery document now (a configuration
// being saved): nil when it is there, states this RP's issuer and names
// the endpoints a sign-in needs; otherwise the reason, for the logs.
func (rp *RP) Check(ctx context.Context) error {
	d, err := rp.discover(ctx)
	if err != nil {
		if cause := errors.Unwrap(err); cause != nil {
			return cause
		}
		return err
	}
	if e := d.provider.Endpoint(); e.AuthURL == "" || e.TokenURL == "" {
		rp.mu.Lock()
		rp.disc = nil
		rp.mu.Unlock()
		return fmt.Errorf("discovery document of %s names no authorization or token endpoint", rp.set.Issuer)
	}
	return nil
}

// PendingProvider is the name of the RP that started the sign-in a
// callback's state belongs to, when several RPs share one callback (the
// partner portal: one RP per provider). ErrState when no unexpired
// sign-in has that state (replayed, expired or forged). It consumes
// nothing: the RP's Finish does.
func PendingProvider(ctx context.Context, db *gorm.DB, state string, now time.Time) (string, error) {
	if state == "" || len(state) > 200 {
		return "", refuse(ErrState, "no state in the callback")
	}
	var names []string
	if err := db.WithContext(ctx).Raw("SELECT provider FROM oidc_sign_ins WHERE state_hash = ? AND expires_at >= ?",
		stateHash(state), now.UTC()).Scan(&names).Error; err != nil {
		return "", errs.Wrap(err, "find sign-in")
	}
	if len(names) != 1 {
		return "", refuse(ErrState, "no pending sign-in for this state (replayed or expired)")
	}
	return names[0], nil
}

// Start is where to send the browser, and the secret it must bring back.
type Start struct {
	URL    string // the provider's authorization endpoint with this sign-in's parameters
	Cookie string // the value of CookieName(rp.Name()) for the browser; secret
}

// CookieName is the cookie that binds a sign-in to the browser that
// started it.
func CookieName(rpName string) string { return "cardata_oidc_" + rpName }

// derive computes one of the sign-in's values from the browser's secret.
func derive(secret []byte, what string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(what))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// signInRow is a started sign-in (table oidc_sign_ins).
type signInRow struct {
	StateHash []byte `gorm:"primaryKey"`
	Provider  string
	Next      string
	LoginHint string
	CreatedAt time.Time
	ExpiresAt time.Time
}

func (signInRow) TableName() string { return "oidc_sign_ins" }

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

// Begin starts a sign-in that returns to next (the caller checks next
// again after Finish). It stores the sign-in and returns the provider's
// URL and the browser's secret.
func (rp *RP) Begin(ctx context.Context, next string) (*Start, error) {
	return rp.BeginFor(ctx, next, "")
}

// BeginFor is Begin for the person who entered the address loginHint
// (the partner portal's company sign-in): the provider gets it as
// login_hint, and Finish returns it (Identity.LoginHint) so the caller can
// require the ID token to carry the same address.
func (rp *RP) BeginFor(ctx context.Context, next, loginHint string) (*Start, error) {
	d, err := rp.discover(ctx)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, errs.Wrap(err, "sign-in secret")
	}
	state, nonce, verifier := derive(secret, "state"), derive(secret, "nonce"), derive(secret, "pkce")+derive(secret, "pkce2")
	if len(next) > 2000 {
		next = ""
	}
	now := rp.now()
	db := rp.db.WithContext(ctx)
	// Lapsed sign-ins go as new ones come: the table stays small without a job.
	if err := db.Exec("DELETE FROM oidc_sign_ins WHERE expires_at < ?", now).Error; err != nil {
		return nil, errs.Wrap(err, "purge sign-ins")
	}
	if len(loginHint) > 254 {
		loginHint = ""
	}
	row := signInRow{StateHash: stateHash(state), Provider: rp.set.Name, Next: next, LoginHint: loginHint,
		CreatedAt: now, ExpiresAt: now.Add(Lifetime)}
	if err := db.Create(&row).Error; err != nil {
		return nil, errs.Wrap(err, "store sign-in")
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	u := d.oauth.AuthCodeURL(state, opts...)
	return &Start{URL: u, Cookie: base64.RawURLEncoding.EncodeToString(secret)}, nil
}

// Callback is what the provider sent the browser back with.
type Callback struct {
	State, Code             string
	Error, ErrorDescription string // set when the provider refused (e.g. access_denied)
}

// Identity is a verified ID token.
type Identity struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Claims        map[string]any // every claim of the ID token
	Next          string         // what Begin was given
	LoginHint     string         // what BeginFor was given
	Provider      string         // the RP's name
}

// Refusals of Finish. All are Unauthorized; the messages are for the
// person signing in.
var (
	ErrState = errs.New(errs.Unauthorized, "oidc_state_invalid",
		"This sign-in has expired, was already used or was started in another browser; start again")
	ErrDenied = errs.New(errs.Unauthorized, "oidc_denied", "The identity provider did not sign you in")
	ErrToken  = errs.New(errs.Unauthorized, "oidc_token_invalid",
		"The identity provider's answer could not be verified; start again or ask your administrator")
	ErrNonce = errs.New(errs.Unauthorized, "oidc_nonce_mismatch",
		"The identity provider's answer does not belong to this sign-in; start again")
)

// refuse returns a copy of e that carries the cause for the logs.
func refuse(e *errs.Error, format string, args ...any) error {
	return &errs.Error{Kind: e.Kind, Code: e.Code, Message: e.Message, Err: fmt.Errorf(format, args...)}
}

// Finish completes a sign-in: the state must match the browser's secret
// and a stored, unexpired sign-in of this RP (which it consumes); the code
// is exchanged with the PKCE verifier; the ID token's signature, issuer,
// audience and expiry are verified and its nonce must be this sign-in's.
// The order matters: the state is consumed before anything else, so a
// replayed or forged callback never reaches the provider.
func (rp *RP) Finish(ctx context.Context, cookie string, cb Callback) (*Identity, error) {
	secret, err := base64.RawURLEncoding.DecodeString(cookie)
	if cookie == "" || err != nil || len(secret) != 32 {
		return nil, refuse(ErrState, "no or malformed sign-in cookie")
	}
	state := derive(secret, "state")
	if !hmac.Equal([]byte(state), []byte(cb.State)) {
		return nil, refuse(ErrState, "state does not match the browser's sign-in")
	}
	var row struct{ Next, LoginHint string }
	res := rp.db.WithContext(ctx).Raw("DELETE FROM oidc_sign_ins WHERE state_hash = ? AND provider = ? AND expires_at >= ? RETURNING next, login_hint",
		stateHash(state), rp.set.Name, rp.now()).Scan(&row)
	if res.Error != nil {
		return nil, errs.Wrap(res.Error, "consume sign-in")
	}
	if res.RowsAffected != 1 {
		return nil, refuse(ErrState, "no pending sign-in for this state (replayed or expired)")
	}
	if cb.Error != "" {
		return nil, refuse(ErrDenied, "provider error %q: %s", cb.Error, cb.ErrorDescription)
	}
	if cb.Code == "" {
		return nil, refuse(ErrDenied, "no code in the callback")
	}
	d, err := rp.discover(ctx)
	if err != nil {
		return nil, err
	}
	hctx := rp.httpContext(ctx)
	tok, err := d.oauth.Exchange(hctx, cb.Code, oauth2.VerifierOption(derive(secret, "pkce")+derive(secret, "pkce2")))
	if err != nil {
		return nil, refuse(ErrToken, "code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refuse(ErrToken, "no id_token in the token response")
	}
	idt, err := d.verifier.Verify(hctx, raw)
	if err != nil {
		return nil, refuse(ErrToken, "id token: %w", err)
	}
	if !hmac.Equal([]byte(idt.Nonce), []byte(derive(secret, "nonce"))) {
		return nil, refuse(ErrNonce, "nonce %q is not this sign-in's", idt.Nonce)
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, refuse(ErrToken, "claims: %w", err)
	}
	id := &Identity{Issuer: idt.Issuer, Subject: idt.Subject, Claims: claims, Next: row.Next, LoginHint: row.LoginHint,
		Provider: rp.set.Name}
	id.Email, _ = claims["email"].(string)
	id.EmailVerified = claimBool(claims["email_verified"])
	id.Name, _ = claims["name"].(string)
	if id.Name == "" {
		id.Name, _ = claims["preferred_username"].(string)
	}
	if id.Subject == "" {
		return nil, refuse(ErrToken, "id token without subject")
	}
	return id, nil
}

// claimBool reads a boolean claim that some providers send as a string.
func claimBool(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

// Strings reads a claim as a list of strings: a JSON array of strings, or
// one string of space- or comma-separated values. A dotted name walks into
// nested objects (Keycloak's "realm_access.roles"); a name that exists as
// written, dots and all, wins.
func (id *Identity) Strings(claim string) []string {
	v, ok := id.Claims[claim]
	if !ok {
		var cur any = id.Claims
		for _, part := range strings.Split(claim, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				return nil
			}
			cur = m[part]
		}
		v = cur
	}
	var out []string
	switch x := v.(type) {
	case string:
		out = strings.FieldsFunc(x, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// LogoutURL is the provider's end-session endpoint with this RP's client
// id and where to return afterwards (OpenID Connect RP-Initiated Logout),
// or "" when the provider's discovery document names none or has not been
// read.
func (rp *RP) LogoutURL(ctx context.Context, postLogoutRedirect string) string {
	d, err := rp.discover(ctx)
	if err != nil || d.endSession == "" {
		return ""
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", rp.set.ClientID)
	if postLogoutRedirect != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirect)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// IsRefusal reports whether err is one of Finish's refusals or the
// provider being unreachable (shown on the sign-in page), as opposed to an
// internal error.
func IsRefusal(err error) bool {
	var e *errs.Error
	return errors.As(err, &e) && (e.Kind == errs.Unauthorized || e.Kind == errs.Unavailable || e.Kind == errs.Forbidden)
}
