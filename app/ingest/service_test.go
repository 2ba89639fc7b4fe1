package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

var ctx = policies.WithPrincipal(context.Background(), policies.System("test"))

const (
	kMileage = "vehicle.vehicle.travelledDistance"
	kLat     = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
	kCall    = "vehicle.status.automaticServiceCall"
	kFuel    = "vehicle.drivetrain.fuelSystem.level"
)

type fixture struct {
	db   *gorm.DB
	svc  *Service
	vins []string
	now  time.Time
}

// newFixture boots a database with n registered vehicles and an ingest whose
// clock stands at a fixed time.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	gdb := dbtest.New(t)
	f := &fixture{db: gdb, now: time.Now().UTC().Truncate(time.Second)}
	vs := &vehicles.Service{DB: gdb}
	var fleet []vehicles.FleetVehicle
	for i := range n {
		vin := fmt.Sprintf("WBA11AA0X0D%06d", i)
		f.vins = append(f.vins, vin)
		fleet = append(fleet, vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{VIN: vin, Brand: "BMW", Model: "320d",
			Drivetrain: "combustion", Market: "DE", TelematicsCapable: true, SIMActive: true}})
	}
	if _, err := vs.ImportFleet(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	f.svc = New(gdb, Options{})
	f.svc.Now = func() time.Time { return f.now }
	if _, err := f.svc.EnsurePartitions(ctx, f.now, 2); err != nil {
		t.Fatal(err)
	}
	return f
}

func sig(vin, key, value string, at time.Time) Signal {
	return Signal{VIN: vin, Key: key, Value: value, Timestamp: at.Format(time.RFC3339Nano),
		has: hasVIN | hasKey | hasValue | hasTimestamp}
}

func (f *fixture) ingest(t testing.TB, signals ...Signal) *Result {
	t.Helper()
	res, err := f.svc.Ingest(ctx, signals)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) latest(t *testing.T, vin, key string) (value string, readAt time.Time) {
	t.Helper()
	err := f.db.Raw(`SELECT l.value, l.read_at FROM vehicle_latest_values l JOIN vehicles v ON v.id = l.vehicle_id
		JOIN catalog_keys k ON k.id = l.key_id WHERE v.vin = ? AND k.key = ?`, vin, key).Row().Scan(&value, &readAt)
	if err != nil {
		t.Fatalf("latest %s %s: %v", vin, key, err)
	}
	return value, readAt.UTC()
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.Raw(sql, args...).Row().Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIngestValidatesEachSignal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	at := f.now.Add(-time.Minute)
	v := f.vins[0]
	withUnit := sig(v, kMileage, "1000", at)
	withUnit.Unit, withUnit.has = "km", withUnit.has|hasUnit
	wrongUnit := sig(v, kMileage, "1000", at)
	wrongUnit.Unit, wrongUnit.has = "mi", wrongUnit.has|hasUnit
	missing := sig(v, kMileage, "1", at)
	missing.has &^= hasValue
	signals := []Signal{
		sig(v, kMileage, "12345", at),               // 0 ok
		sig("WBA11AA0X0D999999", kMileage, "1", at), // 1 unknown VIN
		sig("not-a-vin", kMileage, "1", at),         // 2 malformed VIN
		sig(v, "vehicle.nope", "1", at),             // 3 unknown key
		sig(v, kMileage, "1", time.Time{}),          // 4 before 2000
		{VIN: v, Key: kMileage, Value: "1", Timestamp: "yesterday", has: hasVIN | hasKey | hasValue | hasTimestamp}, // 5
		sig(v, kMileage, "1", f.now.Add(6*time.Minute)),                                                             // 6 future
		sig(v, kMileage, "12.5", at), // 7 not an integer
		sig(v, kLat, "91", at),       // 8 out of range
		wrongUnit,                    // 9
		missing,                      // 10
		{problem: CodeMalformedSignal, detail: "x"}, // 11 decoder problem
		withUnit, // 12 ok
		sig(f.vins[1], kLat, "48.137", f.now.Add(4*time.Minute)),      // 13 ok: within clock skew
		sig(v, "vehicle.status.conditionBasedServices", "a\x00b", at), // 14 control character
	}
	res := f.ingest(t, signals...)
	want := map[int]string{1: CodeUnknownVIN, 2: CodeUnknownVIN, 3: CodeUnknownKey, 4: CodeTimestampRange, 5: CodeTimestamp,
		6: CodeTimestampFuture, 7: catalog.CodeValueType, 8: catalog.CodeValueRange, 9: CodeUnitMismatch, 10: CodeFieldMissing,
		11: CodeMalformedSignal, 14: catalog.CodeValueNotAllowed}
	if res.Received != len(signals) || res.Accepted != 3 || len(res.Rejected) != len(want) {
		t.Fatalf("received %d accepted %d rejected %+v", res.Received, res.Accepted, res.Rejected)
	}
	for _, r := range res.Rejected {
		if want[r.Index] != r.Code || r.Reason == "" {
			t.Errorf("signal %d rejected with %s (%s), want %s", r.Index, r.Code, r.Reason, want[r.Index])
		}
	}
	if val, _ := f.latest(t, v, kMileage); val != "12345" && val != "1000" {
		t.Fatalf("mileage = %q", val)
	}
	if n := f.count(t, "SELECT count(*) FROM vehicle_readings"); n != 3 {
		t.Fatalf("history has %d rows, want 3", n)
	}
	// A batch with nothing valid writes nothing and still answers.
	if res := f.ingest(t, sig("WBA11AA0X0D999999", kMileage, "1", at)); res.Accepted != 0 || len(res.Rejected) != 1 {
		t.Fatalf("all rejected: %+v", res)
	}
}

func TestLatestValueIgnoresLateReadings(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	v := f.vins[0]
	t1, t2, t3 := f.now.Add(-3*time.Hour), f.now.Add(-2*time.Hour), f.now.Add(-time.Hour)
	f.ingest(t, sig(v, kMileage, "200", t2))
	f.ingest(t, sig(v, kMileage, "100", t1)) // arrives late
	if val, at := f.latest(t, v, kMileage); val != "200" || !at.Equal(t2) {
		t.Fatalf("a late reading overwrote a newer one: %s at %s", val, at)
	}
	// Within one batch, in any order: the newest wins.
	f.ingest(t, sig(v, kMileage, "300", t3), sig(v, kMileage, "250", t2.Add(time.Minute)), sig(v, kMileage, "150", t1))
	if val, at := f.latest(t, v, kMileage); val != "300" || !at.Equal(t3) {
		t.Fatalf("latest = %s at %s, want 300 at %s", val, at, t3)
	}
	// The same reading time again does not replace the value.
	f.ingest(t, sig(v, kMileage, "999", t3))
	if val, _ := f.latest(t, v, kMileage); val != "300" {
		t.Fatalf("an equal reading time replaced the value: %s", val)
	}
	if n := f.count(t, "SELECT count(*) FROM vehicle_readings"); n != 6 {
		t.Fatalf("every accepted reading is in the history: %d, want 6", n)
	}
	var received time.Time
	f.db.Raw("SELECT received_at FROM vehicle_latest_values").Row().Scan(&received)
	if received.IsZero() {
		t.Fatal("received_at not stored")
	}
}

func TestEventsOutbox(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	v := f.vins[0]
	t1, t2 := f.now.Add(-2*time.Hour), f.now.Add(-time.Hour)
	events := func() []string {
		var out []string
		f.db.Raw("SELECT event_type || ':' || array_to_string(key_values, ',') FROM vehicle_events ORDER BY id").Scan(&out)
		return out
	}
	// Two positions in one batch: one event, with the newest.
	f.ingest(t, sig(v, kLat, "48.1", t1), sig(v, kLat, "48.2", t2), sig(v, kMileage, "5", t2))
	if got := events(); len(got) != 1 || got[0] != "position_updated:48.2" {
		t.Fatalf("events = %v", got)
	}
	// The history holds one row per reading time: the two keys read at t2
	// share one, in the same order in both arrays.
	var snaps []string
	f.db.Raw(`SELECT (SELECT string_agg(k.key || '=' || r.v, ',' ORDER BY k.key)
		FROM unnest(s.key_ids, s.key_values) AS r(id, v) JOIN catalog_keys k ON k.id = r.id)
		FROM vehicle_snapshots s ORDER BY s.read_at`).Scan(&snaps)
	pair := []string{kLat + "=48.2", kMileage + "=5"}
	slices.Sort(pair)
	if len(snaps) != 2 || snaps[0] != kLat+"=48.1" || snaps[1] != strings.Join(pair, ",") {
		t.Fatalf("snapshots = %v", snaps)
	}
	changedAt := func() time.Time {
		var at time.Time
		f.db.Raw("SELECT l.changed_at FROM vehicle_latest_values l JOIN catalog_keys k ON k.id = l.key_id WHERE k.key = ?", kLat).Row().Scan(&at)
		return at
	}
	// A late, older position is not a position update; neither is a newer
	// reading of the same position (the car is parked).
	f.ingest(t, sig(v, kLat, "47.9", t1.Add(time.Minute)))
	f.ingest(t, sig(v, kLat, "48.2", t2.Add(time.Minute)))
	if got := events(); len(got) != 1 {
		t.Fatalf("a late or unchanged position produced an event: %v", got)
	}
	if val, at := f.latest(t, v, kLat); val != "48.2" || !at.Equal(t2.Add(time.Minute)) || !changedAt().Equal(t2) {
		t.Fatalf("latitude = %s read at %s, unchanged since %s", val, at, changedAt())
	}
	// Every service call is an event, even a late one.
	f.ingest(t, sig(v, kCall, `{"reason":"OIL"}`, t2), sig(v, kCall, `{"reason":"BRAKES"}`, t1))
	got := events()
	if len(got) != 3 || !strings.HasPrefix(got[1], "service_call:") || !strings.HasPrefix(got[2], "service_call:") {
		t.Fatalf("events = %v", got)
	}
	// The car moves: a new position is an event again.
	f.ingest(t, sig(v, kLat, "48.3", t2.Add(2*time.Minute)))
	if got := events(); len(got) != 4 || got[3] != "position_updated:48.3" || !changedAt().Equal(t2.Add(2*time.Minute)) {
		t.Fatalf("events = %v, changed at %s", got, changedAt())
	}
	if n := f.count(t, "SELECT count(*) FROM vehicle_events"); n != 4 {
		t.Fatalf("pending events: %d", n)
	}
}

// A vehicle event is one thing that happened at one reading time: the keys
// of an event type read together make one outbox row with all of them, in
// key order (issue 17).
func TestEventsAreWhole(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	v, w := f.vins[0], f.vins[1]
	const (
		kLon     = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
		kHeading = "vehicle.cabin.infotainment.navigation.currentLocation.heading"
		kAlt     = "vehicle.cabin.infotainment.navigation.currentLocation.altitude"
		kTele    = "vehicle.status.teleServiceCall"
		kOil     = "vehicle.drivetrain.engine.oil.levelWarning"
		kTyre    = "vehicle.chassis.tirePressureMonitoring.warning"
	)
	type event struct {
		VIN       string `gorm:"column:vin"`
		EventType string
		Keys      string
		Vals      string
	}
	events := func() []event {
		var out []event
		f.db.Raw(`SELECT v.vin, e.event_type, array_to_string(e.key_ids, ',') AS keys, array_to_string(e.key_values, '|') AS vals
			FROM vehicle_events e JOIN vehicles v ON v.id = e.vehicle_id ORDER BY e.id`).Scan(&out)
		f.db.Exec("DELETE FROM vehicle_events")
		return out
	}
	t1, t2, t3 := f.now.Add(-3*time.Hour), f.now.Add(-2*time.Hour), f.now.Add(-time.Hour)
	// Latitude, longitude, heading and altitude read together: one position
	// update; the mileage read with them is no part of it.
	f.ingest(t, sig(v, kHeading, "90", t1), sig(v, kLat, "48.1", t1), sig(v, kMileage, "10", t1), sig(v, kLon, "11.5", t1), sig(v, kAlt, "520", t1),
		sig(w, kLat, "52.5", t1)) // only a latitude: still one event
	if got := events(); len(got) != 2 || got[0] != (event{v, "position_updated", "150,151,152,153", "48.1|11.5|520|90"}) ||
		got[1] != (event{w, "position_updated", "150", "52.5"}) {
		t.Fatalf("events = %+v", got)
	}
	// Only the longitude changed: the event still carries the position as read.
	f.ingest(t, sig(v, kLat, "48.1", t2), sig(v, kLon, "11.6", t2), sig(v, kHeading, "90", t2))
	if got := events(); len(got) != 1 || got[0] != (event{v, "position_updated", "150,151,153", "48.1|11.6|90"}) {
		t.Fatalf("events = %+v", got)
	}
	// Nothing changed: no event.
	f.ingest(t, sig(v, kLat, "48.1", t3), sig(v, kLon, "11.6", t3))
	if got := events(); len(got) != 0 {
		t.Fatalf("an unchanged position made events: %+v", got)
	}
	// Event keys: two check control warnings read at one time are one event,
	// the service calls another, a warning read at another time a third.
	f.ingest(t, sig(v, kOil, "true", t3), sig(v, kTyre, "true", t3), sig(v, kCall, `{"reason":"OIL"}`, t3), sig(v, kTele, `{"dtc":"P0300"}`, t3),
		sig(v, kOil, "true", t2))
	got := events()
	slices.SortFunc(got, func(a, b event) int { return strings.Compare(a.EventType+a.Keys, b.EventType+b.Keys) })
	if len(got) != 3 || got[0] != (event{v, "check_control", "97", "true"}) || got[1] != (event{v, "check_control", "97,98", "true|true"}) ||
		got[2] != (event{v, "service_call", "90,91", `{"reason":"OIL"}|{"dtc":"P0300"}`}) {
		t.Fatalf("events = %+v", got)
	}
}

func TestPartitionsAndRetention(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	v := f.vins[0]
	// Today's partition dropped under the ingest's feet: the batch recreates it.
	today := partitionName(f.now.Truncate(24 * time.Hour))
	if err := f.db.Exec("DROP TABLE " + today).Error; err != nil {
		t.Fatal(err)
	}
	if res := f.ingest(t, sig(v, kMileage, "1", f.now.Add(-time.Minute))); res.Accepted != 1 {
		t.Fatalf("%+v", res)
	}
	if n := f.count(t, "SELECT count(*) FROM "+today); n != 1 {
		t.Fatalf("the reading is not in today's partition: %d", n)
	}
	// Forty days later, with a 30-day retention, all of today's is gone.
	later := f.now.AddDate(0, 0, 40)
	f.svc.Opts.Retention = 30 * 24 * time.Hour
	created, dropped, _, err := f.svc.Maintain(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if created == 0 || len(dropped) == 0 {
		t.Fatalf("created %d dropped %v", created, dropped)
	}
	parts, err := f.svc.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cutoff := later.Add(-f.svc.Opts.Retention)
	for _, p := range parts {
		if !p.Day.AddDate(0, 0, 1).After(cutoff) {
			t.Errorf("partition %s survived the retention", p.Name)
		}
	}
	if n := f.count(t, "SELECT count(*) FROM vehicle_readings"); n != 0 {
		t.Fatalf("%d readings survived", n)
	}
	if val, _ := f.latest(t, v, kMileage); val != "1" {
		t.Fatal("retention applies to history, never to the latest values")
	}
}

func TestConcurrentBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 50)
	base := f.now.Add(-time.Hour)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []Signal
			// every worker touches every vehicle, in a different order
			for i := range f.vins {
				vin := f.vins[(i*7+w*13)%len(f.vins)]
				batch = append(batch, sig(vin, kMileage, fmt.Sprint(w), base.Add(time.Duration(w)*time.Second)),
					sig(vin, kFuel, fmt.Sprint(w*10), base.Add(time.Duration(w)*time.Second)))
			}
			if _, err := f.svc.Ingest(ctx, batch); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for _, vin := range f.vins {
		if val, _ := f.latest(t, vin, kMileage); val != "7" {
			t.Fatalf("%s mileage = %s, want the newest (7)", vin, val)
		}
	}
}

func TestWarmVINs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	n, err := f.svc.WarmVINs(ctx)
	if err != nil || n != 3 {
		t.Fatalf("warmed %d: %v", n, err)
	}
	ids := make([]int64, 1)
	if err := f.svc.resolveVINs(ctx, []Signal{{VIN: f.vins[2]}}, ids, f.now); err != nil || ids[0] == 0 {
		t.Fatalf("a warmed VIN resolves from the cache: %v %v", ids, err)
	}
}
