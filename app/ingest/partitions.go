package ingest

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
)

// partitionLock serialises partition DDL across replicas.
const partitionLock = 727_041

const partitionPrefix = "vehicle_snapshots_p"

func partitionName(day time.Time) string { return partitionPrefix + day.Format("20060102") }

// EnsurePartitions creates the history partitions from yesterday up to
// daysAhead days after now (UTC days of receipt). It is idempotent.
func (s *Service) EnsurePartitions(ctx context.Context, now time.Time, daysAhead int) (created int, err error) {
	today := now.UTC().Truncate(24 * time.Hour)
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", partitionLock).Error; err != nil {
			return err
		}
		for d := -1; d <= daysAhead; d++ {
			day := today.AddDate(0, 0, d)
			var exists bool
			if err := tx.Raw("SELECT to_regclass(?) IS NOT NULL", partitionName(day)).Scan(&exists).Error; err != nil {
				return err
			}
			if exists {
				continue
			}
			sql := fmt.Sprintf("CREATE TABLE %s PARTITION OF vehicle_snapshots FOR VALUES FROM ('%s') TO ('%s')",
				partitionName(day), day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339))
			if err := tx.Exec(sql).Error; err != nil {
				return err
			}
			created++
		}
		return nil
	})
	return created, errs.Wrap(err, "ensure partitions")
}

// Partition is one day of reading history.
type Partition struct {
	Name string
	Day  time.Time
}

// Partitions lists the history partitions, oldest first.
func (s *Service) Partitions(ctx context.Context) ([]Partition, error) {
	var names []string
	err := s.DB.WithContext(ctx).Raw(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'vehicle_snapshots'::regclass ORDER BY c.relname`).Scan(&names).Error
	if err != nil {
		return nil, errs.Wrap(err, "list partitions")
	}
	out := make([]Partition, 0, len(names))
	for _, n := range names {
		day, err := time.Parse("20060102", n[len(partitionPrefix):])
		if err != nil || len(n) <= len(partitionPrefix) {
			continue // not ours
		}
		out = append(out, Partition{Name: n, Day: day})
	}
	return out, nil
}

// DropExpired drops history partitions whose whole day lies before
// now - retention, and deletes vehicle events older than that.
func (s *Service) DropExpired(ctx context.Context, now time.Time, retention time.Duration) (dropped []string, events int64, err error) {
	cutoff := now.UTC().Add(-retention)
	parts, err := s.Partitions(ctx)
	if err != nil {
		return nil, 0, err
	}
	for _, p := range parts {
		if p.Day.AddDate(0, 0, 1).After(cutoff) {
			continue
		}
		err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", partitionLock).Error; err != nil {
				return err
			}
			return tx.Exec("DROP TABLE IF EXISTS " + p.Name).Error
		})
		if err != nil {
			return dropped, 0, errs.Wrap(err, "drop partition "+p.Name)
		}
		dropped = append(dropped, p.Name)
	}
	for {
		r := s.DB.WithContext(ctx).Exec(`DELETE FROM vehicle_events WHERE id IN (
			SELECT id FROM vehicle_events WHERE created_at < ? LIMIT 10000)`, cutoff)
		if r.Error != nil {
			return dropped, events, errs.Wrap(r.Error, "delete old events")
		}
		events += r.RowsAffected
		if r.RowsAffected < 10000 {
			return dropped, events, nil
		}
	}
}

// Maintain is the hourly job: partitions for the coming days, retention.
func (s *Service) Maintain(ctx context.Context, now time.Time) (created int, dropped []string, events int64, err error) {
	if created, err = s.EnsurePartitions(ctx, now, 3); err != nil {
		return
	}
	dropped, events, err = s.DropExpired(ctx, now, s.Opts.Retention)
	return
}
