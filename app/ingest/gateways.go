package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
)

// Gateway is a telemetry gateway allowed to post signals.
type Gateway struct {
	ID         int64      `gorm:"column:id;primaryKey"`
	Name       string     `gorm:"column:name"`
	TokenHash  []byte     `gorm:"column:token_hash"`
	Active     bool       `gorm:"column:active"`
	CreatedAt  time.Time  `gorm:"column:created_at"`
	LastUsedAt *time.Time `gorm:"column:last_used_at"`
}

func (Gateway) TableName() string { return "ingest_gateways" }

// RoleGateway is the casbin role of an authenticated gateway.
const RoleGateway = "ingest_gateway"

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken returns a random bearer token (256 bits).
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "cdi_" + base64.RawURLEncoding.EncodeToString(b)
}

// CreateGateway registers a gateway with the given token (empty: a new
// random one) and returns the token: it is shown once and stored only hashed.
func (s *Service) CreateGateway(ctx context.Context, name, token string) (*Gateway, string, error) {
	name = strings.TrimSpace(name)
	var v errs.Validation
	if name == "" || len(name) > 100 {
		v.Add("name", "name_required", "name the gateway (at most 100 characters)")
	}
	if token != "" && len(token) < 16 {
		v.Add("token", "token_too_short", "a gateway token has at least 16 characters")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	if token == "" {
		token = NewToken()
	}
	g := &Gateway{Name: name, TokenHash: hashToken(token), Active: true}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(g).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "gateway_exists", "a gateway with that name or token already exists")
			}
			return errs.Wrap(err, "create gateway")
		}
		return audit.Recordf(ctx, tx, "ingest_gateway.create", "ingest_gateway", strconv.FormatInt(g.ID, 10), "created ingest gateway %s", name)
	})
	if err != nil {
		return nil, "", err
	}
	return g, token, nil
}

// SetGatewayActive enables or disables a gateway; a disabled gateway's
// next request is refused.
func (s *Service) SetGatewayActive(ctx context.Context, id int64, active bool) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r := tx.Model(&Gateway{}).Where("id = ?", id).Update("active", active)
		if r.Error != nil {
			return errs.Wrap(r.Error, "gateway active")
		}
		if r.RowsAffected == 0 {
			return errs.New(errs.NotFound, "gateway_not_found", "no gateway %d", id)
		}
		if active {
			return audit.Record(ctx, tx, "ingest_gateway.set_active", "ingest_gateway", strconv.FormatInt(id, 10), "gateway active=true")
		}
		return audit.Record(ctx, tx, "ingest_gateway.set_active", "ingest_gateway", strconv.FormatInt(id, 10), "gateway active=false")
	})
}

// FindGateway finds a gateway by name.
func (s *Service) FindGateway(ctx context.Context, name string) (*Gateway, error) {
	var g Gateway
	err := s.DB.WithContext(ctx).Where("name = ?", name).Take(&g).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errs.New(errs.NotFound, "gateway_not_found", "no gateway %q", name)
	}
	return &g, errs.Wrap(err, "find gateway")
}

// ErrBadToken is the answer to a missing, unknown or disabled token.
var ErrBadToken = errs.New(errs.Unauthorized, "invalid_token", "a valid ingest gateway bearer token is required")

// Authenticate resolves a bearer token to its active gateway. The database
// is asked every time, so disabling a gateway takes effect at once.
func (s *Service) Authenticate(ctx context.Context, token string) (*Gateway, error) {
	var g Gateway
	ok, err := s.findByToken(ctx, token, &g)
	if err != nil {
		return nil, errs.Wrap(err, "authenticate gateway")
	}
	if !ok {
		return nil, ErrBadToken
	}
	return &g, nil
}

// tokenRow is a row a bearer token resolves to: an ingest gateway or a
// master-data client (the same columns in two tables).
type tokenRow interface {
	TableName() string
	use() (id int64, active bool, lastUsed *time.Time)
}

func (g *Gateway) use() (int64, bool, *time.Time) { return g.ID, g.Active, g.LastUsedAt }

// findByToken reads into row the row whose token hash is token's; false for
// a missing, unknown or disabled token. Use is recorded at most once a
// minute: a write per request would cost more than it tells.
func (s *Service) findByToken(ctx context.Context, token string, row tokenRow) (bool, error) {
	if token == "" || len(token) > 200 {
		return false, nil
	}
	err := s.DB.WithContext(ctx).Where("token_hash = ?", hashToken(token)).Take(row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	id, active, lastUsed := row.use()
	if !active {
		return false, nil
	}
	if lastUsed == nil || time.Since(*lastUsed) > time.Minute {
		s.DB.WithContext(ctx).Exec("UPDATE "+row.TableName()+" SET last_used_at = now() WHERE id = ?", id)
	}
	return true, nil
}
