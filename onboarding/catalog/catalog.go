// Package catalog is the telematics catalog: every data key a vehicle can
// transmit, with its type, unit, category, sensitivity, whether it can be
// pushed, and an English and German description.
//
// Pushable keys belong to a vehicle event type (the "events" section): an
// event is one thing that happened at one reading time, and it carries every
// key of its type read at that time (a position update: latitude, longitude,
// heading and altitude, as far as they were sent together). The section
// names each type's webhook type and its English and German names; Parse
// checks that every pushable key names one, that every type has keys, and
// that a type's keys are all event keys (every reading is an event) or all
// state keys (an event when a value changes).
//
// The source of truth is catalog.json, embedded in the binary. The
// catalog_keys table mirrors it so SQL can join on keys: migration 00031 seeds
// it (generated from the file; a test fails when the two drift) and Sync
// brings an existing database up to the binary's file at boot. Key ids are
// stable and never reused: history and latest values refer to them.
package catalog

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Type is a key's data type; values are transmitted as strings and must parse as it.
type Type string

// Data types.
const (
	Integer   Type = "integer"
	Decimal   Type = "decimal"
	Boolean   Type = "boolean"
	String    Type = "string"
	Enum      Type = "enum"
	JSON      Type = "json"
	Timestamp Type = "timestamp"
)

// Types lists every data type.
var Types = []Type{Integer, Decimal, Boolean, String, Enum, JSON, Timestamp}

// Categories, in display order.
var Categories = []string{"basic", "status", "usage", "event", "electric", "position", "service"}

// Sensitivity levels. Anything other than normal is personal data that needs
// a stronger review (two partner managers) before a container may use it.
const (
	Normal           = "normal"
	Location         = "location"
	DrivingBehaviour = "driving_behaviour"
)

// Sensitivities lists every sensitivity level.
var Sensitivities = []string{Normal, Location, DrivingBehaviour}

// Drive trains a key can be restricted to (empty Drivetrains: every vehicle).
var Drivetrains = []string{"combustion", "phev", "bev"}

// Key is one telematics data key.
type Key struct {
	ID          int16    `json:"id"`
	Name        string   `json:"key"`
	Type        Type     `json:"type"`
	Values      []string `json:"values,omitempty"` // the allowed values of an enum
	Unit        string   `json:"unit"`
	Min         *float64 `json:"min,omitempty"` // inclusive bounds of numeric values
	Max         *float64 `json:"max,omitempty"`
	Category    string   `json:"category"`
	Sensitivity string   `json:"sensitivity"`
	Pushable    bool     `json:"pushable"`
	// PushEvent names the vehicle event a pushable key produces
	// (position_updated, service_call, ...).
	PushEvent     string   `json:"pushEvent,omitempty"`
	Drivetrains   []string `json:"drivetrains,omitempty"`
	DescriptionEN string   `json:"en"`
	DescriptionDE string   `json:"de"`
}

// Sensitive reports whether the key carries location or driving-behaviour data.
func (k *Key) Sensitive() bool { return k.Sensitivity != Normal }

// IsEvent reports whether every reading is a discrete occurrence (a service
// call, an alarm) rather than a state whose newest value replaces the last.
func (k *Key) IsEvent() bool { return k.Category == "event" }

// AppliesTo reports whether the key exists on a vehicle with this drive train.
func (k *Key) AppliesTo(drivetrain string) bool {
	return len(k.Drivetrains) == 0 || slices.Contains(k.Drivetrains, drivetrain)
}

// TypeLabel renders the type for people: "enum(OK, LOW)".
func (k *Key) TypeLabel() string {
	if k.Type == Enum {
		return "enum(" + strings.Join(k.Values, ", ") + ")"
	}
	return string(k.Type)
}

// Event is a vehicle event type: what one push carries.
type Event struct {
	Name string `json:"name"` // position_updated, service_call, ...
	// WebhookType is the event type providers subscribe to
	// (vehicle.positionUpdated, vehicle.serviceCall, telematics.updated).
	WebhookType   string `json:"webhookType"`
	DescriptionEN string `json:"en"`
	DescriptionDE string `json:"de"`
	keyIDs        []int16
	always        bool
}

// KeyIDs are the keys of the event type, in id order. Callers must not
// modify the slice.
func (e *Event) KeyIDs() []int16 { return e.keyIDs }

// Always reports whether every reading of the type's keys is an event (a
// service call) rather than only a changed value (a position).
func (e *Event) Always() bool { return e.always }

// Catalog is the loaded, validated catalog. It is immutable.
type Catalog struct {
	Version int
	keys    []Key
	byName  map[string]*Key
	byID    map[int16]*Key
	events  []Event
	byEvent map[string]*Event
}

// Events returns the vehicle event types in file order. Callers must not
// modify them.
func (c *Catalog) Events() []Event { return c.events }

// Event finds a vehicle event type by name.
func (c *Catalog) Event(name string) (*Event, bool) {
	e, ok := c.byEvent[name]
	return e, ok
}

// Keys returns every key in id order. Callers must not modify the keys.
func (c *Catalog) Keys() []Key { return c.keys }

// Len is the number of keys.
func (c *Catalog) Len() int { return len(c.keys) }

// Lookup finds a key by its dotted name.
func (c *Catalog) Lookup(name string) (*Key, bool) {
	k, ok := c.byName[name]
	return k, ok
}

// ByID finds a key by its id.
func (c *Catalog) ByID(id int16) (*Key, bool) {
	k, ok := c.byID[id]
	return k, ok
}

//go:embed catalog.json
var embedded []byte

var (
	defaultOnce sync.Once
	defaultCat  *Catalog
	defaultErr  error
)

// Default returns the catalog shipped with the binary. A broken file is a
// programming error caught by the package tests, so this panics on it.
func Default() *Catalog {
	defaultOnce.Do(func() { defaultCat, defaultErr = Parse(embedded) })
	if defaultErr != nil {
		panic("catalog.json: " + defaultErr.Error())
	}
	return defaultCat
}

// keyPattern is the dotted lower-camel style: "vehicle." then segments that
// start lower-case (row1, isOpen, hUandAu...).
var keyPattern = regexp.MustCompile(`^vehicle(\.[a-z][a-zA-Z0-9]*)+$`)

var (
	eventPattern       = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	webhookTypePattern = regexp.MustCompile(`^[a-z]+\.[a-z][a-zA-Z]*$`)
)

// Parse reads and validates a catalog file.
func Parse(data []byte) (*Catalog, error) {
	var f struct {
		Version int     `json:"version"`
		Events  []Event `json:"events"`
		Keys    []Key   `json:"keys"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	c := &Catalog{Version: f.Version, keys: f.Keys, byName: map[string]*Key{}, byID: map[int16]*Key{},
		events: f.Events, byEvent: map[string]*Event{}}
	for i := range c.events {
		e := &c.events[i]
		switch {
		case !eventPattern.MatchString(e.Name):
			return nil, fmt.Errorf("event %q: name must be lower snake case", e.Name)
		case !webhookTypePattern.MatchString(e.WebhookType):
			return nil, fmt.Errorf("event %q: webhookType %q is not a type like vehicle.positionUpdated", e.Name, e.WebhookType)
		case strings.TrimSpace(e.DescriptionEN) == "" || strings.TrimSpace(e.DescriptionDE) == "":
			return nil, fmt.Errorf("event %q: English and German names are required", e.Name)
		}
		if _, dup := c.byEvent[e.Name]; dup {
			return nil, fmt.Errorf("duplicate event %q", e.Name)
		}
		c.byEvent[e.Name] = e
	}
	slices.SortFunc(c.keys, func(a, b Key) int { return int(a.ID) - int(b.ID) })
	for i := range c.keys {
		k := &c.keys[i]
		if err := check(k); err != nil {
			return nil, fmt.Errorf("key %d %q: %w", k.ID, k.Name, err)
		}
		if _, dup := c.byID[k.ID]; dup {
			return nil, fmt.Errorf("key %q: duplicate id %d", k.Name, k.ID)
		}
		if _, dup := c.byName[k.Name]; dup {
			return nil, fmt.Errorf("duplicate key %q", k.Name)
		}
		c.byID[k.ID], c.byName[k.Name] = k, k
		if !k.Pushable {
			continue
		}
		e, ok := c.byEvent[k.PushEvent]
		if !ok {
			return nil, fmt.Errorf("key %d %q: pushEvent %q is not in the events section", k.ID, k.Name, k.PushEvent)
		}
		if len(e.keyIDs) > 0 && e.always != k.IsEvent() {
			return nil, fmt.Errorf("event %q mixes event keys and state keys (key %q)", e.Name, k.Name)
		}
		e.keyIDs, e.always = append(e.keyIDs, k.ID), k.IsEvent()
	}
	for _, e := range c.events {
		if len(e.keyIDs) == 0 {
			return nil, fmt.Errorf("event %q: no pushable key names it", e.Name)
		}
	}
	return c, nil
}

func check(k *Key) error {
	switch {
	case k.ID <= 0:
		return fmt.Errorf("id must be positive")
	case !keyPattern.MatchString(k.Name):
		return fmt.Errorf("name must be dotted lower camel case starting with vehicle.")
	case !slices.Contains(Types, k.Type):
		return fmt.Errorf("unknown type %q", k.Type)
	case (k.Type == Enum) != (len(k.Values) > 0):
		return fmt.Errorf("values are required for enums and only for them")
	case !slices.Contains(Categories, k.Category):
		return fmt.Errorf("unknown category %q", k.Category)
	case !slices.Contains(Sensitivities, k.Sensitivity):
		return fmt.Errorf("unknown sensitivity %q", k.Sensitivity)
	case k.Pushable != (k.PushEvent != ""):
		return fmt.Errorf("a pushable key names its pushEvent, others must not")
	case k.Category == "event" && !k.Pushable:
		return fmt.Errorf("event keys are pushable")
	case strings.TrimSpace(k.DescriptionEN) == "" || strings.TrimSpace(k.DescriptionDE) == "":
		return fmt.Errorf("English and German descriptions are required")
	case (k.Min != nil || k.Max != nil) && k.Type != Integer && k.Type != Decimal:
		return fmt.Errorf("min and max apply to numbers only")
	case (k.Type == Integer || k.Type == Decimal) && (k.Min == nil || k.Max == nil):
		return fmt.Errorf("numbers need min and max (their physical bounds)")
	case k.Min != nil && k.Max != nil && *k.Min > *k.Max:
		return fmt.Errorf("min exceeds max")
	}
	for _, d := range k.Drivetrains {
		if !slices.Contains(Drivetrains, d) {
			return fmt.Errorf("unknown drive train %q", d)
		}
	}
	seen := map[string]bool{}
	for _, v := range k.Values {
		if v == "" || seen[v] {
			return fmt.Errorf("enum values must be unique and non-empty")
		}
		seen[v] = true
	}
	return nil
}
