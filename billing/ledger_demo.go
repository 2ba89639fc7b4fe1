package billing

import (
	"context"
	"fmt"
	"time"

	"cardata/policies/errs"
)

// RecordDemoDeliveries writes n pulls and m pushes for a provider spread
// over the month p (synthetic demo-fleet VINs; fixed request ids make it
// idempotent). Pulls carry brand, model and basic data, pushes one whole
// position update, each record naming its keys.
func (s *Service) RecordDemoDeliveries(ctx context.Context, providerID int64, p Period, n, m int) error {
	span := p.End.Sub(p.Start)
	for kind, count := range map[string]int{KindPull: n, KindPush: m} {
		if count == 0 {
			continue
		}
		step := span / time.Duration(count+1)
		err := s.DB.WithContext(ctx).Exec(`INSERT INTO delivery_ledger (provider_id, client_id, vin, container_id, container_version,
			consent_id, kind, keys_delivered, bytes, request_id, delivered_at, key_ids, event_id, event_type)
			SELECT ?, NULL, 'WBADEMOFLEET' || lpad((g % 40)::text, 5, '0'), 900000 + ?, 1, 900000 + (g % 40), ?,
			       CASE WHEN ? = 'push' THEN 2 ELSE 3 END, 410,
			       'demo-billing-' || ? || '-' || ? || '-' || g, ?::timestamptz + g * ?::interval,
			       -- pulls: brand, model and basic data; pushes: one whole position update
			       CASE WHEN ? = 'push' THEN '{150,151}'::smallint[] ELSE '{1,2,3}'::smallint[] END,
			       CASE WHEN ? = 'push' THEN 'evt_demo' || ?::bigint || '_' || g END,
			       CASE WHEN ? = 'push' THEN 'vehicle.positionUpdated' END
			FROM generate_series(1, ?) AS g
			ON CONFLICT (provider_id, kind, request_id) DO NOTHING`,
			providerID, providerID, kind, kind, kind, p.String(), p.Start, fmt.Sprintf("%d microseconds", step.Microseconds()),
			kind, kind, providerID, kind, count).Error
		if err != nil {
			return errs.Wrap(err, "demo deliveries")
		}
	}
	return nil
}
