package webhooks

import (
	"context"

	"cardata/policies/errs"
)

// Health is a provider's webhook standing for its portal home: its
// endpoints, those failing (the last attempts failed, or disabled after
// failing) and the notifications given up on (dead letters).
type Health struct {
	Endpoints, Failing, Dead int64
}

// HealthOf computes one provider's webhook health (two queries, the
// provider a condition of both).
func (s *Service) HealthOf(ctx context.Context, providerID int64) (Health, error) {
	var h Health
	err := s.db(ctx).Raw(`SELECT count(*) AS endpoints,
		count(*) FILTER (WHERE consecutive_failures > 0 OR status = 'disabled') AS failing
		FROM webhook_endpoints WHERE provider_id = ? AND status <> 'deleted'`, providerID).Scan(&h).Error
	if err != nil {
		return h, errs.Wrap(err, "webhook health")
	}
	h.Dead, err = s.DeadLetters(ctx, providerID)
	return h, err
}
