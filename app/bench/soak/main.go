// Command soak is the fault soak behind `make soak`: three `cardata serve`
// replicas on one fresh PostgreSQL database behind a small load balancer,
// fed by the ingest and provider API load generators at a steady rate, with
// a webhook receiver that fails some pushes and an SMTP server that records
// every e-mail. While the load runs it injects faults (kill -9 of a replica
// and its restart, a PostgreSQL restart, a paused webhook receiver, the
// invoice run and finalization, a client-secret rotation, consent
// revocations); at the end it checks from the database and from its own
// records that nothing acknowledged was lost, and prints a table.
//
// It is not part of `make test` and never runs in CI: it restarts the
// PostgreSQL server (in the default mode), and it takes minutes. It exits
// 1 when an invariant was breached, 2 when the soak could not run. It is a
// separate binary so that the production one does not carry it.
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
	cfg := Config{Out: os.Stdout}
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
	err := Run(ctx, cfg)
	switch {
	case err == nil:
	case errors.Is(err, ErrBreach):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
}
