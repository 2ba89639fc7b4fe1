package webhooks

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
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
	VIN       string
	Key       string
	Unit      string
	DataType  string
	EventType string
	Value     string
	ReadAt    time.Time
}

// FanOut turns up to limit unprocessed vehicle events (the ingest's outbox)
// into events for the providers entitled to them, and marks them
// processed, in one transaction. Rows are claimed with SKIP LOCKED so
// replicas share the work. Without a Recipients function (the consent
// module not wired) it leaves the outbox alone.
func (s *Service) FanOut(ctx context.Context, limit int) (int, error) {
	if s.Recipients == nil {
		return 0, nil
	}
	n := 0
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var evs []pendingVehicleEvent
		err := tx.Raw(`SELECT ve.id, ve.vehicle_id, v.vin, k.key, k.unit, k.data_type, ve.event_type, ve.value, ve.read_at
			FROM vehicle_events ve JOIN vehicles v ON v.id = ve.vehicle_id JOIN catalog_keys k ON k.id = ve.key_id
			WHERE ve.processed_at IS NULL ORDER BY ve.id LIMIT ? FOR UPDATE OF ve SKIP LOCKED`, limit).Scan(&evs).Error
		if err != nil {
			return errs.Wrap(err, "claim vehicle events")
		}
		if len(evs) == 0 {
			return nil
		}
		ids := make([]int64, len(evs))
		for i, ve := range evs {
			ids[i] = ve.ID
			rs, err := s.Recipients(ctx, tx, ve.VehicleID, ve.Key, ve.ReadAt)
			if err != nil {
				return err
			}
			for _, r := range rs {
				src := ve.ID
				data := TelematicsData{VIN: ve.VIN, ContainerID: r.ContainerID,
					TelematicData: map[string]Value{ve.Key: NewValue(ve.DataType, ve.Unit, ve.Value, ve.ReadAt)}}
				if _, err := s.Emit(ctx, tx, NewEvent{ProviderID: r.ProviderID, Type: TypeForPushEvent(ve.EventType), VIN: ve.VIN,
					ContainerID: r.ContainerID, ContainerVersion: r.ContainerVersion, ConsentID: r.ConsentID, KeysCount: 1,
					SourceEventID: &src, Data: data}); err != nil {
					return err
				}
			}
		}
		n = len(evs)
		return errs.Wrap(tx.Exec("UPDATE vehicle_events SET processed_at = ? WHERE id IN ?", s.now(), ids).Error, "mark vehicle events")
	})
	return n, err
}
