package ingest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// MasterDataClient is a credential of the manufacturer's vehicle systems for
// the master-data API (/ingest/v1/vehicles, /ingest/v1/master-data). It is
// a credential kind of its own: a telemetry gateway's token does not reach
// the master data, nor does a master-data token post readings.
type MasterDataClient struct {
	ID         int64      `gorm:"column:id;primaryKey"`
	Name       string     `gorm:"column:name"`
	TokenHash  []byte     `gorm:"column:token_hash"`
	Active     bool       `gorm:"column:active"`
	CreatedAt  time.Time  `gorm:"column:created_at"`
	LastUsedAt *time.Time `gorm:"column:last_used_at"`
}

func (MasterDataClient) TableName() string { return "master_data_clients" }

func (m *MasterDataClient) use() (int64, bool, *time.Time) { return m.ID, m.Active, m.LastUsedAt }

// NewMasterDataToken returns a random bearer token (256 bits).
func NewMasterDataToken() string { return "cdm_" + strings.TrimPrefix(NewToken(), "cdi_") }

// CreateMasterDataClient registers a master-data client and returns its
// token: shown once, stored only hashed. The creation is audited.
func (s *Service) CreateMasterDataClient(ctx context.Context, name string) (*MasterDataClient, string, error) {
	name = strings.TrimSpace(name)
	var v errs.Validation
	if name == "" || len(name) > 100 {
		v.Add("name", "name_required", "name the client (at most 100 characters)")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	token := NewMasterDataToken()
	m := &MasterDataClient{Name: name, TokenHash: hashToken(token), Active: true}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(m).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "client_exists", "a master-data client named %s already exists", name)
			}
			return errs.Wrap(err, "create master-data client")
		}
		return audit.Recordf(ctx, tx, "master_data_client.create", "master_data_client", strconv.FormatInt(m.ID, 10),
			"created master-data client %s", name)
	})
	if err != nil {
		return nil, "", err
	}
	return m, token, nil
}

// SetMasterDataClientActive enables or disables a client by name; a
// disabled client's next request is refused.
func (s *Service) SetMasterDataClientActive(ctx context.Context, name string, active bool) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m MasterDataClient
		if err := tx.Where("name = ?", strings.TrimSpace(name)).Take(&m).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errs.New(errs.NotFound, "client_not_found", "no master-data client %q", name)
			}
			return errs.Wrap(err, "find master-data client")
		}
		if err := tx.Model(&m).Update("active", active).Error; err != nil {
			return errs.Wrap(err, "master-data client active")
		}
		if active {
			return audit.Recordf(ctx, tx, "master_data_client.set_active", "master_data_client", strconv.FormatInt(m.ID, 10),
				"%s active=true", m.Name)
		}
		return audit.Recordf(ctx, tx, "master_data_client.set_active", "master_data_client", strconv.FormatInt(m.ID, 10),
			"%s active=false", m.Name)
	})
}

// ErrBadMasterDataToken answers a missing, unknown or disabled token.
var ErrBadMasterDataToken = errs.New(errs.Unauthorized, "invalid_token", "a valid master-data bearer token is required")

// AuthenticateMasterData resolves a bearer token to the principal of its
// active master-data client (asked of the database every time, so disabling
// a client takes effect at once). Its principal is of the ingest surface's
// machine kind with the role vehicles.RoleMasterData.
func (s *Service) AuthenticateMasterData(ctx context.Context, token string) (*policies.Principal, error) {
	var m MasterDataClient
	ok, err := s.findByToken(ctx, token, &m)
	if err != nil {
		return nil, errs.Wrap(err, "authenticate master-data client")
	}
	if !ok {
		return nil, ErrBadMasterDataToken
	}
	return &policies.Principal{Kind: policies.KindGateway, ID: m.ID, Name: m.Name, Email: "masterdata:" + m.Name,
		Roles: []string{vehicles.RoleMasterData}}, nil
}

// ForgetUnknownVIN drops a VIN from the ingest's memory of unknown VINs, so
// readings of a vehicle registered a moment ago are accepted at once rather
// than after the miss expires.
func (s *Service) ForgetUnknownVIN(vin string) {
	s.vins.mu.Lock()
	delete(s.vins.misses, vin)
	s.vins.mu.Unlock()
}
