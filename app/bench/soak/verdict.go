package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The comparisons behind the invariants, apart from the queries that feed
// them, so that a unit test can hold them to their definitions.

// invariant is one line of the table's invariant section.
type invariant struct {
	Name    string
	Checked int64  // how many things were checked
	Lost    int64  // acknowledged and lost, or duplicated, or otherwise breached: must be 0
	Detail  string // what was found besides
	Err     string // the check itself could not run
}

func (i invariant) breached() bool { return i.Lost > 0 || i.Err != "" }

// pullVerdict compares the provider's answers with the pull ledger.
type pullVerdict struct {
	WithData      int // answers that carried data (named a delivery id)
	Missing       int // such answers without a ledger record
	Orphans       int // ledger records no answer named
	LostAnswers   int // reads no replica answered (the data may have been recorded, then lost with the replica)
	Unexplained   int // orphans beyond the lost answers: recorded, but the provider was told there was nothing or an error
	AfterRevoke   int // answers with data to reads started after the consent's revocation had been answered
	Duplicates    int // ledger request ids recorded twice
	DeniedRevoked int // reads refused after a revocation (expected)
}

// comparePulls holds the reads to "every answer that carried data has
// exactly one ledger record and vice versa". A read whose answer was lost
// (the replica died, the proxy answered 502) may have left a record the
// provider never saw: the ledger is written before the answer leaves. Those
// are reported, and only records beyond their number are a breach.
// revokedAt maps a VIN to when its consent's revocation was answered.
func comparePulls(recs []pullRecord, ledger []string, revokedAt map[string]time.Time) pullVerdict {
	var v pullVerdict
	inLedger := make(map[string]int, len(ledger))
	for _, id := range ledger {
		inLedger[id]++
		if inLedger[id] == 2 {
			v.Duplicates++
		}
	}
	named := make(map[string]bool, len(recs))
	for _, r := range recs {
		if r.NoAnswer {
			v.LostAnswers++
			continue
		}
		if t, ok := revokedAt[r.VIN]; ok && r.Start.After(t) {
			if r.DeliveryID != "" {
				v.AfterRevoke++
			} else if r.Status == 403 {
				v.DeniedRevoked++
			}
		}
		if r.DeliveryID == "" {
			continue
		}
		v.WithData++
		named[r.DeliveryID] = true
		if inLedger[r.DeliveryID] == 0 {
			v.Missing++
		}
	}
	for id := range inLedger {
		if !named[id] {
			v.Orphans++
		}
	}
	v.Unexplained = max(0, v.Orphans-v.LostAnswers)
	return v
}

func (v pullVerdict) lost() int { return v.Missing + v.Unexplained + v.AfterRevoke + v.Duplicates }

// pushDelivery is one delivery of an event to the soak's endpoint.
type pushDelivery struct {
	EventID   string
	Type      string
	ConsentID int64
	KeysCount int
	Status    string // pending, succeeded, dead, dropped
	Reason    string
	CreatedAt time.Time
}

// pushVerdict compares the endpoint's deliveries, what the receiver
// acknowledged and the push ledger.
type pushVerdict struct {
	Events        int      // deliveries to the endpoint
	DataEvents    int      // of which data-carrying
	Kept          int      // data events of consents that stayed granted
	Undelivered   int      // kept events (or events without data) not delivered: pending, dead, or never acknowledged
	LedgerMissing int      // succeeded data events without their ledger record
	LedgerExtra   int      // ledger records of deliveries that did not succeed, or of events without data, or twice
	Dropped       int      // data events dropped at send time because the consent had ended (expected)
	LateAfter     int      // pushes acknowledged more than the grace after the consent's revocation was answered
	InFlight      int      // pushes acknowledged within the grace after the revocation (the check passed just before)
	Redelivered   int      // events the receiver acknowledged more than once (at least once: expected after faults)
	AckedDropped  int      // events acknowledged, then dropped (consent revoked before the success was recorded)
	Unknown       int      // events acknowledged that are no delivery of the endpoint
	Problems      []string // the first few breaches, for the table
}

func (v *pushVerdict) problem(d pushDelivery, what string, acks int) {
	if len(v.Problems) < 10 {
		v.Problems = append(v.Problems, fmt.Sprintf("%s %s (consent %d, %s %s, %d acknowledged): %s",
			d.EventID, d.Type, d.ConsentID, d.Status, d.Reason, acks, what))
	}
}

// revokeGrace bounds the time between the send-time consent check and the
// push reaching the receiver, for a push whose check passed just before the
// revocation committed.
const revokeGrace = 2 * time.Second

// comparePushes holds the pushes to "every push event for a consent that
// stayed granted was delivered at least once, with one ledger record per
// successful event id, none after its consent was revoked". ledger counts
// push records by event id; revokedAt maps consent ids to when the
// revocation was answered.
func comparePushes(ds []pushDelivery, receipts []receipt, ledger map[string]int, revokedAt map[int64]time.Time) pushVerdict {
	var v pushVerdict
	acked := map[string][]time.Time{}
	for _, r := range receipts {
		if r.Status >= 200 && r.Status < 300 {
			acked[r.EventID] = append(acked[r.EventID], r.At)
		}
	}
	known := make(map[string]bool, len(ds))
	for _, d := range ds {
		v.Events++
		known[d.EventID] = true
		acks := acked[d.EventID]
		if len(acks) > 1 {
			v.Redelivered++
		}
		data := d.KeysCount > 0
		revoked, wasRevoked := revokedAt[d.ConsentID]
		if data {
			v.DataEvents++
			for _, at := range acks {
				if wasRevoked && at.After(revoked.Add(revokeGrace)) {
					v.LateAfter++
					v.problem(d, fmt.Sprintf("acknowledged %s after the revocation", at.Sub(revoked).Round(time.Millisecond)), len(acks))
				} else if wasRevoked && at.After(revoked) {
					v.InFlight++
				}
			}
		}
		switch {
		case data && wasRevoked:
			switch d.Status {
			case "dropped":
				v.Dropped++
				if len(acks) > 0 {
					v.AckedDropped++
				}
			case "succeeded":
			default:
				v.Undelivered++
				v.problem(d, "not finished", len(acks))
			}
		default:
			if data {
				v.Kept++
			}
			if d.Status != "succeeded" || len(acks) == 0 {
				v.Undelivered++
				v.problem(d, "not delivered", len(acks))
			}
		}
		n := ledger[d.EventID]
		switch {
		case data && d.Status == "succeeded":
			if n == 0 {
				v.LedgerMissing++
				v.problem(d, "no ledger record", len(acks))
			} else if n > 1 {
				v.LedgerExtra += n - 1
				v.problem(d, fmt.Sprintf("%d ledger records", n), len(acks))
			}
		default:
			if n > 0 {
				v.LedgerExtra += n
				v.problem(d, fmt.Sprintf("%d ledger records", n), len(acks))
			}
		}
	}
	for id, n := range ledger {
		if !known[id] {
			v.LedgerExtra += n
		}
	}
	for id := range acked {
		if !known[id] {
			v.Unknown++
		}
	}
	return v
}

func (v pushVerdict) lost() int {
	return v.Undelivered + v.LedgerMissing + v.LedgerExtra + v.LateAfter + v.Unknown
}

// tickRun is the run history's row(s) of one scheduled tick.
type tickRun struct {
	Job          string
	ScheduledFor time.Time
	Outcome      string
	Error        string
	Rows         int
}

type tickVerdict struct {
	Expected  int
	Missing   []string       // job@time with no row
	Twice     []string       // job@time with more than one row
	Running   []string       // job@time still running after the drain
	Outcomes  map[string]int // outcome -> ticks
	NotRunErr []string       // failed or abandoned ticks, with why
}

// compareTicks holds the run history to "every scheduled tick ran once":
// each expected tick has exactly one row, and none is still running.
func compareTicks(expected map[string][]time.Time, runs []tickRun) tickVerdict {
	v := tickVerdict{Outcomes: map[string]int{}}
	by := map[string]tickRun{}
	for _, r := range runs {
		by[r.Job+"@"+r.ScheduledFor.UTC().Format(time.RFC3339)] = r
	}
	jobs := make([]string, 0, len(expected))
	for j := range expected {
		jobs = append(jobs, j)
	}
	slices.Sort(jobs)
	for _, j := range jobs {
		for _, t := range expected[j] {
			v.Expected++
			key := j + "@" + t.UTC().Format(time.RFC3339)
			r, ok := by[key]
			switch {
			case !ok:
				v.Missing = append(v.Missing, key)
				continue
			case r.Rows > 1:
				v.Twice = append(v.Twice, key)
			case r.Outcome == "running":
				v.Running = append(v.Running, key)
			}
			v.Outcomes[r.Outcome]++
			if r.Outcome == "failed" || r.Outcome == "abandoned" {
				v.NotRunErr = append(v.NotRunErr, key+": "+r.Outcome+": "+clip(r.Error, 160))
			}
		}
	}
	return v
}

func (v tickVerdict) lost() int { return len(v.Missing) + len(v.Twice) + len(v.Running) }

// emailRow is one outbox e-mail.
type emailRow struct {
	ID     int64
	Status string
}

type emailVerdict struct {
	Sent         int
	Received     int
	Twice        []int64 // sent more than once
	NotReceived  []int64 // marked sent, never arrived
	NotMarked    []int64 // arrived, but not marked sent (failed or still pending)
	Failed       int
	Pending      int
	ForeignCount int // messages that are no outbox e-mail
}

// compareEmails holds the outbox to "no e-mail was sent twice": each sent
// e-mail arrived exactly once, recognised by its Message-ID
// (outbox-<id>.<created>@domain, jobs.MessageID).
func compareEmails(rows []emailRow, messageIDs []string) emailVerdict {
	var v emailVerdict
	got := map[int64]int{}
	for _, m := range messageIDs {
		v.Received++
		rest, ok := strings.CutPrefix(m, "outbox-")
		num, _, ok2 := strings.Cut(rest, ".")
		id, err := strconv.ParseInt(num, 10, 64)
		if !ok || !ok2 || err != nil {
			v.ForeignCount++
			continue
		}
		got[id]++
	}
	status := map[int64]string{}
	for _, r := range rows {
		status[r.ID] = r.Status
		switch r.Status {
		case "sent":
			v.Sent++
			if got[r.ID] == 0 {
				v.NotReceived = append(v.NotReceived, r.ID)
			}
		case "failed":
			v.Failed++
		case "pending":
			v.Pending++
		}
		if got[r.ID] > 1 {
			v.Twice = append(v.Twice, r.ID)
		}
	}
	for id := range got {
		if status[id] != "sent" {
			v.NotMarked = append(v.NotMarked, id)
		}
	}
	slices.Sort(v.NotMarked)
	return v
}

func (v emailVerdict) lost() int {
	return len(v.Twice) + len(v.NotReceived) + len(v.NotMarked) + v.Failed
}

// numberGaps lists what breaks "numbers gapless": for each series (prefix
// and year) the numbers issued must be exactly 1..last, and last what the
// series row says.
func numberGaps(numbers []string, series map[string]int) []string {
	seen := map[string][]int{}
	var bad []string
	for _, n := range numbers {
		i := strings.LastIndex(n, "-")
		k, err := strconv.Atoi(n[i+1:])
		if i <= 0 || err != nil {
			bad = append(bad, "malformed number "+n)
			continue
		}
		seen[n[:i]] = append(seen[n[:i]], k)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	for k := range series {
		if _, ok := seen[k]; !ok && series[k] > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		ns := seen[k]
		slices.Sort(ns)
		for i, n := range ns {
			if n != i+1 {
				bad = append(bad, fmt.Sprintf("%s: number %d where %d was due", k, n, i+1))
				break
			}
		}
		if series[k] != len(ns) {
			bad = append(bad, fmt.Sprintf("%s: the series is at %d, %d numbers issued", k, series[k], len(ns)))
		}
	}
	return bad
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
