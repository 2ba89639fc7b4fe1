package onboarding

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// Market is one of the 31 supported markets; a paused market takes no new
// requests and serves no provider until it is active again.
type Market struct {
	Code      string    `gorm:"primaryKey" json:"code"`
	Name      string    `json:"name"`
	Active    bool      `json:"active"`
	UpdatedAt time.Time `json:"-"`
}

func (Market) TableName() string { return "markets" }

// Market access statuses.
const (
	AccessRequested = "requested"
	AccessApproved  = "approved"
	AccessRejected  = "rejected"
)

// MarketAccess is a provider's request for one market and its decision.
type MarketAccess struct {
	ID          int64 `gorm:"primaryKey"`
	ProviderID  int64
	Market      string
	MarketName  string `gorm:"->;-:migration"`
	Status      string
	Reason      string
	RequestedAt time.Time
	DecidedAt   *time.Time
	DecidedBy   string
}

func (MarketAccess) TableName() string { return "market_access" }

// FindMarkets lists all markets by name.
func (s *Service) FindMarkets(ctx context.Context) ([]Market, error) {
	return s.FindMarketsSorted(ctx, listsort.Order{})
}

// MarketSort is the market list's sort whitelist (by name by default).
var MarketSort = listsort.Spec{
	Columns:  map[string]string{"name": "name", "code": "code", "status": "active"},
	Tiebreak: "code",
	Default:  listsort.Order{Key: "name"},
}

// FindMarketsSorted lists all markets in o's order (MarketSort).
func (s *Service) FindMarketsSorted(ctx context.Context, o listsort.Order) ([]Market, error) {
	var out []Market
	err := s.DB.WithContext(ctx).Order(MarketSort.SQL(o)).Find(&out).Error
	return out, errs.Wrap(err, "list markets")
}

// FindMarket returns one market.
func (s *Service) FindMarket(ctx context.Context, code string) (*Market, error) {
	var m Market
	if err := s.DB.WithContext(ctx).Where("code = ?", strings.ToUpper(code)).Take(&m).Error; err != nil {
		return nil, translate(err, "market")
	}
	return &m, nil
}

// SetMarketActive pauses or reactivates a market (audited).
func (s *Service) SetMarketActive(ctx context.Context, code string, active bool) (*Market, error) {
	m, err := s.FindMarket(ctx, code)
	if err != nil {
		return nil, err
	}
	if m.Active == active {
		return m, nil
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Market{}).Where("code = ?", m.Code).Updates(map[string]any{"active": active, "updated_at": s.now()}).Error; err != nil {
			return errs.Wrap(err, "update market")
		}
		if active {
			return audit.Recordf(ctx, tx, "market.activate", "market", m.Code, "activated %s", m.Name)
		}
		return audit.Recordf(ctx, tx, "market.pause", "market", m.Code, "paused %s", m.Name)
	})
	if err != nil {
		return nil, err
	}
	return s.FindMarket(ctx, m.Code)
}

// FindMarketAccess lists a provider's market requests and decisions.
func (s *Service) FindMarketAccess(ctx context.Context, providerID int64) ([]MarketAccess, error) {
	var out []MarketAccess
	err := s.DB.WithContext(ctx).Table("market_access").Select("market_access.*, markets.name AS market_name").
		Joins("JOIN markets ON markets.code = market_access.market").
		Where("market_access.provider_id = ?", providerID).Order("markets.name").Find(&out).Error
	return out, errs.Wrap(err, "list market access")
}

// RequestMarkets asks for access to markets on behalf of an active
// provider. Markets already requested or approved are left as they are; a
// rejected market may be requested again.
func (s *Service) RequestMarkets(ctx context.Context, providerID int64, codes []string) ([]string, error) {
	var v errs.Validation
	var want []string
	for _, c := range codes {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if !IsSupportedMarket(c) {
			v.Add("markets", "market_unknown", "%s is not a supported market", c)
			continue
		}
		want = append(want, c)
	}
	if len(want) == 0 && !v.Has("markets") {
		v.Add("markets", "market_required", "choose at least one market")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var requested []string
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err := requireActive(tx, providerID, false)
		if err != nil {
			return err
		}
		var paused []string
		if err := tx.Model(&Market{}).Where("code IN ? AND NOT active", want).Pluck("code", &paused).Error; err != nil {
			return errs.Wrap(err, "market status")
		}
		if len(paused) > 0 {
			var v errs.Validation
			v.Add("markets", "market_paused", "%s is paused and takes no requests at the moment", strings.Join(paused, ", "))
			return v.Err()
		}
		now := s.now()
		for _, c := range want {
			var cur MarketAccess
			err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("provider_id = ? AND market = ?", providerID, c).Take(&cur).Error
			switch {
			case errors.Is(err, gorm.ErrRecordNotFound):
				if err := tx.Omit("MarketName").Create(&MarketAccess{ProviderID: providerID, Market: c, Status: AccessRequested, RequestedAt: now}).Error; err != nil {
					return errs.Wrap(err, "request market")
				}
			case err != nil:
				return errs.Wrap(err, "load market access")
			case cur.Status == AccessRejected:
				if err := tx.Model(&MarketAccess{}).Where("id = ?", cur.ID).Updates(map[string]any{
					"status": AccessRequested, "requested_at": now, "decided_at": nil, "decided_by": "", "reason": ""}).Error; err != nil {
					return errs.Wrap(err, "request market")
				}
			default:
				continue // already requested or approved
			}
			requested = append(requested, c)
		}
		if len(requested) == 0 {
			return nil
		}
		return audit.Recordf(ctx, tx, "market_access.request", "provider", fmt.Sprint(providerID),
			"%s requested %s", p.LegalName, strings.Join(requested, ", "))
	})
	return requested, err
}

// DecideMarketAccess approves or rejects a provider's request for a market;
// an approved market can also be withdrawn (rejected with a reason).
func (s *Service) DecideMarketAccess(ctx context.Context, providerID int64, market string, approve bool, reason string) error {
	market = strings.ToUpper(strings.TrimSpace(market))
	reason = clean(reason, 2000)
	if !approve && reason == "" {
		var v errs.Validation
		v.Add("reason", "reason_required", "enter the reason for the rejection")
		return v.Err()
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var p Provider
		if err := tx.Take(&p, providerID).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrProviderNotFound
			}
			return errs.Wrap(err, "load provider")
		}
		var cur MarketAccess
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("provider_id = ? AND market = ?", providerID, market).Take(&cur).Error; err != nil {
			return translate(err, "market_request")
		}
		to := AccessRejected
		if approve {
			to = AccessApproved
			if cur.Status != AccessRequested {
				return errs.New(errs.Conflict, "market_not_requested", "%s is %s, not requested", market, errs.Term(cur.Status))
			}
			if p.Status != StatusActive {
				return errs.New(errs.Conflict, "provider_not_active", "markets can be approved only for active providers (now: %s)", errs.Term(p.Status.Label()))
			}
		} else if cur.Status == AccessRejected {
			return errs.New(errs.Conflict, "market_already_rejected", "%s is already rejected", market)
		}
		by := policies.ActorOf(ctx, nil).Name
		if err := tx.Model(&MarketAccess{}).Where("id = ?", cur.ID).Updates(map[string]any{
			"status": to, "reason": reason, "decided_at": s.now(), "decided_by": by}).Error; err != nil {
			return errs.Wrap(err, "decide market")
		}
		action := "market_access." + map[bool]string{true: "approve", false: "reject"}[approve]
		var item audit.Item
		switch {
		case approve && reason == "":
			item = audit.ItemOf(action, "provider", fmt.Sprint(providerID), "approved market %s for %s", market, p.LegalName)
		case approve:
			item = audit.ItemOf(action, "provider", fmt.Sprint(providerID), "approved market %s for %s (reason: %s)", market, p.LegalName, reason)
		case cur.Status == AccessApproved:
			item = audit.ItemOf(action, "provider", fmt.Sprint(providerID), "withdrew market %s for %s (reason: %s)", market, p.LegalName, reason)
		default:
			item = audit.ItemOf(action, "provider", fmt.Sprint(providerID), "rejected market %s for %s (reason: %s)", market, p.LegalName, reason)
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		z, err := jobs.ProviderMailLocale(tx, p.ContactEmail, p.ID)
		if err != nil {
			return err
		}
		subject, body := z.Mail("market_access."+string(to), "Name", p.ContactName, "Market", market,
			"Country", z.Country(market, CountryName(market)), "Reason", reason)
		return enqueueMail(ctx, tx, "market_access."+to, p.ContactEmail, subject, body, p.ID,
			fmt.Sprintf("market-access-%d-%s-%d", cur.ID, to, s.now().UnixNano()))
	})
}

// ProviderIsActive reports whether a provider may use the API now (approved
// and not suspended or terminated).
func (s *Service) ProviderIsActive(ctx context.Context, providerID int64) (bool, error) {
	var statuses []string
	if err := s.DB.WithContext(ctx).Table("providers").Where("id = ?", providerID).Pluck("status", &statuses).Error; err != nil {
		return false, errs.Wrap(err, "provider status")
	}
	if len(statuses) == 0 {
		return false, ErrProviderNotFound
	}
	return Status(statuses[0]) == StatusActive, nil
}

// ProviderCovers reports whether the provider's coverage includes market:
// access approved by a partner manager, and the market not paused. It does
// not check the provider's own status; ask ProviderIsActive for that.
func (s *Service) ProviderCovers(ctx context.Context, providerID int64, market string) (bool, error) {
	var n int64
	err := s.DB.WithContext(ctx).Table("market_access").
		Joins("JOIN markets ON markets.code = market_access.market").
		Where("market_access.provider_id = ? AND market_access.market = ? AND market_access.status = ? AND markets.active",
			providerID, strings.ToUpper(market), AccessApproved).Count(&n).Error
	return n > 0, errs.Wrap(err, "provider coverage")
}

// ProviderRef names a provider in reports.
type ProviderRef struct {
	ID        int64
	LegalName string
	Country   string
}

// CoverageRow is one market of the coverage report.
type CoverageRow struct {
	Market  Market
	Active  []ProviderRef // active providers with approved access
	Pending []ProviderRef // open requests
	// Vehicles is the number of eligible vehicles, nil while unknown.
	Vehicles *int64
}

// CoverageReport returns every market with the active providers covering
// it and the pending requests.
func (s *Service) CoverageReport(ctx context.Context) ([]CoverageRow, error) {
	markets, err := s.FindMarkets(ctx)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Market    string
		Status    string
		ID        int64
		LegalName string
		Country   string
	}
	err = s.DB.WithContext(ctx).Table("market_access").
		Select("market_access.market, market_access.status, providers.id, providers.legal_name, providers.country").
		Joins("JOIN providers ON providers.id = market_access.provider_id").
		Where("(market_access.status = ? AND providers.status = ?) OR market_access.status = ?", AccessApproved, StatusActive, AccessRequested).
		Order("lower(providers.legal_name)").Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "coverage")
	}
	byMarket := map[string]*CoverageRow{}
	out := make([]CoverageRow, len(markets))
	for i, m := range markets {
		out[i] = CoverageRow{Market: m}
		byMarket[m.Code] = &out[i]
	}
	for _, r := range rows {
		row := byMarket[r.Market]
		if row == nil {
			continue
		}
		ref := ProviderRef{ID: r.ID, LegalName: r.LegalName, Country: r.Country}
		if r.Status == AccessApproved {
			row.Active = append(row.Active, ref)
		} else {
			row.Pending = append(row.Pending, ref)
		}
	}
	if s.EligibleVehicles != nil {
		for i := range out {
			n, err := s.EligibleVehicles(ctx, out[i].Market.Code)
			if err != nil {
				return nil, err
			}
			out[i].Vehicles = &n
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Market.Name < out[j].Market.Name })
	return out, nil
}

// PendingMarketRequest is an open request, for the partner managers' list.
type PendingMarketRequest struct {
	MarketAccess
	LegalName string
	Country   string
}

// FindPendingMarketRequests lists open market requests, oldest first.
func (s *Service) FindPendingMarketRequests(ctx context.Context, market string) ([]PendingMarketRequest, error) {
	return s.FindPendingMarketRequestsSorted(ctx, market, listsort.Order{})
}

// MarketRequestSort is the review queue's market request table whitelist
// (oldest request first by default).
var MarketRequestSort = listsort.Spec{
	Columns: map[string]string{
		"request_at":       "market_access.requested_at",
		"request_provider": "lower(providers.legal_name)",
		"request_market":   "market_access.market",
	},
	Tiebreak:   "market_access.id",
	DefaultSQL: "market_access.requested_at, market_access.id",
}

// FindPendingMarketRequestsSorted is FindPendingMarketRequests in o's order.
func (s *Service) FindPendingMarketRequestsSorted(ctx context.Context, market string, o listsort.Order) ([]PendingMarketRequest, error) {
	var out []PendingMarketRequest
	q := s.DB.WithContext(ctx).Table("market_access").
		Select("market_access.*, markets.name AS market_name, providers.legal_name, providers.country").
		Joins("JOIN markets ON markets.code = market_access.market").
		Joins("JOIN providers ON providers.id = market_access.provider_id").
		Where("market_access.status = ?", AccessRequested)
	if market != "" {
		q = q.Where("market_access.market = ?", strings.ToUpper(market))
	}
	err := q.Order(MarketRequestSort.SQL(o)).Limit(1000).Find(&out).Error
	return out, errs.Wrap(err, "pending market requests")
}
