package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SimulateConfig configures Simulate.
type SimulateConfig struct {
	URL      string // base URL of a running server
	Token    string // gateway bearer token
	Rate     int    // signals per second
	Interval time.Duration
	Vehicles int // at most this many vehicles (0: all connected ones)
	Out      io.Writer
}

// SimulationFleet builds a fleet of the registry's connected vehicles
// (telematics capable, SIM active).
func SimulationFleet(ctx context.Context, gdb *gorm.DB, limit int) (*Fleet, error) {
	var rows []struct {
		VIN        string
		Drivetrain string
	}
	q := gdb.WithContext(ctx).Raw("SELECT vin, drivetrain FROM vehicles WHERE telematics_capable AND sim_active ORDER BY vin")
	if err := q.Scan(&rows).Error; err != nil {
		return nil, err
	}
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no connected vehicles in the registry: run `cardata demo` first")
	}
	vins, dts := make([]string, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		vins[i], dts[i] = r.VIN, r.Drivetrain
	}
	return NewFleet(vins, dts, nil, uint64(time.Now().UnixNano())), nil
}

// Simulate keeps posting realistic readings to a running server at about
// cfg.Rate signals per second until ctx ends, reporting every ten seconds.
func Simulate(ctx context.Context, cfg SimulateConfig, f *Fleet) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	perTick := max(1, int(float64(cfg.Rate)*cfg.Interval.Seconds()))
	url := strings.TrimRight(cfg.URL, "/") + "/ingest/v1/signals"
	client := &http.Client{Timeout: 30 * time.Second}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	report := time.Now().Add(10 * time.Second)
	var sent, accepted, rejected, failed int
	var buf []byte
	fmt.Fprintf(cfg.Out, "simulating %d vehicles at %d signals/s to %s (Ctrl-C stops)\n", len(f.Vehicles), cfg.Rate, url)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(cfg.Out, "stopped: %d signals sent, %d accepted, %d rejected, %d failed requests\n", sent, accepted, rejected, failed)
			return nil
		case now := <-tick.C:
			var n int
			buf, n = f.AppendJSON(buf[:0], perTick, now)
			sent += n
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+cfg.Token)
			res, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					failed++
					fmt.Fprintf(cfg.Out, "request failed: %v\n", err)
				}
				continue
			}
			var r Result
			derr := json.NewDecoder(res.Body).Decode(&r)
			res.Body.Close()
			if res.StatusCode != 200 || derr != nil {
				failed++
				fmt.Fprintf(cfg.Out, "request answered %d\n", res.StatusCode)
				continue
			}
			accepted += r.Accepted
			rejected += len(r.Rejected)
			if time.Now().After(report) {
				report = time.Now().Add(10 * time.Second)
				fmt.Fprintf(cfg.Out, "%s: %d signals sent, %d accepted, %d rejected\n", now.Format(time.TimeOnly), sent, accepted, rejected)
			}
		}
	}
}
