package providerapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"cardata/app/web"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/errs"
)

// RoleAPI is the casbin role of every API client principal.
const RoleAPI = "provider_api"

// Scope is the one OAuth scope: the whole provider API.
const Scope = "api"

// Tokens issues and resolves opaque bearer tokens. Only their SHA-256 is
// stored; the client and its provider are checked on every resolution in
// the same query, so revoking a client or suspending its provider stops
// its tokens at once. A rotation of the client's secret ends the tokens of
// the old secret by deleting them (no overlap) or by cutting their expiry
// to the overlap's end (onboarding.RotateAPIClientSecret), so the check on
// the hot path stays the one indexed lookup.
type Tokens struct {
	DB  *gorm.DB
	TTL time.Duration
	Now func() time.Time
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now().UTC()
	}
	return time.Now().UTC()
}

// tokenHash is the hex SHA-256 of a token; SQL stores decode(?, 'hex'). (gorm
// would expand a []byte argument like a list.)
func tokenHash(tok string) string { h := tokenSum(tok); return hex.EncodeToString(h[:]) }

// tokenSum is the SHA-256 of a token (the stored token_hash).
func tokenSum(tok string) [sha256.Size]byte { return sha256.Sum256([]byte(tok)) }

// ErrSecretRotated refuses a token for a secret that a rotation ended
// between its check and the token's issue.
var ErrSecretRotated = errs.New(errs.Unauthorized, "invalid_client", "client authentication failed")

// Issue creates a token for a client AuthenticateAPIClient just accepted.
// The token lives TTL, and no longer than the secret it was bought with: a
// previous secret's token ends with the rotation overlap. The insert reads
// the client row FOR SHARE and checks that secret once more, so a rotation
// that commits between the check and the insert cannot leave a token of
// the old secret behind (the rotation ends the tokens it finds; this one it
// would not have found).
func (t *Tokens) Issue(ctx context.Context, c *onboarding.APIClient) (string, time.Duration, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", 0, errs.Wrap(err, "token randomness")
	}
	tok := "cdat_" + base64.RawURLEncoding.EncodeToString(b)
	now := t.now()
	secret := hex.EncodeToString(c.AuthSecretHash)
	var expires []time.Time
	err := t.DB.WithContext(ctx).Raw(`INSERT INTO api_access_tokens (token_hash, client_id, provider_id, scope, issued_at, expires_at)
		SELECT decode(?, 'hex'), c.id, c.provider_id, ?, ?,
		       CASE WHEN c.secret_hash = decode(?, 'hex') THEN ? ELSE LEAST(?, c.previous_valid_until) END
		FROM api_clients c
		WHERE c.id = ? AND c.revoked_at IS NULL AND (c.secret_hash = decode(?, 'hex')
		      OR (c.previous_secret_hash = decode(?, 'hex') AND c.previous_valid_until > ?))
		FOR SHARE
		RETURNING expires_at`, tokenHash(tok), Scope, now, secret, now.Add(t.TTL), now.Add(t.TTL),
		c.ID, secret, secret, now).Scan(&expires).Error
	if err != nil {
		return "", 0, errs.Wrap(err, "store token")
	}
	if len(expires) == 0 {
		return "", 0, ErrSecretRotated
	}
	return tok, expires[0].Sub(now).Round(time.Second), nil
}

// Caller is who a valid token belongs to.
type Caller struct {
	ClientID   int64  // api_clients.id
	ClientKey  string // the public client id (cd_...)
	ProviderID int64
	Sandbox    bool // a sandbox client: the provider's simulated fleet only
}

// providerAdmits is the token resolution's condition on the provider (p)
// of the token's client (c): active, or, for a sandbox client, registered
// and not yet decided (the sandbox is open before approval).
const providerAdmits = `(p.status = 'active' OR (c.sandbox AND p.status IN ('submitted','in_review','info_requested')))`

// Resolve returns the caller of a token, or nil when the token is unknown,
// expired, or its client is revoked or its provider not active.
func (t *Tokens) Resolve(ctx context.Context, tok string) (*Caller, error) {
	var c Caller
	err := t.DB.WithContext(ctx).Raw(`SELECT t.client_id, c.client_id AS client_key, t.provider_id, c.sandbox
		FROM api_access_tokens t
		JOIN api_clients c ON c.id = t.client_id AND c.revoked_at IS NULL
		JOIN providers p ON p.id = t.provider_id AND `+providerAdmits+`
		WHERE t.token_hash = decode(?, 'hex') AND t.expires_at > ?`, tokenHash(tok), t.now()).Scan(&c).Error
	if err != nil {
		return nil, errs.Wrap(err, "resolve token")
	}
	if c.ClientID == 0 {
		return nil, nil
	}
	return &c, nil
}

// Purge deletes expired tokens.
func (t *Tokens) Purge(ctx context.Context) (int64, error) {
	res := t.DB.WithContext(ctx).Exec("DELETE FROM api_access_tokens WHERE expires_at < ?", t.now().Add(-time.Hour))
	return res.RowsAffected, errs.Wrap(res.Error, "purge tokens")
}

// Principal turns a caller into the request's principal.
func (c *Caller) Principal() *policies.Principal {
	return &policies.Principal{Kind: policies.KindProvider, ID: c.ClientID, Name: c.ClientKey, ProviderID: c.ProviderID,
		Roles: []string{RoleAPI}, Sandbox: c.Sandbox}
}

// oauthError is an RFC 6749 section 5.2 error. The token endpoint answers
// in OAuth's format, not problem+json, because OAuth client libraries
// parse exactly this shape.
func oauthError(c *fiber.Ctx, status int, code, desc string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Pragma", "no-cache")
	if status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="cardata", charset="UTF-8"`)
	}
	return c.Status(status).JSON(fiber.Map{"error": code, "error_description": desc})
}

// token is POST /oauth/token: the client credentials grant (RFC 6749
// section 4.4) with client_secret_basic or client_secret_post.
func (h *Handler) token(c *fiber.Ctx) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm) {
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "send application/x-www-form-urlencoded parameters")
	}
	form, err := url.ParseQuery(string(c.Body()))
	if err != nil {
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "the form body cannot be parsed")
	}
	for k, v := range form {
		if len(v) > 1 {
			return oauthError(c, fiber.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
		}
	}
	id, secret, basic, err := clientCredentials(c.Get(fiber.HeaderAuthorization))
	if err != nil {
		return oauthError(c, fiber.StatusUnauthorized, "invalid_client", err.Error())
	}
	switch {
	case basic && form.Has("client_secret"):
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "use one client authentication method, not both")
	case basic && form.Has("client_id") && form.Get("client_id") != id:
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "client_id differs from the authenticated client")
	case !basic:
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		return oauthError(c, fiber.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return oauthError(c, fiber.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
	}
	if id == "" || secret == "" {
		return oauthError(c, fiber.StatusUnauthorized, "invalid_client", "client authentication is required (HTTP Basic or client_id and client_secret)")
	}
	if s := strings.TrimSpace(form.Get("scope")); s != "" && s != Scope {
		return oauthError(c, fiber.StatusBadRequest, "invalid_scope", "the only scope is "+Scope)
	}
	now := time.Now()
	if wait := h.authFails.blocked(web.ClientAddr(c), now); wait > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds())+1))
		return oauthError(c, fiber.StatusTooManyRequests, "temporarily_unavailable",
			"too many failed client authentications from this address; try again later")
	}
	cl, err := h.Onboarding.AuthenticateAPIClient(c.UserContext(), id, secret)
	switch {
	case errs.Is(err, "provider_not_active"):
		return oauthError(c, fiber.StatusBadRequest, "unauthorized_client", "the provider's access is not active")
	case errs.KindOf(err) == errs.Unauthorized:
		h.authFails.fail(web.ClientAddr(c), now)
		return oauthError(c, fiber.StatusUnauthorized, "invalid_client", "client authentication failed")
	case err != nil:
		return err
	}
	tok, ttl, err := h.Tokens.Issue(c.UserContext(), cl)
	if errors.Is(err, ErrSecretRotated) {
		return oauthError(c, fiber.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Pragma", "no-cache")
	return c.JSON(fiber.Map{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()), "scope": Scope})
}

// clientCredentials reads HTTP Basic client authentication; per RFC 6749
// section 2.3.1 id and secret are form-encoded before base64.
func clientCredentials(header string) (id, secret string, ok bool, err error) {
	scheme, rest, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", true, errors.New("the Basic credentials are not base64")
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", true, errors.New("the Basic credentials lack a colon")
	}
	if id, err = url.QueryUnescape(u); err != nil {
		return "", "", true, errors.New("the client id is not form-encoded")
	}
	if secret, err = url.QueryUnescape(p); err != nil {
		return "", "", true, errors.New("the client secret is not form-encoded")
	}
	return id, secret, true, nil
}

// Bearer resolves "Authorization: Bearer" on /api/ into the API client's
// principal and applies the client's rate limit. It runs before the route
// guard (app.go), which then authorizes the role provider_api. A request
// without a token passes on anonymous (public routes, or the guard's 401);
// an invalid token is refused here with RFC 6750's invalid_token. A
// telematicData read resolves its token in the read's one statement
// (fastBearer); everything else through Tokens.Resolve.
func (h *Handler) Bearer(c *fiber.Ctx) error {
	if !strings.HasPrefix(c.Path(), "/api/") {
		return c.Next()
	}
	auth := c.Get(fiber.HeaderAuthorization)
	scheme, tok, _ := strings.Cut(auth, " ")
	if auth == "" || !strings.EqualFold(scheme, "Bearer") {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cardata"`)
		return c.Next()
	}
	tok = strings.TrimSpace(tok)
	if handled, err := h.fastBearer(c, tok); handled {
		return err
	}
	caller, err := h.Tokens.Resolve(c.UserContext(), tok)
	if err != nil {
		return err
	}
	if caller == nil {
		return invalidToken(c)
	}
	return h.admit(c, caller)
}

// invalidToken is RFC 6750's answer to an unknown, expired or revoked token.
func invalidToken(c *fiber.Ctx) error {
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cardata", error="invalid_token", error_description="the token is unknown, expired or revoked"`)
	return errs.New(errs.Unauthorized, "invalid_token", "the access token is unknown, expired or revoked; get a new one at /oauth/token")
}

// admit makes a valid token's caller the request's principal, applies the
// client's rate limit (headers on every answer) and Idempotency-Key, and
// passes the request on to the guard.
func (h *Handler) admit(c *fiber.Ctx, caller *Caller) error {
	c.SetUserContext(policies.WithPrincipal(c.UserContext(), caller.Principal()))
	if h.Limiter != nil {
		d := h.Limiter.Take(c.UserContext(), caller.ClientID, time.Now())
		c.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
		c.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
		c.Set("RateLimit-Reset", strconv.Itoa(d.ResetSeconds))
		if !d.Allowed {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(d.RetryAfterSeconds))
			return errs.New(errs.TooMany, "rate_limited", "too many requests for this client; retry after %d s", d.RetryAfterSeconds)
		}
	}
	if key := c.Get("Idempotency-Key"); c.Method() == fiber.MethodPost && key != "" {
		return h.idempotent(c, caller.ClientID, key)
	}
	return c.Next()
}

// caller returns the API client principal the guard admitted.
func caller(c *fiber.Ctx) (*policies.Principal, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindProvider || p.ProviderID == 0 || !p.HasRole(RoleAPI) {
		return nil, errs.New(errs.Forbidden, "api_client_only", "this endpoint is for API clients (OAuth client credentials)")
	}
	return p, nil
}
