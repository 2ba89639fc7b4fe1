package staff

import (
	"context"
	"time"

	"cardata/policies/errs"
)

// PurgeLoginAttempts deletes recorded sign-in attempts older than before
// (the throttle only looks back LOGIN_THROTTLE_WINDOW; older rows are kept
// for a while for investigations, then removed by the clean-up job).
func (s *Service) PurgeLoginAttempts(ctx context.Context, before time.Time) (int64, error) {
	res := s.DB.WithContext(ctx).Exec("DELETE FROM login_attempts WHERE at < ?", before.UTC())
	return res.RowsAffected, errs.Wrap(res.Error, "purge login attempts")
}
