package bench

import (
	"slices"
	"time"
)

// Latencies are the percentiles of a run's request latencies.
type Latencies struct {
	P50, P99, Max time.Duration
}

// Percentiles sorts lat in place and returns its median, 99th percentile
// and maximum (zero when empty).
func Percentiles(lat []time.Duration) Latencies {
	slices.Sort(lat)
	if len(lat) == 0 {
		return Latencies{}
	}
	return Latencies{P50: lat[len(lat)/2], P99: lat[min(len(lat)-1, len(lat)*99/100)], Max: lat[len(lat)-1]}
}

// MS is d in milliseconds, as the reports print it.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
