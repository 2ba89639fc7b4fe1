package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/app"
	"cardata/app/bench"
	"cardata/app/config"
	"cardata/app/db"
	"cardata/app/demo"
	"cardata/app/ingest"
	"cardata/billing"
	"cardata/jobs/smtptest"
	"cardata/onboarding/webhooks"
)

const soakDB = "cardata_soak"

// soak is one run.
type soak struct {
	cfg Config
	out io.Writer

	pg    *postgres
	dbURL string
	env   map[string]string // the environment every cardata process gets
	gdb   *gorm.DB
	app   *app.App // in-process services for the faults (no server, no workers)

	smtp  *smtptest.Server
	hooks *receiver
	lb    *balancer
	reps  []*replica

	w      world
	ingest *ingestLoad
	api    *apiLoad
	faults []fault
	// revoked: consent id -> when its revocation had been answered.
	revoked map[int64]time.Time

	loadStart, loadEnd, drainEnd time.Time
	cleanups                     []func()
}

// world is what the soak works with, found in (or added to) the demo data.
type world struct {
	providerID  int64
	clientDBID  int64 // api_clients.id of the demo insurer's client
	containerID int64 // the demo insurer's approved Pay-as-you-drive container
	consents    []consentRef
	endpointID  int64
	period      string // the month before this one: invoiced mid-soak
}

type consentRef struct {
	ID    int64
	VIN   string `gorm:"column:vin"`
	Email string
}

func (s *soak) cleanup() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

func (s *soak) setup(ctx context.Context) error {
	cfg := s.cfg
	s.logf("soak: %s of load over %d replicas, %d signals/s ingest, %d reads/s provider API, %.0f %% of pushes refused; PostgreSQL: %s; logs in %s",
		cfg.Duration, cfg.Replicas, cfg.IngestRate, cfg.APIRate, cfg.FailShare*100, cfg.PG, cfg.Dir)
	pg, err := startPostgres(ctx, cfg.PG, cfg.DatabaseURL, cfg.Dir)
	if err != nil {
		return err
	}
	s.pg = pg
	s.cleanups = append(s.cleanups, pg.stop)
	if s.dbURL, err = db.RecreateDatabase(ctx, pg.url, soakDB); err != nil {
		return fmt.Errorf("create the soak database: %w", err)
	}
	if s.smtp, err = smtptest.Listen(); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, s.smtp.Close)
	if s.hooks, err = newReceiver(cfg.FailShare); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, s.hooks.close)
	addrs := make([]string, cfg.Replicas)
	metrics := make([]string, cfg.Replicas)
	for i := range addrs {
		p1, err := bench.FreePort()
		if err != nil {
			return err
		}
		p2, err := bench.FreePort()
		if err != nil {
			return err
		}
		addrs[i], metrics[i] = fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	}
	if s.lb, err = newBalancer(addrs); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, s.lb.close)
	s.env = map[string]string{
		"DATABASE_URL": s.dbURL,
		"PUBLIC_URL":   s.lb.URL(), // loopback: webhook receivers on loopback are allowed, no SECRETS_KEY needed
		"LOG_LEVEL":    "warn",
		"SMTP_HOST":    s.smtp.Host, "SMTP_PORT": fmt.Sprint(s.smtp.Port),
		// Generous limits: the soak measures what breaks, not the throttle.
		"API_RATE_LIMIT": "1000", "API_RATE_BURST": "2000",
		// Short-lived tokens, so tokens are fetched all through the soak.
		"API_TOKEN_TTL":   "2m",
		"TRUSTED_PROXIES": "127.0.0.1",
		"METRICS_ADDR":    "off",
	}

	s.logf("migrating and loading the demo data (cardata migrate, cardata demo) ...")
	if _, err := s.cli(ctx, "migrate"); err != nil {
		return err
	}
	if _, err := s.cli(ctx, "demo"); err != nil {
		return err
	}
	// The soak's own pool: checks, faults and the in-process services (it
	// opens only what it uses; app.New checks its pool budget against it).
	if s.gdb, err = db.Open(s.dbURL, 20); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, func() { db.Close(s.gdb) })
	acfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := s.env[k]; return v, ok })
	if err != nil {
		return err
	}
	if s.app, err = app.New(acfg, s.gdb, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return err
	}
	if err := s.findWorld(ctx); err != nil {
		return err
	}

	for i, addr := range addrs {
		env := os.Environ()
		for k, v := range s.env {
			env = append(env, k+"="+v)
		}
		env = append(env, "LISTEN_ADDR="+addr, "METRICS_ADDR="+metrics[i])
		name := string(rune('A' + i))
		s.reps = append(s.reps, &replica{name: name, binary: cfg.Binary, addr: addr, env: env,
			logPath: filepath.Join(cfg.Dir, "replica-"+name+".log")})
	}
	s.cleanups = append(s.cleanups, func() {
		for _, r := range s.reps {
			r.stop(30 * time.Second)
		}
	})
	s.logf("starting %d replicas ...", len(s.reps))
	for _, r := range s.reps {
		if err := r.start(ctx); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(30 * time.Second); s.lb.healthyCount() < len(s.reps); {
		if time.Now().After(deadline) {
			return fmt.Errorf("the load balancer sees %d of %d replicas ready", s.lb.healthyCount(), len(s.reps))
		}
		time.Sleep(100 * time.Millisecond)
	}

	client := &http.Client{Timeout: 60 * time.Second}
	s.api = &apiLoad{base: s.lb.URL(), clientID: demo.InsurerClientID, containerID: s.w.containerID, rate: cfg.APIRate,
		client: client, reads: newSurface("provider API reads"), tokens: newSurface("OAuth tokens")}
	s.api.setSecret(demo.InsurerClientSecret)
	for _, c := range s.w.consents {
		s.api.vins = append(s.api.vins, c.VIN)
	}
	if err := s.createEndpoint(ctx); err != nil {
		return fmt.Errorf("webhook endpoint: %w", err)
	}
	fleet, err := ingest.SimulationFleet(ctx, s.gdb, 0)
	if err != nil {
		return err
	}
	s.ingest = &ingestLoad{url: s.lb.URL(), token: demo.IngestToken, fleet: fleet, rate: cfg.IngestRate, client: client,
		stats: newSurface("ingest batches")}
	s.logf("ready: %d vehicles send readings, %d consented vehicles are read, webhook endpoint %d at %s",
		len(fleet.Vehicles), len(s.w.consents), s.w.endpointID, s.hooks.URL())
	return nil
}

// cli runs one cardata command against the soak database.
func (s *soak) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.cfg.Binary, args...)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if f, ferr := os.OpenFile(filepath.Join(s.cfg.Dir, "cli.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "--- %s cardata %s (%v)\n%s\n", time.Now().Format(time.RFC3339), strings.Join(args, " "), err, out.String())
		f.Close()
	}
	if err != nil {
		return out.String(), fmt.Errorf("cardata %s: %v: %s", strings.Join(args, " "), err, lastLines(out.String(), 5))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// findWorld finds the demo insurer, its API client and Pay-as-you-drive
// consents.
func (s *soak) findWorld(ctx context.Context) error {
	g := s.gdb.WithContext(ctx)
	if err := g.Raw("SELECT id FROM providers WHERE legal_name = 'Demo Insurance AG' ORDER BY id DESC LIMIT 1").Scan(&s.w.providerID).Error; err != nil {
		return err
	}
	if err := g.Raw("SELECT id FROM api_clients WHERE client_id = ?", demo.InsurerClientID).Scan(&s.w.clientDBID).Error; err != nil {
		return err
	}
	if err := g.Raw(`SELECT DISTINCT c.id FROM containers c JOIN container_versions v ON v.container_id = c.id
		WHERE c.provider_id = ? AND v.name = ? AND v.state = 'approved'`, s.w.providerID, demo.PAYD).Scan(&s.w.containerID).Error; err != nil {
		return err
	}
	if s.w.providerID == 0 || s.w.clientDBID == 0 || s.w.containerID == 0 {
		return fmt.Errorf("the demo insurer, its API client or its %q container is missing from the demo data", demo.PAYD)
	}
	if err := g.Raw(`SELECT c.id, c.vin, a.email FROM consents c JOIN customer_accounts a ON a.id = c.account_id
		WHERE c.container_id = ? AND c.state = 'granted' ORDER BY c.id`, s.w.containerID).Scan(&s.w.consents).Error; err != nil {
		return err
	}
	if len(s.w.consents) < 20 {
		return fmt.Errorf("only %d granted %q consents in the demo data", len(s.w.consents), demo.PAYD)
	}
	s.w.period = billing.PeriodOf(time.Now(), s.app.Cfg.BillingTimezone).Prev().String()
	return nil
}

// createEndpoint registers the receiver through the provider API, as a
// provider would, for every event type.
func (s *soak) createEndpoint(ctx context.Context) error {
	tok, err := s.api.token(ctx, "")
	if err != nil {
		return err
	}
	body, _ := json.Marshal(webhooks.NewEndpoint{URL: s.hooks.URL(), Description: "fault soak receiver", EventTypes: webhooks.EventTypes})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.lb.URL()+"/api/v1/webhooks", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.api.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /api/v1/webhooks answered %d: %s", res.StatusCode, raw)
	}
	var ep struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(raw, &ep); err != nil || ep.ID == 0 {
		return fmt.Errorf("POST /api/v1/webhooks: unexpected answer %s", raw)
	}
	s.w.endpointID = ep.ID
	return s.hooks.setSecret(ep.Secret)
}
