// Command api is the provider API benchmark (make bench-api). It
// loads a consented fleet into a fresh database, starts `cardata serve` as
// a separate process, and from this process drives authenticated
// telematicData reads (OAuth client credentials, random consented VINs):
// first closed-loop to find the peak, then open-loop at 80 % of the peak
// for latency. It then measures the database ceiling with the same SQL per
// request (the latest-values read and one ledger insert, committed per
// request) from the same number of connections, and checks that every
// response that carried data has exactly one durable ledger record.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"
	"golang.org/x/oauth2/clientcredentials"
	"gorm.io/gorm"

	"cardata/admin/staff"
	"cardata/app/bench"
	"cardata/app/db"
	"cardata/app/providerapi"
	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/sqlarray"
)

const benchDB = "cardata_bench_api"

var (
	timeline *bool
	// extraLoads are further fractions of the peak (besides 80 %) at which
	// the API's open loop runs: a latency curve shows whether a tail grows
	// with the load (the code's queueing) or is there at any load (the
	// machine's).
	extraLoads []float64
)

var containerKeys = []string{"vehicle.vehicle.travelledDistance", "vehicle.drivetrain.totalRemainingRange", "vehicle.isMoving"}

func main() {
	binary := flag.String("binary", "bin/cardata", "the cardata binary to serve with")
	dsn := flag.String("db", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cardata?sslmode=disable"), "PostgreSQL URL (the benchmark database is created next to it)")
	n := flag.Int("vehicles", 20000, "consented vehicles")
	workers := flag.Int("workers", 32, "concurrent clients (and database connections for the ceiling)")
	warmup := flag.Duration("warmup", 3*time.Second, "warm-up before each measured run")
	dur := flag.Duration("duration", 15*time.Second, "measured time per run")
	timeline = flag.Bool("timeline", false, "print the p99 of each second of the open-loop runs")
	loads := flag.String("loads", "", "more fractions of the peak for the API's open loop, e.g. 0.05,0.3,0.5 (80 % always runs)")
	flag.Parse()
	for _, f := range strings.Split(*loads, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		x, err := strconv.ParseFloat(f, 64)
		if err != nil || x <= 0 || x > 1 {
			fmt.Fprintf(os.Stderr, "bench-api: -loads: %q is not a fraction of the peak between 0 and 1\n", f)
			os.Exit(2)
		}
		extraLoads = append(extraLoads, x)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, *binary, *dsn, *n, *workers, *warmup, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "bench-api:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func signalContext() (context.Context, func()) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type world struct {
	providerID  int64
	clientID    string
	secret      string
	containerID int64
	vins        []string
	vehicleIDs  []int64
}

func run(ctx context.Context, binary, dsn string, n, workers int, warmup, dur time.Duration) error {
	benchURL, err := db.RecreateDatabase(ctx, dsn, benchDB)
	if err != nil {
		return err
	}
	gdb, err := db.Open(benchURL, 8)
	if err != nil {
		return err
	}
	defer db.Close(gdb)
	if _, err := db.Migrate(ctx, gdb); err != nil {
		return err
	}
	fmt.Printf("loading %d consented vehicles into %s ...\n", n, benchDB)
	t0 := time.Now()
	w, err := seed(ctx, gdb, n)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Printf("loaded in %s\n", time.Since(t0).Round(time.Millisecond))
	var pgVersion string
	gdb.Raw("SHOW server_version").Scan(&pgVersion)

	// Rate limits out of the way.
	srv, err := bench.StartServer(binary, benchURL, "API_RATE_LIMIT=1000000", "API_RATE_BURST=1000000",
		fmt.Sprintf("DB_MAX_OPEN_CONNS=%d", max(20, workers)))
	if err != nil {
		return err
	}
	fmt.Printf("server (pid %d) ready at %s\n", srv.PID(), srv.Addr)
	addr, stopServer := srv.Addr, srv.Stop
	cfg := clientcredentials.Config{ClientID: w.clientID, ClientSecret: w.secret, TokenURL: "http://" + addr + "/oauth/token"}
	tok, err := cfg.Token(ctx)
	if err != nil {
		_ = stopServer()
		return fmt.Errorf("token: %w", err)
	}
	// The load generator is fasthttp's client (like wrk, it costs the shared
	// cores little per request); the token came from the real OAuth client.
	client := &fasthttp.HostClient{Addr: addr, MaxConns: workers * 4, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	auth := "Bearer " + tok.AccessToken
	var delivered atomic.Int64
	read := func(ctx context.Context) error {
		i := rand.IntN(len(w.vins))
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI(fmt.Sprintf("http://%s/api/v1/vehicles/%s/telematicData?containerId=%d", addr, w.vins[i], w.containerID))
		req.Header.Set("Authorization", auth)
		if err := client.Do(req, res); err != nil {
			return err
		}
		if res.StatusCode() != 200 {
			return fmt.Errorf("HTTP %d", res.StatusCode())
		}
		if len(res.Header.Peek(providerapi.DeliveryHeader)) > 0 {
			delivered.Add(1)
		}
		return nil
	}
	fmt.Printf("API peak run: %d clients, %s warm-up, %s measured ...\n", workers, warmup, dur)
	// Every phase starts right after a checkpoint, so that PostgreSQL's
	// time-based checkpoint (every 5 minutes by default) does not fall into
	// one phase and not another; the figures say which phases saw one.
	checkpoint := func() {
		if err := gdb.Exec("CHECKPOINT").Error; err != nil {
			fmt.Printf("(CHECKPOINT before the phase failed: %v)\n", err)
		}
	}
	checkpoint()
	peak := closedLoop(ctx, workers, warmup, dur, read)
	target := 0.8 * peak.rate()
	fmt.Printf("API latency run at 80 %% of peak (%.0f req/s) ...\n", target)
	var curve []phase
	for _, x := range extraLoads {
		fmt.Printf("API latency run at %.0f %% of peak (%.0f req/s) ...\n", 100*x, x*peak.rate())
		checkpoint()
		curve = append(curve, openLoop(ctx, workers*4, x*peak.rate(), warmup, dur, read))
	}
	checkpoint()
	at80 := openLoop(ctx, workers*4, target, warmup, dur, read)
	if err := stopServer(); err != nil {
		fmt.Printf("server stop: %v\n", err)
	}

	ledger, _ := (&billing.Service{DB: gdb}).CountDeliveries(ctx, w.providerID, billing.KindPull)

	// The database ceiling: the same two statements per request, each
	// request its own transaction, from as many connections as clients.
	pool, err := pgxpool.New(ctx, benchURL+"&pool_max_conns="+fmt.Sprint(workers))
	if err != nil {
		return err
	}
	defer pool.Close()
	var seq atomic.Int64
	insertLedger := func(ctx context.Context, i, k int) error {
		ids := make(sqlarray.Int16s, max(k, 1))
		for j := range ids {
			ids[j] = int16(j + 1)
		}
		_, err := pool.Exec(ctx, billing.LedgerInsertSQL(), w.providerID+1_000_000, int64(0), w.vins[i], w.containerID, 1, int64(1),
			billing.KindPull, len(ids), int64(300), fmt.Sprintf("ceiling-%d", seq.Add(1)), time.Now(), ids.Literal(), "", "")
		return err
	}
	// The ceiling runs the very statement the handler runs for a read (the
	// token, the consent decision's facts and the latest values in one
	// round trip, providerapi.TelematicReadSQL) and inserts the ledger
	// record, each request its own committed transaction.
	hash := sha256.Sum256([]byte(tok.AccessToken))
	ceilingReq := func(ctx context.Context) error {
		i := rand.IntN(len(w.vins))
		rows, err := pool.Query(ctx, providerapi.TelematicReadSQL(), hash[:], time.Now(), w.vins[i], w.containerID)
		if err != nil {
			return err
		}
		k := 0
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				rows.Close()
				return err
			}
			if vals, ok := v[27].([]any); ok { // lv.types: one per value
				k = len(vals)
			}
		}
		rows.Close()
		if rows.Err() != nil {
			return rows.Err()
		}
		if k == 0 {
			return errors.New("ceiling read found no values (token or consent not found)")
		}
		return insertLedger(ctx, i, k)
	}
	// For reference, the simpler read the earlier ceiling used: the latest
	// values alone (no token, no consent facts).
	valuesOnlyReq := func(ctx context.Context) error {
		i := rand.IntN(len(w.vins))
		rows, err := pool.Query(ctx, providerapi.SQLLatestValues, w.vehicleIDs[i], containerKeys)
		if err != nil {
			return err
		}
		k := 0
		for rows.Next() {
			k++
		}
		rows.Close()
		if rows.Err() != nil {
			return rows.Err()
		}
		return insertLedger(ctx, i, k)
	}
	fmt.Printf("database ceiling run (the handler's read statement + ledger insert per request, %d connections) ...\n", workers)
	checkpoint()
	ceil := closedLoop(ctx, workers, warmup, dur, ceilingReq)
	checkpoint()
	ceil80 := openLoop(ctx, workers*4, 0.8*ceil.rate(), warmup, dur, ceilingReq)
	fmt.Printf("reference run (latest values alone + ledger insert per request) ...\n")
	valuesOnly := closedLoop(ctx, workers, warmup, dur, valuesOnlyReq)

	fmt.Printf("\nprovider API benchmark: %d consented vehicles, container of %d keys (2 with values), %d clients, %s measured after %s warm-up\n",
		n, len(containerKeys), workers, dur, warmup)
	fmt.Printf("machine: %s; client, server and database share the machine\n", bench.Machine(pgVersion))
	line := func(name string, p phase) {
		fmt.Printf("  %-52s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (%d requests, %d errors)\n", name, p.rate(),
			bench.MS(p.p50), bench.MS(p.p99), p.requests, p.errors)
	}
	line("API, closed loop (peak):", peak)
	for i, x := range extraLoads {
		line(fmt.Sprintf("API, open loop at %.0f %% of peak:", 100*x), curve[i])
	}
	line("API, open loop at 80 % of peak:", at80)
	line("database ceiling, closed loop (peak):", ceil)
	line("database ceiling, open loop at 80 % of its peak:", ceil80)
	line("reference: latest values alone + ledger insert:", valuesOnly)
	if *timeline {
		for i, x := range extraLoads {
			fmt.Printf("  p99 per second (ms), %-16s%s\n", fmt.Sprintf("API at %.0f %%:", 100*x), curve[i].timeline())
		}
		fmt.Printf("  p99 per second (ms), API at 80 %%:    %s\n", at80.timeline())
		fmt.Printf("  p99 per second (ms), ceiling at 80 %%:%s\n", ceil80.timeline())
	}
	fmt.Printf("  ratio API / ceiling (peak throughput): %.2f\n", peak.rate()/ceil.rate())
	fmt.Printf("  responses with data: %d; ledger records: %d (every delivery durably recorded: %v)\n",
		delivered.Load(), ledger, delivered.Load() == ledger)
	if delivered.Load() != ledger {
		return errors.New("ledger records do not match the responses that carried data")
	}
	return nil
}

type phase struct {
	requests, errors int64
	seconds          float64
	p50, p99         time.Duration
	perSecond        []time.Duration // open loop: the p99 of each second of the measured run, by due time
}

// timeline renders the per-second p99s (with -timeline), so stalls show
// where they fell.
func (p phase) timeline() string {
	var b strings.Builder
	for i, d := range p.perSecond {
		fmt.Fprintf(&b, " %d:%.0f", i, bench.MS(d))
	}
	return b.String()
}

func (p phase) rate() float64 { return float64(p.requests) / p.seconds }

func summarize(lat []time.Duration, errs int64, secs float64) phase {
	l := bench.Percentiles(lat)
	return phase{requests: int64(len(lat)), errors: errs, seconds: secs, p50: l.P50, p99: l.P99}
}

// closedLoop runs workers that send back to back; only requests started
// after the warm-up and finished before the end count.
func closedLoop(ctx context.Context, workers int, warmup, dur time.Duration, do func(context.Context) error) phase {
	start := time.Now().Add(warmup)
	end := start.Add(dur)
	var mu sync.Mutex
	var lat []time.Duration
	var errs int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var bad int64
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(end) {
					break
				}
				err := do(ctx)
				if t.After(start) {
					if err != nil {
						bad++
					} else {
						mine = append(mine, time.Since(t))
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize(lat, errs, dur.Seconds())
}

// openLoop sends at a fixed rate regardless of answers (latency at a given
// load, without coordinated omission), with up to `concurrency` in flight.
func openLoop(ctx context.Context, concurrency int, rate float64, warmup, dur time.Duration, do func(context.Context) error) phase {
	if rate <= 0 {
		return phase{seconds: dur.Seconds()}
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	sem := make(chan struct{}, concurrency)
	var mu sync.Mutex
	var lat []time.Duration
	seconds := make([][]time.Duration, int(dur.Seconds())+1)
	var errs int64
	var wg sync.WaitGroup
	// Send everything that is due, then nap: a late wake-up sends the
	// backlog at once instead of drifting behind the schedule.
	for i := 0; ctx.Err() == nil; {
		now := time.Now()
		if now.After(end) {
			break
		}
		for ; ; i++ {
			due := start.Add(time.Duration(i) * interval)
			if due.After(now) || due.After(end) {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(due time.Time) {
				defer func() { <-sem; wg.Done() }()
				err := do(ctx)
				took := time.Since(due) // from when it was due: no coordinated omission
				if due.Before(measureFrom) {
					return
				}
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, took)
					sec := int(due.Sub(measureFrom) / time.Second)
					seconds[sec] = append(seconds[sec], took)
				}
				mu.Unlock()
			}(due)
		}
		time.Sleep(500 * time.Microsecond)
	}
	wg.Wait()
	p := summarize(lat, errs, dur.Seconds())
	for _, l := range seconds {
		if len(l) > 0 {
			p.perSecond = append(p.perSecond, summarize(l, 0, 1).p99)
		}
	}
	return p
}

// seed creates the provider, its client, an approved container, the fleet
// with holders (real services), then grants the consents and stores latest
// values in bulk SQL (what the consent flow and the ingest would leave).
func seed(ctx context.Context, gdb *gorm.DB, n int) (*world, error) {
	sys := policies.WithPrincipal(ctx, policies.System("bench"))
	ob := &onboarding.Service{DB: gdb, BcryptCost: 4}
	reg, err := ob.Register(sys, onboarding.Registration{LegalName: "Bench Versicherung AG", LegalForm: "AG", Street: "Ring 1",
		PostalCode: "1010", City: "Wien", Country: "AT", VATID: "ATU13585627", RegisterNumber: "FN 1", ContactName: "Bench",
		ContactEmail: "bench@provider.example", BillingEmail: "billing@provider.example", IntendedServices: "Benchmarking the provider API.",
		TermsVersion: "2025-01", AcceptTerms: true, AdminPassword: "bench-password-1", ClientAddr: "127.0.0.1",
		Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")}}})
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	pid := reg.Provider.ID
	for _, a := range []onboarding.Action{onboarding.ActionClaim, onboarding.ActionApprove} {
		if _, err := ob.Review(sys, pid, a, ""); err != nil {
			return nil, err
		}
	}
	if _, err := ob.RequestMarkets(sys, pid, []string{"DE"}); err != nil {
		return nil, err
	}
	if err := ob.DecideMarketAccess(sys, pid, "DE", true, ""); err != nil {
		return nil, err
	}
	w := &world{providerID: pid, clientID: "cd_bench", secret: "bench-secret-0123456789"}
	if _, err := ob.CreateAPIClientWithSecret(sys, pid, "bench", w.clientID, w.secret); err != nil {
		return nil, err
	}
	cs := &consent.Service{DB: gdb, IsEU: onboarding.IsEU}
	ct := &containers.Service{DB: gdb, Consents: cs}
	prov := policies.WithPrincipal(ctx, &policies.Principal{Kind: policies.KindProvider, ID: reg.Admin.ID, ProviderID: pid,
		Roles: []string{"provider_admin"}, Email: reg.Admin.Email})
	v, err := ct.Create(prov, pid, containers.Input{Name: "Pay as you drive", Purpose: "Insurance premium from the distance driven.",
		PurposeCode: "insurance_usage", Keys: containerKeys, Submit: true})
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	w.containerID = v.ContainerID
	pm, err := (&staff.Service{DB: gdb, BcryptCost: 4}).Create(sys, staff.NewUser{Email: "pm@bench.example", Name: "PM",
		Roles: []string{policies.RolePartnerManager}, Password: "bench-password-1"})
	if err != nil {
		return nil, err
	}
	if _, _, err := ct.Approve(policies.WithPrincipal(ctx, pm.Principal(0)), v.ID); err != nil {
		return nil, fmt.Errorf("approve: %w", err)
	}
	fleet := make([]vehicles.FleetVehicle, n)
	for i := range fleet {
		fleet[i] = vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{VIN: fmt.Sprintf("WBA00BENCH%07d", i), Brand: "BMW", Model: "bench",
			Drivetrain: "combustion", Market: "DE", TelematicsCapable: true, SIMActive: true},
			HolderEmail: fmt.Sprintf("holder%d@bench.example", i), HolderName: "Holder"}
	}
	vs := &vehicles.Service{DB: gdb}
	for start := 0; start < n; start += 10_000 {
		if _, err := vs.ImportFleet(sys, fleet[start:min(start+10_000, n)]); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
	}
	// Granted consents and latest values in bulk: what the customers' grants
	// and the ingest would have left.
	err = gdb.Exec(`INSERT INTO consents (provider_id, container_id, container_version_id, vehicle_id, vin, account_id, state,
			requested_by, requested_at, decided_at, updated_at)
		SELECT ?, ?, ?, v.id, v.vin, h.account_id, 'granted', 'bench', now(), now(), now()
		FROM vehicles v JOIN vehicle_holders h ON h.vehicle_id = v.id AND h.role = 'primary'`, pid, v.ContainerID, v.ID).Error
	if err != nil {
		return nil, fmt.Errorf("consents: %w", err)
	}
	err = gdb.Exec(`INSERT INTO vehicle_latest_values (vehicle_id, key_id, read_at, received_at, value, changed_at)
		SELECT v.id, k.id, now() - interval '1 minute', now(), (1000 + (random() * 200000)::int)::text, now() - interval '1 minute'
		FROM vehicles v CROSS JOIN catalog_keys k WHERE k.key IN (?, ?)`, containerKeys[0], containerKeys[1]).Error
	if err != nil {
		return nil, fmt.Errorf("latest values: %w", err)
	}
	gdb.Exec("ANALYZE")
	var rows []struct {
		ID  int64
		VIN string
	}
	if err := gdb.Raw("SELECT id, vin FROM vehicles ORDER BY id").Scan(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		w.vins = append(w.vins, r.VIN)
		w.vehicleIDs = append(w.vehicleIDs, r.ID)
	}
	return w, nil
}
