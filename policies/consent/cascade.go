package consent

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/errs"
)

// Ended is one consent a cascade moved.
type Ended struct {
	ID          int64
	ProviderID  int64
	VIN         string `gorm:"column:vin"`
	ContainerID int64
	Version     int
}

// moveWhere moves every consent in state from that matches cond to state
// to, in one statement, and writes one changelog entry per consent with the
// actor from ctx. limit > 0 takes at most that many (skipping rows other
// transactions hold), for jobs that work in batches.
func moveWhere(ctx context.Context, tx *gorm.DB, now time.Time, from, to State, note string, limit int, cond string, args ...any) ([]Ended, error) {
	act := policies.ActorOf(ctx, nil)
	kind, actorID, label := act.Kind, act.ID, act.Name
	target := "SELECT c.id FROM consents c WHERE c.state = ? AND (" + cond + ") ORDER BY c.id FOR UPDATE"
	q := []any{from}
	q = append(q, args...)
	if limit > 0 {
		target = "SELECT c.id FROM consents c WHERE c.state = ? AND (" + cond + ") ORDER BY c.id LIMIT ? FOR UPDATE SKIP LOCKED"
		q = append(q, limit)
	}
	sql := `WITH target AS (` + target + `),
	moved AS (
		UPDATE consents c SET state = ?, ended_at = ?, updated_at = ?
		FROM target, container_versions cv
		WHERE c.id = target.id AND cv.id = c.container_version_id
		RETURNING c.id, c.provider_id, c.vin, c.container_id, cv.version
	), logged AS (
		INSERT INTO consent_changes (consent_id, at, from_state, to_state, version, actor_kind, actor_id, actor_label, note)
		SELECT id, ?::timestamptz, ?::text, ?::text, version, ?::text, ?::bigint, ?::text, ?::text FROM moved
	)
	SELECT id, provider_id, vin, container_id, version FROM moved ORDER BY id`
	q = append(q, to, now, now, now, from, to, kind, actorID, label, note)
	var out []Ended
	if err := tx.WithContext(ctx).Raw(sql, q...).Scan(&out).Error; err != nil {
		return nil, errs.Wrap(err, fmt.Sprintf("move consents %s -> %s", from, to))
	}
	return out, nil
}

func (s *Service) notifyEnded(ctx context.Context, tx *gorm.DB, ended []Ended, to State, now time.Time) error {
	for _, e := range ended {
		if err := s.notify(ctx, tx, Event{Type: "consent." + string(to), ProviderID: e.ProviderID, ConsentID: e.ID, VIN: e.VIN,
			ContainerID: e.ContainerID, Version: e.Version, State: string(to), At: now}); err != nil {
			return err
		}
	}
	return nil
}

// dropEnded drops the queued pushes of grants a cascade just ended.
func (s *Service) dropEnded(ctx context.Context, tx *gorm.DB, ended []Ended, to State) error {
	for _, e := range ended {
		if err := s.dropPushes(ctx, tx, e.ID, to); err != nil {
			return err
		}
	}
	return nil
}

// EndForVersion ends every consent of a withdrawn container version in tx,
// the container's transaction: grants are revoked, open requests expire.
// It returns how many grants were revoked.
func (s *Service) EndForVersion(ctx context.Context, tx *gorm.DB, versionID int64, reason string) (int, error) {
	now := s.now()
	note := "the provider's data container was withdrawn"
	if reason != "" {
		note += ": " + reason
	}
	revoked, err := moveWhere(ctx, tx, now, Granted, Revoked, note, 0, "c.container_version_id = ?", versionID)
	if err != nil {
		return 0, err
	}
	if err := s.dropEnded(ctx, tx, revoked, Revoked); err != nil {
		return 0, err
	}
	expired, err := moveWhere(ctx, tx, now, Requested, Expired, note, 0, "c.container_version_id = ?", versionID)
	if err != nil {
		return 0, err
	}
	if err := s.notifyEnded(ctx, tx, revoked, Revoked, now); err != nil {
		return 0, err
	}
	return len(revoked), s.notifyEnded(ctx, tx, expired, Expired, now)
}

// CloseRequestsForVersion lets open requests of a deprecated version expire
// (a deprecated container takes no new consents; grants keep flowing).
func (s *Service) CloseRequestsForVersion(ctx context.Context, tx *gorm.DB, versionID int64, note string) (int, error) {
	now := s.now()
	expired, err := moveWhere(ctx, tx, now, Requested, Expired, note, 0, "c.container_version_id = ?", versionID)
	if err != nil {
		return 0, err
	}
	return len(expired), s.notifyEnded(ctx, tx, expired, Expired, now)
}

// ExpireRequestsForContainer lets the still-open requests of every version
// of a container expire, in tx (the container purge's transaction). They
// were never granted, so no data flowed and no ledger row refers to them;
// they are expired rather than deleted so the customer's history of who
// asked stays whole. No webhook event is emitted: the provider was told
// when the container was withdrawn, and the purge drops the container's
// queued pushes in the same transaction. It returns how many expired.
func (s *Service) ExpireRequestsForContainer(ctx context.Context, tx *gorm.DB, containerID int64, note string) (int, error) {
	expired, err := moveWhere(ctx, tx, s.now(), Requested, Expired, note, 0, "c.container_id = ?", containerID)
	return len(expired), err
}

// CarryOver moves the open requests and grants of version fromID to the
// new version toID in tx. The container's service calls it only when the
// new version's keys are a subset of the old one's: a consent to share
// more data covers sharing less, so removing keys needs no new consent.
// The consent keeps its id and state; its changelog records the move.
func (s *Service) CarryOver(ctx context.Context, tx *gorm.DB, fromID, toID int64, toVersion int) (int64, error) {
	act := policies.ActorOf(ctx, nil)
	kind, actorID, label := act.Kind, act.ID, act.Name
	now := s.now()
	note := fmt.Sprintf("carried over to version %d, which only removes keys: no new consent needed", toVersion)
	res := tx.WithContext(ctx).Exec(`WITH moved AS (
			UPDATE consents SET container_version_id = ?, updated_at = ?
			WHERE container_version_id = ? AND state IN ('requested','granted')
			RETURNING id, state
		)
		INSERT INTO consent_changes (consent_id, at, from_state, to_state, version, actor_kind, actor_id, actor_label, note)
		SELECT id, ?::timestamptz, state, state, ?::int, ?::text, ?::bigint, ?::text, ?::text FROM moved`,
		toID, now, fromID, now, toVersion, kind, actorID, label, note)
	return res.RowsAffected, errs.Wrap(res.Error, "carry consents over")
}

// EndForProvider ends the consents of a suspended or terminated provider in
// tx, the provider's transaction (onboarding calls it): grants are revoked
// and open requests expire. A reactivated provider must ask again.
func EndForProvider(ctx context.Context, tx *gorm.DB, providerID int64, status, reason string) (int, error) {
	now := time.Now().UTC()
	note := "the provider was " + status
	if reason != "" {
		note += ": " + reason
	}
	revoked, err := moveWhere(ctx, tx, now, Granted, Revoked, note, 0, "c.provider_id = ?", providerID)
	if err != nil {
		return 0, err
	}
	if _, err := moveWhere(ctx, tx, now, Requested, Expired, note, 0, "c.provider_id = ?", providerID); err != nil {
		return 0, err
	}
	return len(revoked), nil
}

// Expiry counts what ExpireDue did.
type Expiry struct {
	Unanswered     int // requests unanswered for 30 days
	EndDateReached int // grants past their end date
	FormerHolder   int // consents of customers who no longer hold the vehicle as primary
}

// ExpireDue ends, in batches of at most batch consents per transaction:
// requests unanswered for RequestTTL, grants past their end date, and the
// consents of accounts that are no longer the vehicle's primary holder
// (a change of owner: the new owner decides afresh).
func (s *Service) ExpireDue(ctx context.Context, batch int) (Expiry, error) {
	if batch <= 0 {
		batch = 1000
	}
	var out Expiry
	formerHolder := "NOT EXISTS (SELECT 1 FROM vehicle_holders h WHERE h.vehicle_id = c.vehicle_id AND h.account_id = c.account_id AND h.role = 'primary')"
	steps := []struct {
		from, to State
		note     string
		cond     func() (string, []any)
		count    *int
	}{
		{Requested, Expired, "unanswered for 30 days", func() (string, []any) {
			return "c.requested_at <= ?", []any{s.now().Add(-RequestTTL)}
		}, &out.Unanswered},
		{Granted, Expired, "the end date of the consent was reached", func() (string, []any) {
			return "c.ends_at IS NOT NULL AND c.ends_at <= ?", []any{s.now()}
		}, &out.EndDateReached},
		{Granted, Revoked, "the customer no longer holds the vehicle", func() (string, []any) { return formerHolder, nil }, &out.FormerHolder},
		{Requested, Expired, "the customer no longer holds the vehicle", func() (string, []any) { return formerHolder, nil }, &out.FormerHolder},
	}
	for _, st := range steps {
		for {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			cond, args := st.cond()
			var n int
			err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				now := s.now()
				ended, err := moveWhere(ctx, tx, now, st.from, st.to, st.note, batch, cond, args...)
				if err != nil {
					return err
				}
				n = len(ended)
				if st.from == Granted {
					if err := s.dropEnded(ctx, tx, ended, st.to); err != nil {
						return err
					}
				}
				return s.notifyEnded(ctx, tx, ended, st.to, now)
			})
			if err != nil {
				return out, err
			}
			*st.count += n
			if n < batch {
				break
			}
		}
	}
	return out, nil
}
