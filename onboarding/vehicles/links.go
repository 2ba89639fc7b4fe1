package vehicles

import (
	"context"

	"cardata/policies/errs"
)

// IsRegistered tells whether a vehicle with this VIN is in the registry
// (support tickets link to it).
func (s *Service) IsRegistered(ctx context.Context, vin string) (bool, error) {
	var n int64
	if err := s.DB.WithContext(ctx).Table("vehicles").Where("vin = ?", vin).Count(&n).Error; err != nil {
		return false, errs.Wrap(err, "resolve vin link")
	}
	return n > 0, nil
}
