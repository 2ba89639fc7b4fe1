package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"cardata/app/bench"
)

type report struct {
	soak       *soak
	invariants []invariant
	memory     []memLine
	pushDelays []time.Duration // event created to its first acknowledged delivery
}

type memLine struct {
	Replica             string
	PID                 int
	Lived               time.Duration
	Settled, Last, Peak int64
	Killed, Unbounded   bool
}

func (r *report) breached() bool {
	return slices.ContainsFunc(r.invariants, invariant.breached)
}

func (r *report) lost() int64 {
	var n int64
	for _, i := range r.invariants {
		n += i.Lost
	}
	return n
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", bench.MS(d)) }
func mib(b int64) string        { return fmt.Sprintf("%d MiB", b>>20) }

// machine describes where the soak ran, for docs/RELIABILITY.md.
func (s *soak) machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				var kb int64
				fmt.Sscan(f[1], &kb)
				mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	commit := "unknown commit"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			commit += " (+ uncommitted changes)"
		}
	}
	return fmt.Sprintf("%s, %d CPUs%s, PostgreSQL %s (%s mode), %s, %s%s", bench.CPUModel(), runtime.NumCPU(), mem, s.pg.version,
		s.cfg.PG, runtime.Version(), commit, load)
}

func (r *report) print(w io.Writer) {
	s := r.soak
	secs := s.loadEnd.Sub(s.loadStart).Seconds()
	fmt.Fprintf(w, "\n== cardata fault soak: %s of load, %d replicas behind a load balancer, then %s of drain ==\n",
		s.loadEnd.Sub(s.loadStart).Round(time.Second), len(s.reps), s.drainEnd.Sub(s.loadEnd).Round(time.Second))
	fmt.Fprintf(w, "machine: %s\n", s.machine())

	fmt.Fprintf(w, "\nLOAD HELD (through the load balancer; open loop)\n")
	fmt.Fprintf(w, "  %-30s %8s %9s %12s %9s %9s %9s  %s\n", "surface", "ok", "req/s", "units/s", "p50", "p99", "max", "not ok (replica answer / no answer)")
	line := func(sm summary, unit string) {
		units := ""
		if unit != "" {
			units = fmt.Sprintf("%.0f %s", sm.UnitRate, unit)
		}
		fmt.Fprintf(w, "  %-30s %8d %9.1f %12s %9s %9s %9s  %d%s / %d\n", sm.Name, sm.OK, sm.Rate, units, ms(sm.P50), ms(sm.P99), ms(sm.Max),
			sm.ReplyErrs, sm.Codes, sm.NoAnswer)
	}
	line(s.ingest.stats.summary(secs), "signals")
	line(s.api.reads.summary(secs), "")
	line(s.api.tokens.summary(secs), "")
	if len(r.pushDelays) > 0 {
		l := bench.Percentiles(slices.Clone(r.pushDelays))
		fmt.Fprintf(w, "  %-30s %8d %9.1f %12s %9s %9s %9s  (event created to first acknowledged push; includes retries after refusals and the pause)\n",
			"pushes delivered", len(r.pushDelays), float64(len(r.pushDelays))/secs, "", ms(l.P50), ms(l.P99), ms(l.Max))
	}
	fmt.Fprintf(w, "  %-30s %8d\n", "e-mails received (SMTP)", len(s.smtp.Messages()))

	fmt.Fprintf(w, "\nFAULTS INJECTED\n")
	for _, f := range s.faults {
		res := f.Detail
		if f.Err != "" {
			res = "FAILED: " + f.Err
		}
		fmt.Fprintf(w, "  +%-7s %-44s %s (%s)\n", f.At.Round(time.Second), f.Name, res, f.Took.Round(100*time.Millisecond))
	}

	fmt.Fprintf(w, "\nINVARIANTS\n")
	fmt.Fprintf(w, "  %-78s %9s %6s\n", "", "checked", "lost")
	for _, i := range r.invariants {
		mark := "ok  "
		if i.breached() {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %-73s %9d %6d\n", mark, i.Name, i.Checked, i.Lost)
		if i.Err != "" {
			fmt.Fprintf(w, "      check failed: %s\n", i.Err)
		}
		if i.Detail != "" {
			fmt.Fprintf(w, "      %s\n", i.Detail)
		}
	}

	fmt.Fprintf(w, "\nMEMORY (per replica process: resident 30 s after start, at the end, peak VmHWM)\n")
	for _, m := range r.memory {
		how := "stopped with SIGTERM"
		if m.Killed {
			how = "killed with SIGKILL"
		}
		flag := ""
		if m.Unbounded {
			flag = "  UNBOUNDED GROWTH"
		}
		fmt.Fprintf(w, "  replica %s pid %-8d lived %-8s settled %-8s last %-8s peak %-8s %s%s\n", m.Replica, m.PID,
			m.Lived.Round(time.Second), mib(m.Settled), mib(m.Last), mib(m.Peak), how, flag)
	}

	fmt.Fprintf(w, "\nREPLICA LOGS (%s): error lines by message\n", s.cfg.Dir)
	for _, l := range logErrors(s.reps, 8) {
		fmt.Fprintf(w, "  %6d  %s\n", l.n, l.msg)
	}

	if r.breached() {
		fmt.Fprintf(w, "\nRESULT: FAIL: %d lost or breached (must be 0)\n", r.lost())
	} else {
		fmt.Fprintf(w, "\nRESULT: PASS: 0 lost\n")
	}
}

type logCount struct {
	msg string
	n   int
}

// logErrors counts the replicas' error log lines by message, most frequent
// first: what the faults made the replicas complain about.
func logErrors(reps []*replica, top int) []logCount {
	counts := map[string]int{}
	for _, r := range reps {
		b, err := os.ReadFile(r.logPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var e struct {
				Level, Msg, Path, Error string
			}
			if json.Unmarshal([]byte(line), &e) != nil || e.Level != "ERROR" {
				continue
			}
			key := e.Msg
			if e.Path != "" {
				key += " " + e.Path
			}
			if i := strings.Index(e.Error, ": "); i > 0 {
				why := clip(e.Error[:i], 40)
				if j := strings.LastIndex(e.Error, "(SQLSTATE "); j >= 0 {
					why += ", " + strings.TrimSuffix(e.Error[j+1:], ")")
				} else if strings.Contains(e.Error, "connection refused") {
					why += ", connection refused"
				}
				key += " (" + why + ")"
			}
			counts[key]++
		}
	}
	out := make([]logCount, 0, len(counts))
	for m, n := range counts {
		out = append(out, logCount{m, n})
	}
	slices.SortFunc(out, func(a, b logCount) int { return b.n - a.n })
	return out[:min(top, len(out))]
}
