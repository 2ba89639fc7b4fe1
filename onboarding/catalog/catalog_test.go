package catalog

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"cardata/policies/errs"
)

var update = flag.Bool("update", false, "rewrite the generated seed migration")

func TestDefaultCatalogIsComplete(t *testing.T) {
	t.Parallel()
	c := Default()
	if c.Len() < 80 {
		t.Fatalf("catalog has %d keys, want at least 80", c.Len())
	}
	perCategory := map[string]int{}
	pushable, sensitive := 0, 0
	for _, k := range c.Keys() {
		perCategory[k.Category]++
		if k.Pushable {
			pushable++
		}
		if k.Sensitive() {
			sensitive++
		}
		if got, ok := c.Lookup(k.Name); !ok || got.ID != k.ID {
			t.Errorf("Lookup(%q) does not find the key", k.Name)
		}
		if got, ok := c.ByID(k.ID); !ok || got.Name != k.Name {
			t.Errorf("ByID(%d) does not find %q", k.ID, k.Name)
		}
	}
	for _, cat := range Categories {
		if perCategory[cat] == 0 {
			t.Errorf("category %q has no keys", cat)
		}
	}
	if pushable == 0 || sensitive == 0 {
		t.Errorf("pushable=%d sensitive=%d, want both", pushable, sensitive)
	}
	for _, name := range []string{"vehicle.vehicle.travelledDistance",
		"vehicle.cabin.infotainment.navigation.currentLocation.latitude", "vehicle.drivetrain.batteryManagement.header"} {
		if _, ok := c.Lookup(name); !ok {
			t.Errorf("catalog lacks %s", name)
		}
	}
	if k, _ := c.Lookup("vehicle.cabin.infotainment.navigation.currentLocation.latitude"); k.Sensitivity != Location || !k.Pushable {
		t.Errorf("latitude: sensitivity %q pushable %v, want location and pushable", k.Sensitivity, k.Pushable)
	}
}

// The shipped event types: a position update is latitude, longitude,
// altitude and heading; every pushable key belongs to exactly one type.
func TestDefaultCatalogEvents(t *testing.T) {
	t.Parallel()
	c := Default()
	pos, ok := c.Event("position_updated")
	if !ok || !slices.Equal(pos.KeyIDs(), []int16{150, 151, 152, 153}) || pos.Always() || pos.WebhookType != "vehicle.positionUpdated" {
		t.Fatalf("position_updated: %+v", pos)
	}
	if cc, ok := c.Event("check_control"); !ok || len(cc.KeyIDs()) != 4 || !cc.Always() {
		t.Fatalf("check_control: %+v", cc)
	}
	if sc, ok := c.Event("service_call"); !ok || !slices.Equal(sc.KeyIDs(), []int16{90, 91}) || sc.WebhookType != "vehicle.serviceCall" {
		t.Fatalf("service_call: %+v", sc)
	}
	inEvents := 0
	for _, e := range c.Events() {
		for _, id := range e.KeyIDs() {
			k, ok := c.ByID(id)
			if !ok || !k.Pushable || k.PushEvent != e.Name || k.IsEvent() != e.Always() {
				t.Errorf("event %s lists key %d (%+v)", e.Name, id, k)
			}
			inEvents++
		}
	}
	pushable := 0
	for _, k := range c.Keys() {
		if k.Pushable {
			pushable++
		}
	}
	if inEvents != pushable {
		t.Errorf("%d keys in event types, %d pushable keys", inEvents, pushable)
	}
}

func TestParseRefusesBrokenFiles(t *testing.T) {
	t.Parallel()
	good := `{"id":1,"key":"vehicle.a.b","type":"integer","unit":"km","min":0,"max":9,"category":"status","sensitivity":"normal","pushable":false,"en":"x","de":"y"}`
	cases := map[string]string{
		"duplicate id":      `{"keys":[` + good + `,` + strings.Replace(good, "vehicle.a.b", "vehicle.a.c", 1) + `]}`,
		"duplicate name":    `{"keys":[` + good + `,` + strings.Replace(good, `"id":1`, `"id":2`, 1) + `]}`,
		"snake case":        `{"keys":[` + strings.Replace(good, "vehicle.a.b", "vehicle.a.travelled_distance", 1) + `]}`,
		"upper first":       `{"keys":[` + strings.Replace(good, "vehicle.a.b", "vehicle.A.b", 1) + `]}`,
		"unknown type":      `{"keys":[` + strings.Replace(good, `"integer"`, `"float"`, 1) + `]}`,
		"enum no values":    `{"keys":[` + strings.Replace(good, `"integer"`, `"enum"`, 1) + `]}`,
		"unknown category":  `{"keys":[` + strings.Replace(good, `"status"`, `"misc"`, 1) + `]}`,
		"bad sensitivity":   `{"keys":[` + strings.Replace(good, `"normal"`, `"secret"`, 1) + `]}`,
		"push without name": `{"keys":[` + strings.Replace(good, `"pushable":false`, `"pushable":true`, 1) + `]}`,
		"no german":         `{"keys":[` + strings.Replace(good, `"de":"y"`, `"de":" "`, 1) + `]}`,
		"unknown field":     `{"keys":[` + strings.Replace(good, `"en":"x"`, `"en":"x","colour":"red"`, 1) + `]}`,
		"range on boolean":  `{"keys":[` + strings.Replace(good, `"integer"`, `"boolean"`, 1) + `]}`,
		"number no max":     `{"keys":[` + strings.Replace(good, `,"max":9`, ``, 1) + `]}`,
		"number no min":     `{"keys":[` + strings.Replace(good, `"min":0,`, ``, 1) + `]}`,
	}
	// Vehicle event types: every pushable key names a listed type, every
	// type has keys, a type's keys are all event keys or all state keys.
	ev := `{"name":"alarm","webhookType":"telematics.updated","en":"Alarm","de":"Alarm"}`
	state := strings.Replace(good, `"pushable":false`, `"pushable":true,"pushEvent":"alarm"`, 1)
	event := strings.NewReplacer(`"id":1`, `"id":2`, "vehicle.a.b", "vehicle.a.c", `"status"`, `"event"`).Replace(state)
	cases["unknown push event"] = `{"keys":[` + state + `]}`
	cases["event without keys"] = `{"events":[` + ev + `],"keys":[` + good + `]}`
	cases["event mixes modes"] = `{"events":[` + ev + `],"keys":[` + state + `,` + event + `]}`
	cases["event bad type"] = `{"events":[` + strings.Replace(ev, "telematics.updated", "telematics", 1) + `],"keys":[` + state + `]}`
	cases["event no german"] = `{"events":[` + strings.Replace(ev, `"de":"Alarm"`, `"de":""`, 1) + `],"keys":[` + state + `]}`
	cases["event twice"] = `{"events":[` + ev + `,` + ev + `],"keys":[` + state + `]}`
	cases["event camel case"] = `{"events":[` + strings.Replace(ev, `"name":"alarm"`, `"name":"alarmOn"`, 1) + `],"keys":[` +
		strings.Replace(state, `"pushEvent":"alarm"`, `"pushEvent":"alarmOn"`, 1) + `]}`
	if _, err := Parse([]byte(`{"keys":[` + good + `]}`)); err != nil {
		t.Fatalf("the good key must parse: %v", err)
	}
	c, err := Parse([]byte(`{"events":[` + ev + `],"keys":[` + state + `]}`))
	if err != nil {
		t.Fatalf("a key with its event type must parse: %v", err)
	}
	if e, ok := c.Event("alarm"); !ok || !slices.Equal(e.KeyIDs(), []int16{1}) || e.Always() {
		t.Fatalf("event alarm: %+v %v", e, ok)
	}
	for name, doc := range cases {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	c := Default()
	k := func(name string) *Key {
		key, ok := c.Lookup(name)
		if !ok {
			t.Fatalf("no key %s", name)
		}
		return key
	}
	mileage := k("vehicle.vehicle.travelledDistance")                          // integer 0..5e6
	lat := k("vehicle.cabin.infotainment.navigation.currentLocation.latitude") // decimal -90..90
	moving := k("vehicle.isMoving")                                            // boolean
	charging := k("vehicle.drivetrain.electricEngine.charging.status")
	model := k("vehicle.vehicleIdentification.modelName") // string
	cbs := k("vehicle.status.conditionBasedServices")     // json
	due := k("vehicle.status.serviceTime.next")           // timestamp
	cases := []struct {
		key   *Key
		value string
		code  string // "" = valid
	}{
		{mileage, "12345", ""}, {mileage, "0", ""}, {mileage, "-1", CodeValueRange}, {mileage, "12.5", CodeValueType},
		{mileage, "", CodeValueEmpty}, {mileage, "1e3", CodeValueType}, {mileage, "99999999999999999999", CodeValueType},
		{lat, "48.1374", ""}, {lat, "-90", ""}, {lat, "90.0001", CodeValueRange}, {lat, "1e1", CodeValueType},
		{lat, "NaN", CodeValueType}, {lat, "+4", CodeValueType}, {lat, "4.", CodeValueType}, {lat, ".5", CodeValueType},
		{moving, "true", ""}, {moving, "false", ""}, {moving, "TRUE", CodeValueType}, {moving, "1", CodeValueType},
		{charging, "CHARGINGACTIVE", ""}, {charging, "charging", CodeValueNotInEnum},
		{model, "iX3", ""}, {model, "", ""}, {model, strings.Repeat("x", MaxStringLen+1), CodeValueTooLong},
		{model, "a\x00b", CodeValueNotAllowed}, {model, "\xff\xfe", CodeValueNotUTF8},
		{cbs, `[{"type":"OIL","due":"2025-01"}]`, ""}, {cbs, `{"broken":`, CodeValueType}, {cbs, `"\u0000"`, CodeValueNotAllowed},
		{cbs, `[{"t":"a\u0000b"}]`, CodeValueNotAllowed}, {cbs, `{"a\u0000":1}`, CodeValueNotAllowed},
		{cbs, `1e999999`, CodeValueRange}, {cbs, `[1e-999999]`, CodeValueRange}, {cbs, `{"km":-1E+400}`, CodeValueRange},
		{cbs, `[0, -0.0, 1e-300, 1.5E+300, "\ud83d\ude97", "\u00e9"]`, ""}, {cbs, `["\ud800"]`, CodeValueNotAllowed},
		{cbs, `"\udc00"`, CodeValueNotAllowed}, {cbs, `"\ud800\u0041"`, CodeValueNotAllowed}, {cbs, `[01]`, CodeValueType},
		{cbs, `[1] [2]`, CodeValueType}, {cbs, strings.Repeat("[", 65) + strings.Repeat("]", 65), CodeValueType},
		{cbs, "[" + strings.Repeat("1", 65) + "]", CodeValueRange}, {cbs, `{"a":tru}`, CodeValueType}, {cbs, `nul`, CodeValueType},
		{mileage, "007", CodeValueType}, {mileage, "+5", CodeValueType}, {mileage, "-0", ""}, {lat, "00.5", CodeValueType},
		{lat, "0.5", ""}, {lat, "1." + strings.Repeat("0", 70), CodeValueType},
		{cbs, "{\"a\":\"\x01\"}", CodeValueNotAllowed},
		{due, "2025-06-01T00:00:00Z", ""}, {due, "2025-06-01T00:00:00.123+02:00", ""}, {due, "2025-06-01", CodeValueType},
		{due, "1999-12-31T23:59:59Z", CodeValueRange}, {due, "2100-01-01T00:00:00Z", CodeValueRange}, {due, "0000-01-01T00:00:00Z", CodeValueRange},
	}
	for _, tc := range cases {
		err := tc.key.Validate(tc.value)
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s %q: unexpected error %v", tc.key.Name, tc.value, err)
		case tc.code != "" && !errs.Is(err, tc.code):
			t.Errorf("%s %q: got %v, want code %s", tc.key.Name, tc.value, err, tc.code)
		}
	}
}

// TestSeedMigration keeps the generated seed migration equal to catalog.json.
func TestSeedMigration(t *testing.T) {
	t.Parallel()
	const path = "../../app/db/migrations/00031_catalog_seed.sql"
	want := Default().SeedMigration()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./onboarding/catalog -run TestSeedMigration -update)", err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date with catalog.json; regenerate it with: go test ./onboarding/catalog -run TestSeedMigration -update", path)
	}
}

func BenchmarkValidateDecimal(b *testing.B) {
	k, _ := Default().Lookup("vehicle.cabin.infotainment.navigation.currentLocation.latitude")
	for b.Loop() {
		if err := k.Validate("48.137154"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateJSON(b *testing.B) {
	k, _ := Default().Lookup("vehicle.status.conditionBasedServices")
	v := `[{"type":"OIL","status":"OK","dueDate":"2026-03-01T00:00:00Z","distance":12000},{"type":"BRAKE_FLUID","status":"PENDING","dueDate":"2025-11-01T00:00:00Z","distance":-250.5,"note":"caf\u00e9"}]`
	b.ReportAllocs()
	for b.Loop() {
		if err := k.Validate(v); err != nil {
			b.Fatal(err)
		}
	}
}
