package webhooks

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// Stages of the push pipeline that dead-letter (the metric's label).
const (
	StageFanOut = "fanout" // a vehicle event could not be turned into pushes
	StageSend   = "send"   // a delivery could not be processed (not: its receiver failed)
)

// ReasonProcessingFailed is the status reason of a delivery dead-lettered
// because processing it failed maxProcessingFailures times.
const ReasonProcessingFailed = "processing_failed"

// maxProcessingFailures: a delivery whose processing fails is retried with
// back-off this many times in all before it is set aside, so a passing
// database hiccup does not dead-letter it but a poisoned one stops.
const maxProcessingFailures = 3

type metrics struct {
	dead *prometheus.CounterVec
}

// Register adds the push worker's metrics to reg.
func (s *Service) Register(reg prometheus.Registerer) {
	m := &metrics{dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cardata_push_dead_letters_total",
		Help: "Vehicle events (stage fanout) and push deliveries (stage send) set aside because they could not be processed."},
		[]string{"stage"})}
	for _, stage := range []string{StageFanOut, StageSend} {
		m.dead.WithLabelValues(stage) // present at 0 from the start
	}
	reg.MustRegister(m.dead)
	s.metrics = m
}

func (s *Service) countDead(stage string, n int) {
	if s.metrics != nil && n > 0 {
		s.metrics.dead.WithLabelValues(stage).Add(float64(n))
	}
}

// poison reports whether err is one that the same input will meet again
// (data the database refuses, a payload that does not encode), rather than
// a lost connection or a timeout, which must not dead-letter anything.
func poison(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 22: data exception (the jsonb cast), 23: integrity constraint.
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return false
	}
	var ce *pgconn.ConnectError
	return !errors.As(err, &ce)
}

// deadLetterEvent sets a claimed (already deleted) vehicle event aside, with
// all its keys and values.
func deadLetterEvent(tx *gorm.DB, ve *pendingVehicleEvent, cause error, now time.Time) error {
	values := make(sqlarray.Texts, len(ve.Keys))
	for i, k := range ve.Keys {
		values[i] = k.Value
	}
	err := tx.Exec(`INSERT INTO vehicle_events_dead (id, vehicle_id, event_type, key_ids, key_values, read_at, created_at, error, failed_at)
		VALUES (?, ?, ?, ?::smallint[], ?::text[], ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET error = excluded.error, failed_at = excluded.failed_at`,
		ve.ID, ve.VehicleID, ve.EventType, sqlarray.Int16s(ve.keyIDs()), values, ve.ReadAt, ve.CreatedAt, clip(errText(cause), 2000), now).Error
	return errs.Wrap(err, "dead-letter vehicle event")
}

// errText is the whole chain of an error for staff (errs.Error shows the
// client-safe message only).
func errText(err error) string {
	if e := errors.Unwrap(err); e != nil {
		var ee *errs.Error
		if errors.As(err, &ee) && ee.Err != nil {
			return ee.Err.Error()
		}
	}
	return err.Error()
}

// DeadEvent is a vehicle event the fan-out set aside. An event has one or
// more keys: Key lists their names (", "), Value their values in the same
// order (" | ").
type DeadEvent struct {
	ID        int64
	VehicleID int64
	VIN       string `gorm:"column:vin"`
	Key       string
	EventType string
	Value     string
	ReadAt    time.Time
	FailedAt  time.Time
	Error     string
}

// deadKeyNames renders the key names of a dead-lettered event (d) for staff.
const deadKeyNames = `(SELECT string_agg(coalesce(k.key, u.id::text), ', ' ORDER BY u.n)
	FROM unnest(d.key_ids) WITH ORDINALITY AS u(id, n) LEFT JOIN catalog_keys k ON k.id = u.id)`

// DeadEvents lists the vehicle events set aside by the fan-out, newest
// first, and how many there are.
func (s *Service) DeadEvents(ctx context.Context, limit int) ([]DeadEvent, int64, error) {
	var out []DeadEvent
	err := s.DB.WithContext(ctx).Raw(`SELECT d.id, d.vehicle_id, coalesce(v.vin, '') AS vin, `+deadKeyNames+` AS key,
			d.event_type, array_to_string(d.key_values, ' | ') AS value, d.read_at, d.failed_at, d.error
		FROM vehicle_events_dead d LEFT JOIN vehicles v ON v.id = d.vehicle_id
		ORDER BY d.failed_at DESC, d.id DESC LIMIT ?`, limit).Scan(&out).Error
	if err != nil {
		return nil, 0, errs.Wrap(err, "dead vehicle events")
	}
	var n int64
	if err := s.DB.WithContext(ctx).Raw("SELECT count(*) FROM vehicle_events_dead").Scan(&n).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count dead vehicle events")
	}
	return out, n, nil
}

// ErrDeadEventNotFound: no dead-lettered vehicle event with that id.
var ErrDeadEventNotFound = errs.New(errs.NotFound, "dead_event_not_found", "no such dead-lettered vehicle event")

// RetryDeadEvent puts a dead-lettered vehicle event back into the outbox
// (with its id, so pushes already made for it are not made twice), audited.
func (s *Service) RetryDeadEvent(ctx context.Context, id int64) error {
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var ev struct {
			ID    int64
			Key   string
			Error string
		}
		err := tx.Raw(`WITH d AS (DELETE FROM vehicle_events_dead WHERE id = ? RETURNING *),
			ins AS (INSERT INTO vehicle_events (id, vehicle_id, event_type, key_ids, key_values, read_at, created_at)
				SELECT id, vehicle_id, event_type, key_ids, key_values, read_at, created_at FROM d)
			SELECT d.id, coalesce(`+deadKeyNames+`, '') AS key, d.error FROM d`, id).Scan(&ev).Error
		if err != nil {
			return errs.Wrap(err, "retry dead vehicle event")
		}
		if ev.ID == 0 {
			return ErrDeadEventNotFound
		}
		return audit.Recordf(ctx, tx, "push.dead_letter.retry", "vehicle_event", strconv.FormatInt(id, 10),
			"queued vehicle event %d (%s) for the push fan-out again; it had failed with: %s", id, ev.Key, clip(ev.Error, 300))
	})
	if err == nil {
		s.Kick()
	}
	return err
}

// processingFailed handles a delivery whose processing failed (cause): it
// is given back with a back-off, and after maxProcessingFailures it is
// dead-lettered as processing_failed with the error, so it neither blocks
// the worker nor is tried in a tight loop. A delivery that another worker
// has claimed since (another lease token) is left alone.
func (s *Service) processingFailed(ctx context.Context, c claimed, cause error) error {
	defer s.dbTurn()() // an attempt's database step: within the push share of the pool
	now := s.now()
	var status []string
	err := s.DB.WithContext(ctx).Raw(`UPDATE webhook_deliveries SET processing_failures = processing_failures + 1,
			last_error = ?, lease_until = NULL, lease_token = NULL, next_attempt_at = ?,
			status = CASE WHEN processing_failures + 1 >= ? THEN 'dead' ELSE status END,
			status_reason = CASE WHEN processing_failures + 1 >= ? THEN ? ELSE status_reason END,
			finished_at = CASE WHEN processing_failures + 1 >= ? THEN ?::timestamptz ELSE finished_at END
		WHERE id = ? AND status = 'pending' AND (lease_token IS NULL OR lease_token = ?) RETURNING status`,
		clip("processing failed: "+errText(cause), 1000), now.Add(s.opt().Backoff(1)),
		maxProcessingFailures, maxProcessingFailures, ReasonProcessingFailed, maxProcessingFailures, now, c.ID, c.token).Scan(&status).Error
	if err != nil {
		return errs.Wrap(err, "record processing failure")
	}
	if len(status) == 1 && status[0] == DeliveryDead {
		s.countDead(StageSend, 1)
		s.log().Error("webhook delivery dead-lettered", "delivery", c.ID, "event", c.EventID, "error", cause.Error())
	}
	return nil
}

// RetryDelivery queues a dead-lettered delivery of the provider once more
// (staff, from the deliveries page), audited; its processing failures
// start again from zero.
func (s *Service) RetryDelivery(ctx context.Context, providerID, deliveryID int64) error {
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		var ev []string
		err := tx.Raw(`UPDATE webhook_deliveries SET status = 'pending', status_reason = 'redelivery by hand', next_attempt_at = ?,
				give_up_at = ?, finished_at = NULL, lease_until = NULL, lease_token = NULL, processing_failures = 0
			WHERE id = ? AND provider_id = ? AND status = 'dead' RETURNING event_id`, now, now, deliveryID, providerID).Scan(&ev).Error
		if err != nil {
			return errs.Wrap(err, "retry delivery")
		}
		if len(ev) == 0 {
			return errs.New(errs.NotFound, "webhook_delivery_not_found", "no dead-lettered delivery %d of this provider", deliveryID)
		}
		return audit.Recordf(ctx, tx, "push.dead_letter.retry", "provider", strconv.FormatInt(providerID, 10),
			"queued dead-lettered delivery %d of event %s again", deliveryID, ev[0])
	})
	if err == nil {
		s.Kick()
	}
	return err
}
