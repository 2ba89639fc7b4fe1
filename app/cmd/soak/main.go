// Command soak is the fault soak (make soak): three `cardata serve`
// replicas behind a load balancer on one fresh PostgreSQL database, steady
// ingest and provider API load, faults injected, invariants checked at the
// end (app/soak). It exits 1 when an invariant was breached, 2 when the
// soak could not run. It is a separate binary so that the production one
// does not carry it.
//
// Settings come from flags, or from the environment where noted:
// SOAK_DURATION (default 10m), SOAK_PG (shared: restart the server at
// DATABASE_URL with pg_ctlcluster; private: a throwaway cluster of its own).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cardata/app/soak"
)

func main() {
	dur := 10 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			fmt.Fprintf(os.Stderr, "soak: SOAK_DURATION must be a duration of at least 30s, got %q\n", v)
			os.Exit(2)
		}
		dur = d
	}
	pg := os.Getenv("SOAK_PG")
	if pg == "" {
		pg = "shared"
	}
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	cfg := soak.Config{Out: os.Stdout}
	flag.StringVar(&cfg.Binary, "binary", "bin/cardata", "the cardata binary (make build)")
	flag.StringVar(&cfg.DatabaseURL, "db", dsn, "PostgreSQL server to use in shared mode (DATABASE_URL); the soak creates its own database cardata_soak there")
	flag.DurationVar(&cfg.Duration, "duration", dur, "how long the load runs (SOAK_DURATION)")
	flag.StringVar(&cfg.PG, "pg", pg, "shared: the server at -db, restarted with pg_ctlcluster; private: a throwaway cluster (SOAK_PG)")
	flag.IntVar(&cfg.Replicas, "replicas", 3, "cardata serve processes")
	flag.IntVar(&cfg.IngestRate, "ingest-rate", 400, "signals per second through the ingest")
	flag.IntVar(&cfg.APIRate, "api-rate", 25, "provider API reads per second")
	flag.Float64Var(&cfg.FailShare, "fail", 0.2, "share of pushes the webhook receiver answers with 500")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for replica logs (default: a new temporary directory)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := soak.Run(ctx, cfg)
	switch {
	case err == nil:
	case errors.Is(err, soak.ErrBreach):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
}
