package webhooks

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// TypedValue turns a stored reading (text) into its JSON value by the
// catalog's data type: numbers stay numbers, booleans booleans, json keys
// their JSON; everything else is a string. A value that does not parse as
// its type is sent as a string rather than as broken JSON.
func TypedValue(dataType, text string) json.RawMessage {
	switch dataType {
	case "integer", "decimal":
		if _, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "xXnNiI_") {
			return json.RawMessage(text)
		}
	case "boolean":
		if b, err := strconv.ParseBool(text); err == nil {
			return json.RawMessage(strconv.FormatBool(b))
		}
	case "json":
		if json.Valid([]byte(text)) {
			return json.RawMessage(text)
		}
	}
	b, _ := json.Marshal(text)
	return b
}

// Value is one telematics value as the API and the pushes carry it.
type Value struct {
	Value     json.RawMessage `json:"value"`
	Unit      *string         `json:"unit"`
	Timestamp time.Time       `json:"timestamp"`
}

// NewValue builds a Value; an empty unit is null.
func NewValue(dataType, unit, text string, readAt time.Time) Value {
	v := Value{Value: TypedValue(dataType, text), Timestamp: readAt.UTC()}
	if unit != "" {
		v.Unit = &unit
	}
	return v
}

// TelematicsData is the data of a telematics push: the same shape as the
// API's telematicData response, with the one value that changed.
type TelematicsData struct {
	VIN           string           `json:"vin"`
	ContainerID   int64            `json:"containerId"`
	TelematicData map[string]Value `json:"telematicData"`
}

type pendingVehicleEvent struct {
	ID        int64
	VehicleID int64
	KeyID     int16
	Key       string
	Unit      string
	DataType  string
	EventType string
	Value     string
	ReadAt    time.Time
	CreatedAt time.Time
}

// FanOut turns up to limit unprocessed vehicle events (the ingest's outbox)
// into events for the providers entitled to them, and removes them from the
// outbox, in one transaction with a constant number of statements: the
// claim (SKIP LOCKED, so replicas share the work) deletes the rows as it
// returns them (a delete costs a fraction of an update that leaves the
// pending index: the readings themselves are in the history), the recipients of all events are found in one query, and
// only vehicles with recipients are looked up. Without a Recipients
// function (the consent module not wired) it leaves the outbox alone.
//
// One event that cannot be processed (a value its push cannot carry) must
// not hold up the events behind it: when the batch fails on such an error
// it is run again with each event on its own savepoint, and the events
// that fail alone are moved to vehicle_events_dead with their error.
func (s *Service) FanOut(ctx context.Context, limit int) (int, error) {
	n, _, err := s.fanOut(ctx, limit, false)
	if err == nil || ctx.Err() != nil || !poison(err) {
		return n, err
	}
	s.log().Warn("webhook fan-out failed; isolating the events of the batch", "error", err.Error())
	n, dead, err := s.fanOut(ctx, limit, true)
	if err == nil {
		s.countDead(StageFanOut, dead)
	}
	return n, err
}

func (s *Service) fanOut(ctx context.Context, limit int, isolate bool) (n, dead int, err error) {
	if s.Recipients == nil {
		return 0, 0, nil
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var evs []pendingVehicleEvent
		err := tx.Raw(`WITH c AS (
				SELECT ve.id, coalesce(k.key, '') AS key, coalesce(k.unit, '') AS unit, coalesce(k.data_type, '') AS data_type
				FROM vehicle_events ve LEFT JOIN catalog_keys k ON k.id = ve.key_id
				ORDER BY ve.id LIMIT ? FOR UPDATE OF ve SKIP LOCKED)
			DELETE FROM vehicle_events ve USING c WHERE ve.id = c.id
			RETURNING ve.id, ve.vehicle_id, ve.key_id, c.key, c.unit, c.data_type, ve.event_type, ve.value, ve.read_at, ve.created_at`,
			limit).Scan(&evs).Error
		if err != nil {
			return errs.Wrap(err, "claim vehicle events")
		}
		if len(evs) == 0 {
			return nil
		}
		slices.SortFunc(evs, func(a, b pendingVehicleEvent) int { return cmp.Compare(a.ID, b.ID) })
		readings := make([]Reading, len(evs))
		for i, ve := range evs {
			readings[i] = Reading{VehicleID: ve.VehicleID, Key: ve.Key, At: ve.ReadAt}
		}
		recipients, err := s.Recipients(ctx, tx, readings)
		if err != nil {
			return err
		}
		var vehicleIDs []int64
		for i, rs := range recipients {
			if len(rs) > 0 {
				vehicleIDs = append(vehicleIDs, evs[i].VehicleID)
			}
		}
		vins := map[int64]string{}
		if len(vehicleIDs) > 0 {
			var rows []struct {
				ID  int64
				VIN string `gorm:"column:vin"`
			}
			if err := tx.Raw("SELECT id, vin FROM vehicles WHERE id = ANY (?::bigint[])", sqlarray.Int64s(vehicleIDs)).Scan(&rows).Error; err != nil {
				return errs.Wrap(err, "vehicles of vehicle events")
			}
			for _, r := range rows {
				vins[r.ID] = r.VIN
			}
		}
		for i, ve := range evs {
			if len(recipients[i]) == 0 {
				continue
			}
			emit := func(tx *gorm.DB) error {
				for _, r := range recipients[i] {
					src, vin := ve.ID, vins[ve.VehicleID]
					data := TelematicsData{VIN: vin, ContainerID: r.ContainerID,
						TelematicData: map[string]Value{ve.Key: NewValue(ve.DataType, ve.Unit, ve.Value, ve.ReadAt)}}
					if _, err := s.Emit(ctx, tx, NewEvent{ProviderID: r.ProviderID, Type: TypeForPushEvent(ve.EventType), VIN: vin,
						ContainerID: r.ContainerID, ContainerVersion: r.ContainerVersion, ConsentID: r.ConsentID, KeysCount: 1, KeyIDs: []int16{ve.KeyID},
						SourceEventID: &src, Data: data}); err != nil {
						return err
					}
				}
				return nil
			}
			if !isolate {
				if err := emit(tx); err != nil {
					return err
				}
				continue
			}
			// A savepoint per event: its failure undoes only its own pushes.
			err := tx.Transaction(emit)
			if err == nil {
				continue
			}
			if ctx.Err() != nil || !poison(err) {
				return err
			}
			if err := deadLetterEvent(tx, ve, err, s.now()); err != nil {
				return err
			}
			s.log().Error("vehicle event dead-lettered", "vehicle_event", ve.ID, "key", ve.Key, "error", err.Error())
			dead++
		}
		n = len(evs)
		return nil
	})
	return n, dead, err
}
