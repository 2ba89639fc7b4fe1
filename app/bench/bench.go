// Package bench holds the benchmark programs of cardata and what they
// share: the machine description their reports start with, `cardata serve`
// started as a separate process (its address, stop and peak memory), and
// latency percentiles. The programs: the ingest benchmark (RunIngest,
// `cardata bench ingest`, make bench-ingest), the provider API benchmark
// (app/bench/api, make bench-api) and the fault soak (app/bench/soak, make
// soak). Their load comes from the ingest's simulated fleet (ingest.Fleet,
// also behind `cardata simulate`) and from their own request loops. The
// invoice run and ledger writer benchmarks stay Go benchmarks beside billing
// (make bench-invoice, make bench-ledger): they measure billing's own
// statements on a test database and need nothing from here.
package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

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

// Machine is the benchmark reports' line on where they ran: CPUs, the
// processor, the PostgreSQL server's version and Go's.
func Machine(postgres string) string {
	return fmt.Sprintf("%d CPUs (%s), PostgreSQL %s, %s", runtime.NumCPU(), CPUModel(), postgres, runtime.Version())
}
