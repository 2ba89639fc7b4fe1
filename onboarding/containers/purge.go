package containers

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
)

// PurgeAfter is how long a withdrawn container stays visible to its
// provider: 29 days (29 × 24 hours, counted in UTC) after its withdrawal.
// A product decision; the job containers.purge-withdrawn applies it daily.
const PurgeAfter = 29 * 24 * time.Hour

// DropPushesFunc drops the queued push deliveries of events about a
// container, in tx. It returns how many were dropped. app wires the
// webhooks service (onboarding/webhooks) in, which lives beside this package.
type DropPushesFunc func(ctx context.Context, tx *gorm.DB, providerID, containerID int64, reason string) (int64, error)

// PurgeResult counts what PurgeWithdrawn did.
type PurgeResult struct {
	Purged          int   // containers purged
	RequestsExpired int   // still-open consent requests that expired with them
	PushesDropped   int64 // queued push deliveries dropped
}

// purgeDue selects the containers due for purge: not purged yet, no
// version live (draft, submitted, approved, deprecated), the newest
// version withdrawn, and the last withdrawal at least PurgeAfter before
// cutoff. (A container whose newest version was rejected after an older
// one was withdrawn is not "withdrawn": its provider may still start a new
// version.)
const purgeDue = `containers.purged_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM container_versions l WHERE l.container_id = containers.id
		AND l.state IN ('draft','submitted','approved','deprecated'))
	AND (SELECT n.state FROM container_versions n WHERE n.container_id = containers.id ORDER BY n.version DESC LIMIT 1) = 'withdrawn'
	AND (SELECT max(w.withdrawn_at) FROM container_versions w WHERE w.container_id = containers.id) <= ?`

// PurgeWithdrawn purges the containers withdrawn at least PurgeAfter ago
// (the body of the job containers.purge-withdrawn). For each one, in its
// own transaction:
//
//   - purged_at is set: the container disappears from its provider's lists
//     and pages in the portal and from the provider API (GET
//     /api/v1/containers/{id} and consent requests answer 404
//     container_not_found). Staff still see it, labelled "purged" with the
//     date, so audit and billing stay explainable.
//   - its still-open consent requests (never granted) expire; withdrawal
//     normally expired them already, this catches any left behind.
//   - queued push deliveries of events about it are dropped (through
//     DropPushes). Webhook endpoints subscribe to event types, not to
//     containers, so there is no subscription to remove.
//   - one audit entry "container.purge" and an event on the newest version
//     record it.
//
// Deliberately KEPT: the container row, its versions and keys, and its
// ended consents with their changelog. The delivery ledger, the invoices
// built from it (retained 10 years under § 147 AO, German tax law) and the
// customers' transaction reports join to them; deleting them would break
// invoices and reports.
//
// It is idempotent (a purged container is never selected again) and a run
// stopped midway leaves every container either purged or untouched; the
// next run purges the rest. batch bounds the containers per query round
// (default 100); it loops until none is due or ctx ends.
func (s *Service) PurgeWithdrawn(ctx context.Context, batch int, progress func(done int)) (PurgeResult, error) {
	if batch <= 0 {
		batch = 100
	}
	var out PurgeResult
	cutoff := s.now().Add(-PurgeAfter)
	skip := map[int64]bool{} // held by another transaction this round: the next run takes them
	for {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var ids []int64
		if err := s.DB.WithContext(ctx).Raw(`SELECT containers.id FROM containers WHERE `+purgeDue+` ORDER BY containers.id LIMIT ?`,
			cutoff, batch+len(skip)).Scan(&ids).Error; err != nil {
			return out, errs.Wrap(err, "containers due for purge")
		}
		worked := false
		for _, id := range ids {
			if skip[id] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return out, err
			}
			done, err := s.purgeOne(ctx, id, cutoff, &out)
			if err != nil {
				return out, err
			}
			if !done {
				skip[id] = true
				continue
			}
			worked = true
			if progress != nil {
				progress(out.Purged)
			}
		}
		if !worked {
			return out, nil
		}
	}
}

// purgeOne purges container id if it is (still) due; false when it is not,
// or another transaction holds it.
func (s *Service) purgeOne(ctx context.Context, id int64, cutoff time.Time, out *PurgeResult) (bool, error) {
	var r PurgeResult
	done := false
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c struct {
			ID          int64
			ProviderID  int64
			WithdrawnAt *time.Time
		}
		// Lock the container and re-check under the lock.
		if err := tx.Raw(`SELECT containers.id, containers.provider_id,
				(SELECT max(w.withdrawn_at) FROM container_versions w WHERE w.container_id = containers.id) AS withdrawn_at
			FROM containers WHERE containers.id = ? AND `+purgeDue+` FOR UPDATE OF containers SKIP LOCKED`, id, cutoff).Scan(&c).Error; err != nil {
			return errs.Wrap(err, "lock container for purge")
		}
		if c.ID == 0 {
			return nil
		}
		var newest Version
		if err := tx.Where("container_id = ?", id).Order("version DESC").Take(&newest).Error; err != nil {
			return errs.Wrap(err, "newest version")
		}
		now := s.now()
		note := fmt.Sprintf("the data container was purged %d days after its withdrawal", int(PurgeAfter/(24*time.Hour)))
		if s.Consents != nil {
			n, err := s.Consents.ExpireRequestsForContainer(ctx, tx, id, note)
			if err != nil {
				return err
			}
			r.RequestsExpired = n
		}
		if s.DropPushes != nil {
			n, err := s.DropPushes(ctx, tx, c.ProviderID, id, "container_purged")
			if err != nil {
				return err
			}
			r.PushesDropped = n
		}
		if err := tx.Exec("UPDATE containers SET purged_at = ? WHERE id = ?", now, id).Error; err != nil {
			return errs.Wrap(err, "mark container purged")
		}
		if err := s.event(ctx, tx, newest.ID, "purge", newest.State, newest.State, note); err != nil {
			return err
		}
		item := audit.ItemOf("container.purge", "container", fmt.Sprint(id),
			"%q v%d purged: hidden from the provider; %d open consent requests expired, %d queued pushes dropped; versions, keys and ended consents kept for the delivery ledger and invoices",
			newest.Name, newest.Version, r.RequestsExpired, r.PushesDropped)
		if c.WithdrawnAt != nil {
			item = audit.ItemOf("container.purge", "container", fmt.Sprint(id),
				"%q v%d purged (withdrawn %s): hidden from the provider; %d open consent requests expired, %d queued pushes dropped; versions, keys and ended consents kept for the delivery ledger and invoices",
				newest.Name, newest.Version, c.WithdrawnAt.UTC().Format("2006-01-02"), r.RequestsExpired, r.PushesDropped)
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if done {
		out.Purged++
		out.RequestsExpired += r.RequestsExpired
		out.PushesDropped += r.PushesDropped
	}
	return done, nil
}
