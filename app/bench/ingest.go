package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/app/ingest"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// IngestConfig configures the ingest benchmark (`cardata bench ingest`).
type IngestConfig struct {
	DatabaseURL string // any database on the server; the benchmark uses its own database next to it
	Binary      string // the cardata binary, started as the server under test
	Vehicles    int
	Batch       int // signals per request
	Workers     int // concurrent clients (and concurrent writers in the ceiling run)
	Warmup      time.Duration
	Duration    time.Duration
	Out         io.Writer
}

// IngestPhase is the outcome of one measured run.
type IngestPhase struct {
	Signals  int64
	Requests int
	Errors   int
	Seconds  float64
	Warmup   time.Duration // until every vehicle had been sent once
	P50, P99 time.Duration
}

// Rate is signals per second.
func (p IngestPhase) Rate() float64 { return float64(p.Signals) / p.Seconds }

// IngestReport is what RunIngest measured.
type IngestReport struct {
	EndToEnd, Ceiling IngestPhase
	ServerPeakRSS     int64 // bytes
	Postgres          string
}

// Ratio is end-to-end throughput over the database ceiling.
func (r *IngestReport) Ratio() float64 { return r.EndToEnd.Rate() / r.Ceiling.Rate() }

const benchDBName = "cardata_bench"

// RunIngest loads a fleet into a fresh database, starts the server as a
// separate process, sends realistic batches over HTTP, then measures the
// database ceiling: the same COPY and latest-value upsert into an identical
// table, without HTTP, decoding, validation, history or events. Both runs
// use the same batch size, concurrency, warm-up and duration, so their ratio
// survives a noisy machine.
func RunIngest(ctx context.Context, cfg IngestConfig) (*IngestReport, error) {
	out := cfg.Out
	benchURL, err := db.RecreateDatabase(ctx, cfg.DatabaseURL, benchDBName)
	if err != nil {
		return nil, err
	}
	gdb, err := db.Open(benchURL, cfg.Workers+4)
	if err != nil {
		return nil, err
	}
	defer db.Close(gdb)
	if _, err := db.Migrate(ctx, gdb); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "loading %d vehicles into %s ...\n", cfg.Vehicles, benchDBName)
	ctx = policies.WithPrincipal(ctx, policies.System("bench"))
	start := time.Now()
	fleet, err := loadBenchFleet(ctx, gdb, cfg.Vehicles)
	if err != nil {
		return nil, err
	}
	svc := ingest.New(gdb, ingest.Options{})
	_, token, err := svc.CreateGateway(ctx, "bench", "")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "fleet loaded in %s\n", time.Since(start).Round(time.Millisecond))
	rep := &IngestReport{}
	gdb.Raw("SHOW server_version").Scan(&rep.Postgres)

	// End to end, over HTTP, against `cardata serve` in its own process.
	srv, err := StartServer(cfg.Binary, benchURL, "DB_MAX_OPEN_CONNS=20")
	if err != nil {
		return nil, err
	}
	addr := srv.Addr
	fmt.Fprintf(out, "server up at %s; end-to-end run: warm-up (at least %s and one pass over the fleet), then %s measured ...\n", addr, cfg.Warmup, cfg.Duration)
	rep.EndToEnd = runPhase(ctx, cfg, fleet, func(w int, f *ingest.Fleet, buf []byte) ([]byte, int, error) {
		return postBatch(ctx, addr, token, f, cfg.Batch, buf)
	})
	rep.ServerPeakRSS = srv.PeakRSS()
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(out, "server stop: %v\n", err)
	}

	// The database ceiling: same rows, same COPY and upsert, no HTTP.
	var relopts string // LIKE copies neither storage options nor foreign keys
	gdb.Raw("SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class WHERE relname = 'vehicle_latest_values'").Scan(&relopts)
	if relopts != "" {
		relopts = " WITH (" + relopts + ")"
	}
	if err := gdb.Exec(`CREATE TABLE bench_ceiling_latest (LIKE vehicle_latest_values INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)` +
		relopts).Error; err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "database ceiling run (COPY + upsert into an identical table) ...\n")
	rep.Ceiling = runPhase(ctx, cfg, fleet, func(w int, f *ingest.Fleet, buf []byte) ([]byte, int, error) {
		return svc.CeilingWrite(ctx, "bench_ceiling_latest", f, cfg.Batch, buf)
	})
	return rep, nil
}

// Print writes the report.
func (r *IngestReport) Print(w io.Writer, cfg IngestConfig) {
	fmt.Fprintf(w, "\ningest benchmark: %d vehicles, batches of %d signals, %d concurrent clients, %s measured after a warm-up of at least %s and one pass over the fleet\n",
		cfg.Vehicles, cfg.Batch, cfg.Workers, cfg.Duration, cfg.Warmup)
	fmt.Fprintf(w, "machine: %s; client, server and database share the machine\n", Machine(r.Postgres))
	line := func(name string, p IngestPhase) {
		fmt.Fprintf(w, "  %-44s %9.0f signals/s  p50 %6.1f ms  p99 %6.1f ms  (%d requests, %d errors, warm after %s)\n", name, p.Rate(),
			MS(p.P50), MS(p.P99), p.Requests, p.Errors, p.Warmup.Round(time.Second))
	}
	line("end to end (HTTP to a separate process):", r.EndToEnd)
	line("database ceiling (COPY + upsert, no HTTP):", r.Ceiling)
	fmt.Fprintf(w, "  ratio end-to-end / ceiling: %.2f    server peak RSS: %d MiB\n", r.Ratio(), r.ServerPeakRSS>>20)
}

func loadBenchFleet(ctx context.Context, gdb *gorm.DB, n int) ([]*ingest.SimVehicle, error) {
	drivetrains := []string{"combustion", "combustion", "phev", "bev"}
	var fleet []vehicles.FleetVehicle
	for i := range n {
		fleet = append(fleet, vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{
			VIN: fmt.Sprintf("WBA00BENCH%07d", i), Brand: "BMW", Model: "bench", Drivetrain: drivetrains[i%4],
			Market: "DE", TelematicsCapable: true, SIMActive: true}})
	}
	vs := &vehicles.Service{DB: gdb}
	for start := 0; start < len(fleet); start += 25_000 {
		if _, err := vs.ImportFleet(ctx, fleet[start:min(start+25_000, len(fleet))]); err != nil {
			return nil, err
		}
	}
	var rows []struct {
		ID         int64
		VIN        string
		Drivetrain string
	}
	if err := gdb.WithContext(ctx).Raw("SELECT id, vin, drivetrain FROM vehicles ORDER BY id").Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*ingest.SimVehicle, len(rows))
	for i, r := range rows {
		out[i] = &ingest.SimVehicle{VIN: r.VIN, ID: r.ID, Drivetrain: r.Drivetrain}
	}
	return out, nil
}

var benchClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

func postBatch(ctx context.Context, addr, token string, f *ingest.Fleet, n int, buf []byte) ([]byte, int, error) {
	buf, count := f.AppendJSON(buf[:0], n, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/ingest/v1/signals", bytes.NewReader(buf))
	if err != nil {
		return buf, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := benchClient.Do(req)
	if err != nil {
		return buf, 0, err
	}
	defer res.Body.Close()
	var r ingest.Result
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != 200 {
		return buf, 0, fmt.Errorf("status %d: %v", res.StatusCode, err)
	}
	if r.Accepted != count {
		return buf, r.Accepted, fmt.Errorf("%d of %d accepted: %+v", r.Accepted, count, r.Rejected[:min(3, len(r.Rejected))])
	}
	return buf, count, nil
}

// runPhase runs cfg.Workers loops of send and measures throughput and
// latency of the requests completed within cfg.Duration after the warm-up.
// The warm-up lasts cfg.Warmup and at least until every vehicle has been
// sent once, so both runs measure the steady state (known vehicles, latest
// values updated rather than inserted). Each worker owns a disjoint share of
// the fleet.
func runPhase(ctx context.Context, cfg IngestConfig, all []*ingest.SimVehicle, send func(w int, f *ingest.Fleet, buf []byte) ([]byte, int, error)) IngestPhase {
	begin := time.Now()
	var mu sync.Mutex
	var lat []time.Duration
	var phase IngestPhase
	var from, until time.Time // zero until the warm-up is over
	warmed := 0
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		var share []*ingest.SimVehicle
		for i := w; i < len(all); i += cfg.Workers {
			share = append(share, all[i])
		}
		f := ingest.NewFleet(nil, nil, nil, uint64(w+1)) // 2 % of the snapshots late
		f.Vehicles = share
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			counted := false
			for ctx.Err() == nil {
				t0 := time.Now()
				mu.Lock()
				done := !until.IsZero() && t0.After(until)
				mu.Unlock()
				if done {
					return
				}
				var n int
				var err error
				buf, n, err = send(w, f, buf)
				t1 := time.Now()
				mu.Lock()
				if !counted && f.Cycles > 0 {
					counted = true
					warmed++
				}
				if from.IsZero() && warmed == cfg.Workers {
					from = t1
					if w := begin.Add(cfg.Warmup); w.After(from) {
						from = w
					}
					until = from.Add(cfg.Duration)
				}
				if !from.IsZero() && t0.After(from) && !t1.After(until) {
					phase.Requests++
					if err != nil {
						phase.Errors++
						if phase.Errors <= 3 {
							fmt.Fprintf(cfg.Out, "  error: %v\n", err)
						}
					}
					phase.Signals += int64(n)
					lat = append(lat, t1.Sub(t0))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	phase.Seconds = cfg.Duration.Seconds()
	phase.Warmup = from.Sub(begin)
	l := Percentiles(lat)
	phase.P50, phase.P99 = l.P50, l.P99
	return phase
}
