package ingest

import (
	"fmt"
	"testing"
	"time"

	"cardata/onboarding/vehicles"
)

func benchVINs(n int) []string {
	vins := make([]string, n)
	for i := range vins {
		vins[i] = fmt.Sprintf("WBA00BENCH%07d", i)
	}
	return vins
}

// BenchmarkGoPipeline measures the per-signal work the server does in Go
// (decode, validate, sort, COPY encoding), without HTTP or the database.
func BenchmarkGoPipeline(b *testing.B) {
	vins := benchVINs(2000)
	body, n := NewFleet(vins, nil, nil, 1).AppendJSON(nil, 5000, time.Now())
	s := New(nil, Options{})
	s.vins.ids = map[string]int64{}
	for i, v := range vins {
		s.vins.ids[v] = int64(i + 1)
	}
	var signals []Signal
	var buf []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if signals, err = DecodeJSON(body, MaxSignals, signals); err != nil || len(signals) != n {
			b.Fatal(err)
		}
		ids := make([]int64, len(signals))
		now := time.Now()
		if err := s.resolveVINs(nil, signals, ids, now); err != nil {
			b.Fatal(err)
		}
		rows := make([]row, 0, len(signals))
		for i := range signals {
			k, ts, code, reason := s.check(&signals[i], ids[i], now.Add(time.Minute))
			if code != "" {
				b.Fatal(code, reason)
			}
			rows = append(rows, row{vehicleID: ids[i], keyID: k.ID, readAt: pgMicros(ts), value: signals[i].Value})
		}
		prepareRows(rows)
		buf = encodeCopy(buf, rows)
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "signals/s")
}

// BenchmarkIngestService measures Service.Ingest with the database: 5,000
// signals per batch from a fleet of 20,000 vehicles (no HTTP). The full
// benchmark with 100,000 vehicles over HTTP is `make bench-ingest`.
func BenchmarkIngestService(b *testing.B) {
	f := newFixture(b, 0)
	vins := benchVINs(20_000)
	var fleet []vehicles.FleetVehicle
	for _, vin := range vins {
		fleet = append(fleet, vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{VIN: vin, Brand: "BMW", Model: "bench",
			Drivetrain: "phev", Market: "DE", TelematicsCapable: true, SIMActive: true}})
	}
	if _, err := (&vehicles.Service{DB: f.db}).ImportFleet(ctx, fleet); err != nil {
		b.Fatal(err)
	}
	f.svc.Now = nil
	gen := NewFleet(vins, nil, nil, 2)
	var body []byte
	var signals []Signal
	total := 0
	for b.Loop() {
		var n int
		body, n = gen.AppendJSON(body[:0], 5000, time.Now())
		var err error
		if signals, err = DecodeJSON(body, MaxSignals, signals); err != nil {
			b.Fatal(err)
		}
		res, err := f.svc.Ingest(ctx, signals)
		if err != nil || res.Accepted != n {
			b.Fatalf("%v %+v", err, res)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "signals/s")
}
