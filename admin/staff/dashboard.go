package staff

import (
	"context"

	"cardata/policies/errs"
)

// RoleCount is how many active staff users hold a role.
type RoleCount struct {
	Role string
	N    int64
}

// CountByRole counts the active staff users per role (in the order of
// roles) and all active users (one query).
func (s *Service) CountByRole(ctx context.Context, roles []string) ([]RoleCount, int64, error) {
	var rows []RoleCount
	var total int64
	db := s.DB.WithContext(ctx)
	if err := db.Raw(`SELECT r.role, count(*) AS n FROM staff_user_roles r JOIN staff_users u ON u.id = r.user_id
		WHERE u.active GROUP BY r.role`).Scan(&rows).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count staff by role")
	}
	if err := db.Table("staff_users").Where("active").Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count staff")
	}
	by := map[string]int64{}
	for _, r := range rows {
		by[r.Role] = r.N
	}
	out := make([]RoleCount, len(roles))
	for i, r := range roles {
		out[i] = RoleCount{Role: r, N: by[r]}
	}
	return out, total, nil
}
