package onboarding

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// APIClient is a provider's machine credential for the provider API. Only
// the SHA-256 of its secret is stored; the secret is shown once.
type APIClient struct {
	ID                 int64 `gorm:"primaryKey"`
	ProviderID         int64
	ClientID           string
	Name               string
	SecretHash         []byte `json:"-"`
	SecretHint         string
	PreviousSecretHash []byte `json:"-"`
	PreviousValidUntil *time.Time
	CreatedBy          string
	CreatedAt          time.Time
	RotatedAt          *time.Time
	RevokedAt          *time.Time
	LastUsedAt         *time.Time
	// Sandbox marks a sandbox client: its tokens reach the same API but only
	// the provider's simulated fleet, and nothing it receives is billed.
	Sandbox bool
	// AuthSecretHash is the hash of the secret AuthenticateAPIClient
	// accepted (the current or, during an overlap, the previous one); the
	// token endpoint issues a token only while that secret is still valid.
	AuthSecretHash []byte `gorm:"-" json:"-"`
}

func (APIClient) TableName() string { return "api_clients" }

// Revoked reports whether the client was revoked.
func (c *APIClient) Revoked() bool { return c.RevokedAt != nil }

// InOverlap reports whether a previous secret is still accepted at now.
func (c *APIClient) InOverlap(now time.Time) bool {
	return c.PreviousSecretHash != nil && c.PreviousValidUntil != nil && now.Before(*c.PreviousValidUntil)
}

// MaxRotationOverlap bounds how long an old secret stays valid after a rotation.
const MaxRotationOverlap = 7 * 24 * time.Hour

// NewSecret is a freshly issued client secret, to show once.
type NewSecret struct {
	Client *APIClient
	Secret string
}

func requireActive(tx *gorm.DB, providerID int64, sandbox bool) (*Provider, error) {
	var p Provider
	if err := tx.Take(&p, providerID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrProviderNotFound
		}
		return nil, errs.Wrap(err, "load provider")
	}
	if sandbox && p.Status.SandboxOpen() {
		return &p, nil
	}
	if p.Status != StatusActive {
		if sandbox {
			return nil, errs.New(errs.Conflict, "provider_not_active", "sandbox clients can be created while the provider is registered or active (now: %s)", errs.Term(p.Status.Label()))
		}
		return nil, errs.New(errs.Conflict, "provider_not_active", "API clients can be created and rotated only while the provider is active (now: %s)", errs.Term(p.Status.Label()))
	}
	return &p, nil
}

// SandboxOpen reports whether a provider in this status may use the
// sandbox: from its registration (before approval) while it is active;
// not once rejected, suspended or terminated.
func (s Status) SandboxOpen() bool {
	switch s {
	case StatusSubmitted, StatusInReview, StatusInfoRequested, StatusActive:
		return true
	}
	return false
}

// CreateAPIClient issues a client id and secret for an active provider.
func (s *Service) CreateAPIClient(ctx context.Context, providerID int64, name string) (*NewSecret, error) {
	return s.createAPIClient(ctx, providerID, name, "cd_"+strings.ToLower(randomToken(12)), randomToken(32), false)
}

// CreateSandboxAPIClient issues a sandbox client (id cdsbx_...): the same
// token endpoint and API, but only the provider's simulated fleet, and
// never billed. A provider may create one as soon as it has registered,
// before approval. The first one creates the simulated fleet
// (SandboxFleet; idempotent).
func (s *Service) CreateSandboxAPIClient(ctx context.Context, providerID int64, name string) (*NewSecret, error) {
	ns, err := s.createAPIClient(ctx, providerID, name, "cdsbx_"+strings.ToLower(randomToken(12)), randomToken(32), true)
	if err != nil {
		return nil, err
	}
	if s.SandboxFleet != nil {
		if err := s.SandboxFleet(ctx, providerID); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// CreateAPIClientWithSecret creates a client with a chosen id and secret.
// It exists for demo data and for moving existing credentials; the portal
// always generates both.
func (s *Service) CreateAPIClientWithSecret(ctx context.Context, providerID int64, name, clientID, secret string) (*NewSecret, error) {
	if len(secret) < 16 || len(clientID) < 3 {
		return nil, errs.New(errs.Invalid, "secret_too_short", "client id needs 3 and secret 16 characters at least")
	}
	return s.createAPIClient(ctx, providerID, name, clientID, secret, false)
}

func (s *Service) createAPIClient(ctx context.Context, providerID int64, name, clientID, secret string, sandbox bool) (*NewSecret, error) {
	name = clean(name, 100)
	if name == "" {
		var v errs.Validation
		v.Add("name", "name_required", "name the client, e.g. after the system that uses it")
		return nil, v.Err()
	}
	by := policies.ActorOf(ctx, nil).Name
	now := s.now()
	c := &APIClient{ProviderID: providerID, ClientID: clientID, Name: name, SecretHash: sha(secret),
		SecretHint: secret[len(secret)-4:], CreatedBy: by, CreatedAt: now, Sandbox: sandbox}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := requireActive(tx, providerID, sandbox); err != nil {
			return err
		}
		if err := tx.Create(c).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "client_id_taken", "this client id exists")
			}
			return errs.Wrap(err, "create API client")
		}
		if sandbox {
			return audit.Recordf(ctx, tx, "api_client.create", "provider", fmt.Sprint(providerID),
				"created sandbox API client %s (%s)", c.ClientID, c.Name)
		}
		return audit.Recordf(ctx, tx, "api_client.create", "provider", fmt.Sprint(providerID),
			"created API client %s (%s)", c.ClientID, c.Name)
	})
	if err != nil {
		return nil, err
	}
	return &NewSecret{Client: c, Secret: secret}, nil
}

// SandboxClientProviders lists the providers with a sandbox client that is
// not revoked and a status that allows the sandbox.
func (s *Service) SandboxClientProviders(ctx context.Context) ([]int64, error) {
	var out []int64
	err := s.DB.WithContext(ctx).Raw(`SELECT DISTINCT c.provider_id FROM api_clients c JOIN providers p ON p.id = c.provider_id
		WHERE c.sandbox AND c.revoked_at IS NULL AND p.status IN ? ORDER BY 1`,
		[]Status{StatusSubmitted, StatusInReview, StatusInfoRequested, StatusActive}).Scan(&out).Error
	return out, errs.Wrap(err, "sandbox providers")
}

// FindAPIClients lists one provider's API clients, newest first.
func (s *Service) FindAPIClients(ctx context.Context, providerID int64) ([]APIClient, error) {
	return s.FindAPIClientsSorted(ctx, providerID, listsort.Order{})
}

// ClientSort is the portal's API client list whitelist; by default the
// working clients first, newest first.
var ClientSort = listsort.Spec{
	Columns: map[string]string{
		"name":      "lower(name)",
		"client_id": "client_id",
		"status":    "(revoked_at IS NOT NULL)",
		"last_used": "last_used_at",
	},
	Tiebreak:   "id",
	DefaultSQL: "revoked_at IS NOT NULL, id DESC",
}

// FindAPIClientsSorted is FindAPIClients in the order o (ClientSort).
func (s *Service) FindAPIClientsSorted(ctx context.Context, providerID int64, o listsort.Order) ([]APIClient, error) {
	var out []APIClient
	err := s.DB.WithContext(ctx).Where("provider_id = ?", providerID).Order(ClientSort.SQL(o)).Find(&out).Error
	return out, errs.Wrap(err, "list API clients")
}

// FindAPIClient returns one API client of a provider.
func (s *Service) FindAPIClient(ctx context.Context, providerID, id int64) (*APIClient, error) {
	var c APIClient
	if err := s.DB.WithContext(ctx).Where("provider_id = ? AND id = ?", providerID, id).Take(&c).Error; err != nil {
		return nil, translate(err, "api_client")
	}
	return &c, nil
}

// RotateAPIClientSecret issues a new secret; the old one keeps working for
// overlap (at most MaxRotationOverlap) so deployments can switch over.
//
// The access tokens issued under the old secret end with it: at once
// without overlap (a rotation is how a leaked secret is contained, and a
// token bought with it must not outlive it), else when the overlap ends.
// Tokens are resolved from api_access_tokens on every request, so deleting
// or shortening them here, in the rotation's transaction, holds on every
// replica without touching the token check itself.
func (s *Service) RotateAPIClientSecret(ctx context.Context, providerID, id int64, overlap time.Duration) (*NewSecret, error) {
	if overlap < 0 || overlap > MaxRotationOverlap {
		var v errs.Validation
		v.Add("overlap", "overlap_invalid", "the old secret may stay valid for 0 to 7 days")
		return nil, v.Err()
	}
	secret := randomToken(32)
	var c APIClient
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sandbox bool
		if err := tx.Raw("SELECT sandbox FROM api_clients WHERE provider_id = ? AND id = ?", providerID, id).Scan(&sandbox).Error; err != nil {
			return errs.Wrap(err, "API client")
		}
		if _, err := requireActive(tx, providerID, sandbox); err != nil {
			return err
		}
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("provider_id = ? AND id = ?", providerID, id).Take(&c).Error; err != nil {
			return translate(err, "api_client")
		}
		if c.Revoked() {
			return errs.New(errs.Conflict, "api_client_revoked", "the client is revoked; create a new one")
		}
		now := s.now()
		until := now.Add(overlap)
		upd := map[string]any{"secret_hash": sha(secret), "secret_hint": secret[len(secret)-4:], "rotated_at": now,
			"previous_secret_hash": c.SecretHash, "previous_valid_until": until}
		if overlap == 0 {
			upd["previous_secret_hash"], upd["previous_valid_until"] = nil, nil
		}
		if err := tx.Model(&APIClient{}).Where("id = ?", c.ID).Updates(upd).Error; err != nil {
			return errs.Wrap(err, "rotate API client")
		}
		// Every token of the client was issued under the secret replaced
		// now (or an older one, whose tokens an earlier rotation cut).
		var ended error
		if overlap == 0 {
			ended = tx.Exec(`DELETE FROM api_access_tokens WHERE client_id = ?`, c.ID).Error
		} else {
			ended = tx.Exec(`UPDATE api_access_tokens SET expires_at = ? WHERE client_id = ? AND expires_at > ?`, until, c.ID, until).Error
		}
		if ended != nil {
			return errs.Wrap(ended, "end the old secret's tokens")
		}
		return audit.Recordf(ctx, tx, "api_client.rotate", "provider", fmt.Sprint(providerID),
			"rotated the secret of %s; the old one and its access tokens are valid until %s", c.ClientID, until.Format(time.RFC3339))
	})
	if err != nil {
		return nil, err
	}
	fresh, err := s.FindAPIClient(ctx, providerID, id)
	if err != nil {
		return nil, err
	}
	return &NewSecret{Client: fresh, Secret: secret}, nil
}

// RevokeAPIClient ends a client at once, including a previous secret.
func (s *Service) RevokeAPIClient(ctx context.Context, providerID, id int64) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c APIClient
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("provider_id = ? AND id = ?", providerID, id).Take(&c).Error; err != nil {
			return translate(err, "api_client")
		}
		if c.Revoked() {
			return errs.New(errs.Conflict, "api_client_revoked", "the client is already revoked")
		}
		if err := tx.Model(&APIClient{}).Where("id = ?", c.ID).Updates(map[string]any{
			"revoked_at": s.now(), "previous_secret_hash": nil, "previous_valid_until": nil}).Error; err != nil {
			return errs.Wrap(err, "revoke API client")
		}
		return audit.Recordf(ctx, tx, "api_client.revoke", "provider", fmt.Sprint(providerID), "revoked API client %s", c.ClientID)
	})
}

// ErrInvalidClient is returned for unknown, revoked or wrong credentials.
var ErrInvalidClient = errs.New(errs.Unauthorized, "invalid_client", "client authentication failed")

// AuthenticateAPIClient checks a client id and secret (current, or the
// previous one during a rotation overlap). A suspended or otherwise
// inactive provider is refused at once.
func (s *Service) AuthenticateAPIClient(ctx context.Context, clientID, secret string) (*APIClient, error) {
	var c APIClient
	err := s.DB.WithContext(ctx).Where("client_id = ?", clientID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		_ = subtle.ConstantTimeCompare(sha(secret), sha("timing"))
		return nil, ErrInvalidClient
	}
	if err != nil {
		return nil, errs.Wrap(err, "find API client")
	}
	h := sha(secret)
	now := s.now()
	ok := subtle.ConstantTimeCompare(h, c.SecretHash) == 1
	if !ok && c.InOverlap(now) {
		ok = subtle.ConstantTimeCompare(h, c.PreviousSecretHash) == 1
	}
	if !ok || c.Revoked() {
		return nil, ErrInvalidClient
	}
	c.AuthSecretHash = h
	var active bool
	if c.Sandbox {
		var p Provider
		if err := s.DB.WithContext(ctx).Select("status").Take(&p, c.ProviderID).Error; err != nil {
			return nil, translate(err, "provider")
		}
		active = p.Status.SandboxOpen()
	} else if active, err = s.ProviderIsActive(ctx, c.ProviderID); err != nil {
		return nil, err
	}
	if !active {
		return nil, errs.New(errs.Forbidden, "provider_not_active", "the provider's access is not active")
	}
	_ = s.DB.WithContext(ctx).Model(&APIClient{}).Where("id = ?", c.ID).Update("last_used_at", now).Error
	return &c, nil
}
