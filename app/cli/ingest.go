package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"cardata/app/bench"
	"cardata/app/demo"
	"cardata/app/ingest"
)

// ingestCommands are the CLI commands of the vehicles and ingest module.
func ingestCommands() []Command {
	return []Command{
		{Name: "ingest gateway add", Summary: "register a telemetry gateway and print its bearer token (shown once)",
			Flags: func(fs *flag.FlagSet) { fs.String("name", "", "gateway name (required)") }, Run: runGatewayAdd},
		{Name: "simulate", Summary: "keep sending realistic vehicle readings to a running server (Ctrl-C stops)",
			Flags: func(fs *flag.FlagSet) {
				fs.Int("rate", 200, "signals per second")
				fs.String("url", "", "server base URL (default PUBLIC_URL)")
				fs.String("token", demo.IngestToken, "gateway bearer token")
				fs.Int("vehicles", 0, "simulate at most this many vehicles (0: every connected one)")
				fs.Duration("interval", time.Second, "time between batches")
			}, Run: runSimulate},
		{Name: "bench ingest", Summary: "ingest benchmark: HTTP end to end against a separate server process vs. the database ceiling",
			Flags: func(fs *flag.FlagSet) {
				fs.Int("vehicles", 100_000, "fleet size")
				fs.Int("batch", 5000, "signals per request")
				fs.Int("workers", 4, "concurrent clients")
				fs.Duration("warmup", 5*time.Second, "warm-up before measuring")
				fs.Duration("duration", 20*time.Second, "measured time per run")
			}, Run: runBenchIngest},
	}
}

func runGatewayAdd(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	g, token, err := a.Ingest.CreateGateway(ctx, fs.Lookup("name").Value.String(), "")
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "gateway %d %s created; its bearer token (stored only hashed, shown this once):\n%s\n", g.ID, g.Name, token)
	return nil
}

func intFlag(fs *flag.FlagSet, name string) int {
	n, _ := strconv.Atoi(fs.Lookup(name).Value.String())
	return n
}

func durationFlag(fs *flag.FlagSet, name string) time.Duration {
	d, _ := time.ParseDuration(fs.Lookup(name).Value.String())
	return d
}

func runSimulate(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	gdb, err := env.DB(ctx)
	if err != nil {
		return err
	}
	fleet, err := ingest.SimulationFleet(ctx, gdb, intFlag(fs, "vehicles"))
	if err != nil {
		return err
	}
	url := fs.Lookup("url").Value.String()
	if url == "" {
		url = env.Cfg.PublicURL
	}
	if intFlag(fs, "rate") <= 0 {
		return fmt.Errorf("--rate must be positive")
	}
	return ingest.Simulate(ctx, ingest.SimulateConfig{URL: url, Token: fs.Lookup("token").Value.String(),
		Rate: intFlag(fs, "rate"), Interval: durationFlag(fs, "interval"), Out: env.Stdout}, fleet)
}

func runBenchIngest(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := bench.IngestConfig{DatabaseURL: env.Cfg.DatabaseURL, Binary: bin, Vehicles: intFlag(fs, "vehicles"),
		Batch: intFlag(fs, "batch"), Workers: intFlag(fs, "workers"), Warmup: durationFlag(fs, "warmup"),
		Duration: durationFlag(fs, "duration"), Out: env.Stdout}
	if cfg.Vehicles <= 0 || cfg.Batch <= 0 || cfg.Batch > ingest.MaxSignals || cfg.Workers <= 0 || cfg.Duration <= 0 {
		return fmt.Errorf("--vehicles, --workers and --duration must be positive and --batch between 1 and %d", ingest.MaxSignals)
	}
	rep, err := bench.RunIngest(ctx, cfg)
	if err != nil {
		return err
	}
	rep.Print(env.Stdout, cfg)
	return nil
}
