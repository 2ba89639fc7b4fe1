package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// BenchConfig configures the ingest benchmark.
type BenchConfig struct {
	DatabaseURL string // any database on the server; the benchmark uses its own database next to it
	Binary      string // the cardata binary, started as the server under test
	Vehicles    int
	Batch       int // signals per request
	Workers     int // concurrent clients (and concurrent writers in the ceiling run)
	Warmup      time.Duration
	Duration    time.Duration
	Out         io.Writer
}

// BenchPhase is the outcome of one measured run.
type BenchPhase struct {
	Signals  int64
	Requests int
	Errors   int
	Seconds  float64
	Warmup   time.Duration // until every vehicle had been sent once
	P50, P99 time.Duration
}

// Rate is signals per second.
func (p BenchPhase) Rate() float64 { return float64(p.Signals) / p.Seconds }

// BenchReport is what RunBench measured.
type BenchReport struct {
	EndToEnd, Ceiling BenchPhase
	ServerPeakRSS     int64 // bytes
	Postgres          string
}

// Ratio is end-to-end throughput over the database ceiling.
func (r *BenchReport) Ratio() float64 { return r.EndToEnd.Rate() / r.Ceiling.Rate() }

const benchDBName = "cardata_bench"

// RunBench loads a fleet into a fresh database, starts the server as a
// separate process, sends realistic batches over HTTP, then measures the
// database ceiling: the same COPY and latest-value upsert into an identical
// table, without HTTP, decoding, validation, history or events. Both runs
// use the same batch size, concurrency, warm-up and duration, so their ratio
// survives a noisy machine.
func RunBench(ctx context.Context, cfg BenchConfig) (*BenchReport, error) {
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
	svc := New(gdb, Options{})
	_, token, err := svc.CreateGateway(ctx, "bench", "")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "fleet loaded in %s\n", time.Since(start).Round(time.Millisecond))
	rep := &BenchReport{}
	gdb.Raw("SHOW server_version").Scan(&rep.Postgres)

	// End to end, over HTTP, against `cardata serve` in its own process.
	addr, stop, peak, err := startServer(ctx, cfg.Binary, benchURL)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "server up at %s; end-to-end run: warm-up (at least %s and one pass over the fleet), then %s measured ...\n", addr, cfg.Warmup, cfg.Duration)
	rep.EndToEnd = runPhase(ctx, cfg, fleet, func(w int, f *Fleet, buf []byte) ([]byte, int, error) {
		return postBatch(ctx, addr, token, f, cfg.Batch, buf)
	})
	rep.ServerPeakRSS = peak()
	if err := stop(); err != nil {
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
	apply := fmt.Sprintf(UpsertLatestSQL, "bench_ceiling_latest", "") + ";\nCOMMIT"
	fmt.Fprintf(out, "database ceiling run (COPY + upsert into an identical table) ...\n")
	cat := svc.Catalog
	rep.Ceiling = runPhase(ctx, cfg, fleet, func(w int, f *Fleet, buf []byte) ([]byte, int, error) {
		rows := f.appendRows(nil, cfg.Batch, time.Now(), cat)
		prepareRows(rows)
		buf = encodeCopy(buf, rows)
		err := db.WithPgx(ctx, gdb, func(c *pgx.Conn) error { return copyAndApply(ctx, c.PgConn(), buf, apply) })
		return buf, len(rows), err
	})
	return rep, nil
}

// Print writes the report.
func (r *BenchReport) Print(w io.Writer, cfg BenchConfig) {
	cpu := runtime.NumCPU()
	model := CPUModel()
	fmt.Fprintf(w, "\ningest benchmark: %d vehicles, batches of %d signals, %d concurrent clients, %s measured after a warm-up of at least %s and one pass over the fleet\n",
		cfg.Vehicles, cfg.Batch, cfg.Workers, cfg.Duration, cfg.Warmup)
	fmt.Fprintf(w, "machine: %d CPUs (%s), PostgreSQL %s, %s; client, server and database share the machine\n", cpu, model, r.Postgres, runtime.Version())
	line := func(name string, p BenchPhase) {
		fmt.Fprintf(w, "  %-44s %9.0f signals/s  p50 %6.1f ms  p99 %6.1f ms  (%d requests, %d errors, warm after %s)\n", name, p.Rate(),
			float64(p.P50.Microseconds())/1000, float64(p.P99.Microseconds())/1000, p.Requests, p.Errors, p.Warmup.Round(time.Second))
	}
	line("end to end (HTTP to a separate process):", r.EndToEnd)
	line("database ceiling (COPY + upsert, no HTTP):", r.Ceiling)
	fmt.Fprintf(w, "  ratio end-to-end / ceiling: %.2f    server peak RSS: %d MiB\n", r.Ratio(), r.ServerPeakRSS>>20)
}

// CPUModel names the machine's processor for benchmark reports.
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadBenchFleet(ctx context.Context, gdb *gorm.DB, n int) ([]*SimVehicle, error) {
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
	out := make([]*SimVehicle, len(rows))
	for i, r := range rows {
		out[i] = &SimVehicle{VIN: r.VIN, ID: r.ID, Drivetrain: r.Drivetrain}
	}
	return out, nil
}

// startServer runs `cardata serve` on a free port against dsn and waits
// until it is ready. peak reads the process's peak resident memory.
func startServer(ctx context.Context, binary, dsn string) (addr string, stop func() error, peak func() int64, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "LISTEN_ADDR="+addr, "LOG_LEVEL=warn", "DB_MAX_OPEN_CONNS=20")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &limitedWriter{w: &stderr, n: 64 << 10}
	if err := cmd.Start(); err != nil {
		return "", nil, nil, err
	}
	stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return errors.New("server did not stop within 30s")
		}
	}
	peak = func() int64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &kb)
				return kb << 10
			}
		}
		return 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return addr, stop, peak, nil
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = stop()
	return "", nil, nil, fmt.Errorf("server did not become ready: %s", stderr.String())
}

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

var benchClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

func postBatch(ctx context.Context, addr, token string, f *Fleet, n int, buf []byte) ([]byte, int, error) {
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
	var r Result
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
func runPhase(ctx context.Context, cfg BenchConfig, all []*SimVehicle, send func(w int, f *Fleet, buf []byte) ([]byte, int, error)) BenchPhase {
	begin := time.Now()
	var mu sync.Mutex
	var lat []time.Duration
	var phase BenchPhase
	var from, until time.Time // zero until the warm-up is over
	warmed := 0
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		var share []*SimVehicle
		for i := w; i < len(all); i += cfg.Workers {
			share = append(share, all[i])
		}
		f := &Fleet{Vehicles: share, LateShare: 0.02, rng: NewFleet(nil, nil, nil, uint64(w+1)).rng}
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
	slices.Sort(lat)
	if len(lat) > 0 {
		phase.P50 = lat[len(lat)/2]
		phase.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return phase
}
