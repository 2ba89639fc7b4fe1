package webhooks

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/consent"
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
// API's telematicData response, with the keys of one vehicle event that the
// recipient's container allows.
type TelematicsData struct {
	VIN           string           `json:"vin"`
	ContainerID   int64            `json:"containerId"`
	TelematicData map[string]Value `json:"telematicData"`
}

// eventKey is one key of a vehicle event with its value.
type eventKey struct {
	ID       int16
	Key      string
	Unit     string
	DataType string
	Value    string
}

// pendingVehicleEvent is a claimed vehicle event: one thing that happened
// at one reading time, with the keys of its type read then.
type pendingVehicleEvent struct {
	ID        int64
	VehicleID int64
	EventType string
	ReadAt    time.Time
	CreatedAt time.Time
	Keys      []eventKey
}

func (ve *pendingVehicleEvent) keyIDs() []int16 {
	out := make([]int16, len(ve.Keys))
	for i, k := range ve.Keys {
		out[i] = k.ID
	}
	return out
}

// claimVehicleEvents claims and deletes up to limit vehicle events (SKIP
// LOCKED, so replicas share the work), in id order, each with its keys in
// the stored order. A key read twice at the same time (two readings of one
// key in a batch) is carried once, with its first value.
func claimVehicleEvents(tx *gorm.DB, limit int) ([]pendingVehicleEvent, error) {
	var rows []struct {
		ID        int64
		VehicleID int64
		EventType string
		ReadAt    time.Time
		CreatedAt time.Time
		KeyID     int16
		Key       string
		Unit      string
		DataType  string
		Value     string
	}
	err := tx.Raw(`WITH c AS (SELECT id FROM vehicle_events ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED),
			d AS (DELETE FROM vehicle_events ve USING c WHERE ve.id = c.id
				RETURNING ve.id, ve.vehicle_id, ve.event_type, ve.read_at, ve.created_at, ve.key_ids, ve.key_values)
		SELECT d.id, d.vehicle_id, d.event_type, d.read_at, d.created_at, u.key_id, u.value,
			coalesce(k.key, '') AS key, coalesce(k.unit, '') AS unit, coalesce(k.data_type, '') AS data_type
		FROM d CROSS JOIN LATERAL unnest(d.key_ids, d.key_values) WITH ORDINALITY AS u(key_id, value, n)
		LEFT JOIN catalog_keys k ON k.id = u.key_id
		ORDER BY d.id, u.n`, limit).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "claim vehicle events")
	}
	var evs []pendingVehicleEvent
	for _, r := range rows {
		if len(evs) == 0 || evs[len(evs)-1].ID != r.ID {
			evs = append(evs, pendingVehicleEvent{ID: r.ID, VehicleID: r.VehicleID, EventType: r.EventType, ReadAt: r.ReadAt, CreatedAt: r.CreatedAt})
		}
		ve := &evs[len(evs)-1]
		if slices.ContainsFunc(ve.Keys, func(k eventKey) bool { return k.ID == r.KeyID }) {
			continue
		}
		ve.Keys = append(ve.Keys, eventKey{ID: r.KeyID, Key: r.Key, Unit: r.Unit, DataType: r.DataType, Value: r.Value})
	}
	return evs, nil
}

// FanOut turns up to limit unprocessed vehicle events (the ingest's outbox)
// into pushes for the providers entitled to them, and removes them from the
// outbox, in one transaction with a constant number of statements: the
// claim (SKIP LOCKED, so replicas share the work) deletes the rows as it
// returns them (a delete costs a fraction of an update that leaves the
// pending index: the readings themselves are in the history), the
// recipients of all events are found in one query, and only vehicles with
// recipients are looked up. Without a Recipients function (the consent
// module not wired) it leaves the outbox alone.
//
// A vehicle event is one thing that happened at one reading time (a
// position update: latitude, longitude, heading, altitude): each recipient
// whose container allows at least one of its keys gets one push, carrying
// the keys its container allows, and is billed for one push when it is
// delivered.
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
		evs, err := claimVehicleEvents(tx, limit)
		if err != nil || len(evs) == 0 {
			return err
		}
		queries := make([]consent.VehicleEvent, len(evs))
		for i := range evs {
			queries[i] = consent.VehicleEvent{VehicleID: evs[i].VehicleID, At: evs[i].ReadAt, KeyIDs: evs[i].keyIDs()}
		}
		recipients, err := s.Recipients(ctx, tx, queries)
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
		for i := range evs {
			ve := &evs[i]
			if len(recipients[i]) == 0 {
				continue
			}
			emit := func(tx *gorm.DB) error {
				for _, r := range recipients[i] {
					src, vin := ve.ID, vins[ve.VehicleID]
					data := TelematicsData{VIN: vin, ContainerID: r.ContainerID, TelematicData: map[string]Value{}}
					var keyIDs []int16
					for _, k := range ve.Keys {
						if k.Key != "" && slices.Contains(r.KeyIDs, k.ID) {
							data.TelematicData[k.Key] = NewValue(k.DataType, k.Unit, k.Value, ve.ReadAt)
							keyIDs = append(keyIDs, k.ID)
						}
					}
					if len(keyIDs) == 0 {
						continue // none of the keys it may have is a catalog key any more
					}
					if _, err := s.Emit(ctx, tx, NewEvent{ProviderID: r.ProviderID, Type: TypeForPushEvent(ve.EventType), VIN: vin,
						ContainerID: r.ContainerID, ContainerVersion: r.ContainerVersion, ConsentID: r.ConsentID,
						KeysCount: len(keyIDs), KeyIDs: keyIDs, SourceEventID: &src, Data: data, Sandbox: r.Sandbox}); err != nil {
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
			s.log().Error("vehicle event dead-lettered", "vehicle_event", ve.ID, "event_type", ve.EventType, "error", err.Error())
			dead++
		}
		n = len(evs)
		return nil
	})
	return n, dead, err
}
