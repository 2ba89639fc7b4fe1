package e2e

import (
	"io"
	"testing"

	"cardata/app/apptest"
	"cardata/app/demo"
)

// The demo's readings go through the real ingest, so the vehicle events it
// leaves for the push fan-out are whole (issue 17): one position update per
// vehicle and reading time with latitude, longitude and heading together,
// never a key on its own.
func TestDemoVehicleEventsAreWhole(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	if err := demo.Vehicles(tt.Ctx, tt.App.Services, io.Discard); err != nil {
		t.Fatal(err)
	}
	var s struct {
		Events, Whole, PerReading int64
	}
	tt.DB.Raw(`SELECT count(*) AS events, count(*) FILTER (WHERE key_ids = '{150,151,153}') AS whole,
			count(DISTINCT (vehicle_id, read_at)) AS per_reading
		FROM vehicle_events WHERE event_type = 'position_updated'`).Scan(&s)
	if s.Events < 100 || s.Whole != s.Events || s.PerReading != s.Events {
		t.Fatalf("demo position updates: %+v, want every one whole and one per vehicle and reading time", s)
	}
}
