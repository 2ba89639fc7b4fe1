package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Config is what a soak runs with.
type Config struct {
	Binary      string        // the cardata binary (make build: bin/cardata)
	DatabaseURL string        // a database on the server to use (shared mode); the soak's own database is created next to it
	Duration    time.Duration // how long the load runs (SOAK_DURATION); faults are placed relative to it
	// PG is "shared" (the server at DatabaseURL, restarted with
	// pg_ctlcluster) or "private" (a throwaway cluster in a temporary
	// directory on a free port, so other users of the shared server are
	// not disturbed by the restart).
	PG         string
	Replicas   int     // 3
	IngestRate int     // signals per second
	APIRate    int     // provider API reads per second
	FailShare  float64 // share of pushes the webhook receiver answers with 500
	Dir        string  // where replica logs go (default: a new temporary directory)
	Out        io.Writer
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Replicas <= 0 {
		c.Replicas = 3
	}
	if c.IngestRate <= 0 {
		c.IngestRate = 400
	}
	if c.APIRate <= 0 {
		c.APIRate = 25
	}
	if c.FailShare < 0 || c.FailShare >= 1 {
		c.FailShare = 0.2
	}
	if c.PG == "" {
		c.PG = "shared"
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
}

// ErrBreach is returned when an invariant does not hold.
var ErrBreach = errors.New("soak: invariants breached")

// Run runs one soak and prints its table. It returns ErrBreach when an
// invariant was breached, another error when the soak itself could not run.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "cardata-soak-")
		if err != nil {
			return err
		}
		cfg.Dir = d
	}
	if abs, err := filepath.Abs(cfg.Binary); err == nil {
		cfg.Binary = abs
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return fmt.Errorf("the cardata binary %s: %w (run make build)", cfg.Binary, err)
	}
	s := &soak{cfg: cfg, out: cfg.Out}
	defer s.cleanup()
	if err := s.setup(ctx); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := s.run(ctx); err != nil {
		return err
	}
	rep, err := s.check(ctx)
	if err != nil {
		return fmt.Errorf("checks: %w", err)
	}
	rep.print(s.out)
	if rep.breached() {
		return ErrBreach
	}
	return nil
}

// logf prints a timestamped progress line.
func (s *soak) logf(format string, args ...any) {
	el := time.Duration(0)
	if !s.loadStart.IsZero() {
		el = time.Since(s.loadStart).Round(time.Second)
	}
	fmt.Fprintf(s.out, "[%s +%s] %s\n", time.Now().Format(time.TimeOnly), el, fmt.Sprintf(format, args...))
}
