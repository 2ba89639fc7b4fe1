package onboarding

import (
	"context"
	"time"

	"cardata/policies/errs"
)

// PartnerFigures are the partner managers' dashboard figures: providers by
// status, the applications waiting and the oldest of them, the open market
// requests and the markets covered at the end of each of the last months.
// Four aggregate queries.
type PartnerFigures struct {
	ByStatus       map[Status]int64
	Waiting        int64        // submitted or in review: waiting for a partner manager
	Oldest         *ProviderRef // the application waiting longest, nil when none
	OldestSince    time.Time
	MarketRequests int64
	// Coverage is the number of markets with at least one active provider
	// approved for it, at the end of each of the last months (oldest
	// first; the current month counts until now), by "YYYY-MM".
	Coverage []MonthCount
}

// MonthCount is a number for a month ("2026-11").
type MonthCount struct {
	Period string
	N      int64
}

// PartnerFigures computes the dashboard over the last months months in loc.
func (s *Service) PartnerFigures(ctx context.Context, loc *time.Location, months int) (*PartnerFigures, error) {
	db := s.DB.WithContext(ctx)
	f := &PartnerFigures{}
	var err error
	if f.ByStatus, err = s.CountByStatus(ctx); err != nil {
		return nil, err
	}
	f.Waiting = f.ByStatus[StatusSubmitted] + f.ByStatus[StatusInReview]
	var oldest []struct {
		ID           int64
		LegalName    string
		Country      string
		WaitingSince time.Time
	}
	if err := db.Table("providers").Select("id, legal_name, country, waiting_since").
		Where("status IN ?", []Status{StatusSubmitted, StatusInReview}).
		Order("waiting_since, id").Limit(1).Scan(&oldest).Error; err != nil {
		return nil, errs.Wrap(err, "oldest application")
	}
	if len(oldest) > 0 {
		o := oldest[0]
		f.Oldest, f.OldestSince = &ProviderRef{ID: o.ID, LegalName: o.LegalName, Country: o.Country}, o.WaitingSince
	}
	if err := db.Table("market_access").Where("status = ?", AccessRequested).Count(&f.MarketRequests).Error; err != nil {
		return nil, errs.Wrap(err, "count market requests")
	}
	// when each market was first covered by a provider active today
	var firsts []struct {
		Market string
		First  time.Time
	}
	if err := db.Raw(`SELECT ma.market, min(COALESCE(ma.decided_at, ma.requested_at)) AS first
		FROM market_access ma JOIN providers p ON p.id = ma.provider_id
		WHERE ma.status = ? AND p.status = ? GROUP BY ma.market`, AccessApproved, StatusActive).Scan(&firsts).Error; err != nil {
		return nil, errs.Wrap(err, "coverage over time")
	}
	now := s.now().In(loc)
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc).AddDate(0, 1-months, 0)
	for i := 0; i < months; i++ {
		m := start.AddDate(0, i, 0)
		end := m.AddDate(0, 1, 0)
		mc := MonthCount{Period: m.Format("2006-01")}
		for _, fr := range firsts {
			if fr.First.Before(end) {
				mc.N++
			}
		}
		f.Coverage = append(f.Coverage, mc)
	}
	return f, nil
}
