package ingest

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"cardata/onboarding/catalog"
)

// SimVehicle is a simulated vehicle whose readings evolve plausibly.
type SimVehicle struct {
	VIN        string
	ID         int64 // vehicle id, for generating database rows directly
	Drivetrain string

	odometer float64 // km
	fuel     float64 // percent
	soc      float64 // percent
	lat, lon float64
	heading  int
	locked   bool
	last     time.Time // newest reading time sent, readings stay monotonic per vehicle
}

// Fleet produces realistic batches: each vehicle sends a snapshot of about
// ten keys read at the same moment; a small share of snapshots arrives late
// (read up to an hour earlier) and some vehicles send a service event.
type Fleet struct {
	Vehicles []*SimVehicle
	// LateShare is the share of snapshots dated in the past (out of order).
	LateShare float64
	// Cycles counts how often every vehicle has had its turn.
	Cycles int
	rng    *rand.Rand
	next   int
}

// advance moves to the next vehicle and returns the current one.
func (f *Fleet) advance() *SimVehicle {
	v := f.Vehicles[f.next]
	f.next++
	if f.next == len(f.Vehicles) {
		f.next = 0
		f.Cycles++
	}
	return v
}

// NewFleet builds a fleet; drivetrains[i] belongs to vins[i] (combustion when missing).
func NewFleet(vins, drivetrains []string, ids []int64, seed uint64) *Fleet {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := &Fleet{LateShare: 0.02, rng: rng}
	for i, vin := range vins {
		v := &SimVehicle{VIN: vin, Drivetrain: "combustion", odometer: 5000 + rng.Float64()*120000,
			fuel: 20 + rng.Float64()*80, soc: 20 + rng.Float64()*80,
			lat: 45 + rng.Float64()*10, lon: 5 + rng.Float64()*15, heading: rng.IntN(360), locked: true}
		if i < len(drivetrains) && drivetrains[i] != "" {
			v.Drivetrain = drivetrains[i]
		}
		if i < len(ids) {
			v.ID = ids[i]
		}
		f.Vehicles = append(f.Vehicles, v)
	}
	return f
}

type reading struct {
	key   string
	value string
}

// snapshot advances v and returns its readings and their reading time.
func (f *Fleet) snapshot(v *SimVehicle, at time.Time, out []reading) ([]reading, time.Time) {
	r := f.rng
	readAt := at.Add(-time.Duration(r.IntN(30_000)) * time.Millisecond)
	if f.LateShare > 0 && r.Float64() < f.LateShare {
		readAt = at.Add(-time.Duration(1+r.IntN(60)) * time.Minute) // buffered in a tunnel, sent late
	} else {
		if !readAt.After(v.last) {
			readAt = v.last.Add(time.Millisecond)
		}
		v.last = readAt
	}
	moving := r.IntN(3) == 0
	if moving {
		d := r.Float64() * 3
		v.odometer += d
		v.fuel = math.Max(3, v.fuel-d*0.08)
		v.soc = math.Max(3, v.soc-d*0.15)
		v.heading = (v.heading + r.IntN(61) - 30 + 360) % 360
		rad := float64(v.heading) * math.Pi / 180
		v.lat = math.Max(-89, math.Min(89, v.lat+math.Cos(rad)*d/111))
		v.lon = math.Max(-179, math.Min(179, v.lon+math.Sin(rad)*d/75))
		v.locked = false
	} else if r.IntN(20) == 0 {
		v.fuel, v.soc = 100, math.Min(100, v.soc+30) // refuelled or charged
		v.locked = true
	}
	out = append(out[:0],
		reading{"vehicle.vehicle.travelledDistance", strconv.Itoa(int(v.odometer))},
		reading{"vehicle.cabin.infotainment.navigation.currentLocation.latitude", strconv.FormatFloat(v.lat, 'f', 6, 64)},
		reading{"vehicle.cabin.infotainment.navigation.currentLocation.longitude", strconv.FormatFloat(v.lon, 'f', 6, 64)},
		reading{"vehicle.cabin.infotainment.navigation.currentLocation.heading", strconv.Itoa(v.heading)},
		reading{"vehicle.isMoving", strconv.FormatBool(moving)},
		reading{"vehicle.cabin.climate.outsideTemperature", strconv.FormatFloat(5+r.Float64()*20, 'f', 1, 64)},
		reading{"vehicle.chassis.axle.row1.wheel.left.tire.pressure", strconv.FormatFloat(230+r.Float64()*20, 'f', 1, 64)},
	)
	lock := "LOCKED"
	if !v.locked {
		lock = "UNLOCKED"
	}
	out = append(out, reading{"vehicle.cabin.door.status", lock})
	if v.Drivetrain != "bev" {
		out = append(out, reading{"vehicle.drivetrain.fuelSystem.level", strconv.Itoa(int(v.fuel))},
			reading{"vehicle.drivetrain.lastRemainingRange", strconv.Itoa(int(v.fuel * 7))})
	}
	if v.Drivetrain != "combustion" {
		status := "NOCHARGING"
		if !moving && v.soc < 100 && r.IntN(4) == 0 {
			status = "CHARGINGACTIVE"
		}
		out = append(out, reading{"vehicle.drivetrain.batteryManagement.header", strconv.Itoa(int(v.soc))},
			reading{"vehicle.drivetrain.electricEngine.remainingElectricRange", strconv.Itoa(int(v.soc * 4))},
			reading{"vehicle.drivetrain.electricEngine.charging.status", status})
	}
	if r.IntN(500) == 0 {
		out = append(out, reading{"vehicle.status.automaticServiceCall",
			`{"reason":"OIL_SERVICE","mileage":` + strconv.Itoa(int(v.odometer)) + `}`})
	}
	return out, readAt
}

// AppendJSON appends a {"signals":[...]} body of at least n signals (whole
// snapshots of the next vehicles in turn) read around `at`, and returns it
// with the number of signals.
func (f *Fleet) AppendJSON(buf []byte, n int, at time.Time) ([]byte, int) {
	return f.appendJSON(buf, n, -1, at)
}

// AppendSnapshots is AppendJSON for exactly one snapshot of each of the next
// `vehicles` vehicles.
func (f *Fleet) AppendSnapshots(buf []byte, vehicles int, at time.Time) ([]byte, int) {
	return f.appendJSON(buf, -1, vehicles, at)
}

func (f *Fleet) appendJSON(buf []byte, n, snapshots int, at time.Time) ([]byte, int) {
	buf = append(buf, `{"signals":[`...)
	count := 0
	var rs []reading
	var ts []byte
	for (n < 0 || count < n) && snapshots != 0 && len(f.Vehicles) > 0 {
		snapshots--
		v := f.advance()
		var readAt time.Time
		rs, readAt = f.snapshot(v, at, rs)
		ts = readAt.UTC().AppendFormat(ts[:0], "2006-01-02T15:04:05.000Z07:00")
		for _, r := range rs {
			if count > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"vin":"`...)
			buf = append(buf, v.VIN...)
			buf = append(buf, `","key":"`...)
			buf = append(buf, r.key...)
			buf = append(buf, `","value":"`...)
			buf = appendJSONString(buf, r.value)
			buf = append(buf, `","timestamp":"`...)
			buf = append(buf, ts...)
			buf = append(buf, `"}`...)
			count++
		}
	}
	return append(buf, "]}"...), count
}

// appendJSONString escapes the characters JSON requires (values here are
// ASCII; quotes appear in the service-call JSON).
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendRows generates the database rows of at least n signals directly (the
// benchmark's database ceiling skips HTTP, decoding and validation).
func (f *Fleet) appendRows(rows []row, n int, at time.Time, cat *catalog.Catalog) []row {
	count := 0
	var rs []reading
	for count < n && len(f.Vehicles) > 0 {
		v := f.advance()
		var readAt time.Time
		rs, readAt = f.snapshot(v, at, rs)
		for _, r := range rs {
			k, _ := cat.Lookup(r.key)
			rows = append(rows, row{vehicleID: v.ID, keyID: k.ID, readAt: pgMicros(readAt), value: r.value})
			count++
		}
	}
	return rows
}
