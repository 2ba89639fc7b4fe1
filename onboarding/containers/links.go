package containers

import (
	"context"

	"cardata/policies/errs"
)

// LinkName is the name of a provider's container in its latest version
// ("" when the provider has no container with this id), for a support
// ticket's link. Before the containers' migration is applied it is ""
// too, so a schema change never breaks the ticket page. readErr is the
// error of the name's own query (the caller shows the link as text).
func (s *Service) LinkName(ctx context.Context, providerID int64, id string) (name string, readErr, err error) {
	db := s.DB.WithContext(ctx)
	var table *string
	if err := db.Raw(`SELECT to_regclass('public.container_versions')::text`).Scan(&table).Error; err != nil || table == nil {
		return "", nil, errs.Wrap(err, "resolve container link")
	}
	readErr = db.Raw(`SELECT v.name FROM containers c JOIN container_versions v ON v.container_id = c.id
		WHERE c.id = ?::bigint AND c.provider_id = ? ORDER BY v.version DESC LIMIT 1`, id, providerID).Scan(&name).Error
	return name, readErr, nil
}
