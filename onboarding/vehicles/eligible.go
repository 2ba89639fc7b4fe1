package vehicles

import (
	"context"

	"cardata/onboarding"
	"cardata/policies/errs"
)

// CountEligible counts the vehicles registered in market that CarData can
// serve today: telematics capable with its SIM active, mapped to a primary account holder, in a
// supported market, and (for MINI) registered in the EU. The coverage report
// shows it per market. Simulated vehicles (the providers' sandboxes) never count.
func (s *Service) CountEligible(ctx context.Context, market string) (int64, error) {
	if !onboarding.IsSupportedMarket(market) {
		return 0, nil
	}
	q := s.DB.WithContext(ctx).Table("vehicles v").
		Where("v.market = ? AND v.telematics_capable AND v.sim_active AND v.sandbox_provider_id IS NULL", market).
		Where("EXISTS (SELECT 1 FROM vehicle_holders h WHERE h.vehicle_id = v.id AND h.role = ?)", RolePrimary)
	if !onboarding.IsEU(market) {
		q = q.Where("v.brand <> ?", MINI)
	}
	var n int64
	err := q.Count(&n).Error
	return n, errs.Wrap(err, "count eligible vehicles")
}
