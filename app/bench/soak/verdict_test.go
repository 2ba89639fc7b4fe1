package main

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func TestComparePulls(t *testing.T) {
	recs := []pullRecord{
		{VIN: "V1", Start: at(1), Status: 200, DeliveryID: "d1"},
		{VIN: "V2", Start: at(2), Status: 200, DeliveryID: "d2"},
		{VIN: "V1", Start: at(3), Status: 200},                   // no data: nothing recorded
		{VIN: "V3", Start: at(4), NoAnswer: true},                // replica died: its record may exist
		{VIN: "V4", Start: at(11), Status: 403},                  // refused after the revocation
		{VIN: "V4", Start: at(9), Status: 200, DeliveryID: "d4"}, // before the revocation: fine
		{VIN: "V2", Start: at(5), Status: 503},                   // ledger unavailable: nothing recorded
		{VIN: "V1", Start: at(6), Status: 200, DeliveryID: "d1b"},
	}
	revoked := map[string]time.Time{"V4": at(10)}

	v := comparePulls(recs, []string{"d1", "d2", "d4", "d1b", "lost-with-replica"}, revoked)
	if v.lost() != 0 || v.WithData != 4 || v.Orphans != 1 || v.Unexplained != 0 || v.DeniedRevoked != 1 {
		t.Fatalf("clean run: %+v", v)
	}

	// An answer that carried data without its record is lost billing.
	if v := comparePulls(recs, []string{"d1", "d4", "d1b"}, revoked); v.Missing != 1 || v.lost() != 1 {
		t.Fatalf("missing record: %+v", v)
	}
	// More records without an answer than reads whose answer was lost:
	// someone was billed for data they were told was not there.
	if v := comparePulls(recs, []string{"d1", "d2", "d4", "d1b", "x", "y"}, revoked); v.Unexplained != 1 || v.lost() != 1 {
		t.Fatalf("unexplained records: %+v", v)
	}
	// Data to a read that started after the revocation was answered.
	late := append(slices.Clone(recs), pullRecord{VIN: "V4", Start: at(12), Status: 200, DeliveryID: "d5"})
	if v := comparePulls(late, []string{"d1", "d2", "d4", "d1b", "d5"}, revoked); v.AfterRevoke != 1 || v.lost() != 1 {
		t.Fatalf("data after revocation: %+v", v)
	}
	// The same request id twice in the ledger.
	if v := comparePulls(recs, []string{"d1", "d1", "d2", "d4", "d1b"}, revoked); v.Duplicates != 1 || v.lost() != 1 {
		t.Fatalf("duplicate record: %+v", v)
	}
}

func TestComparePushes(t *testing.T) {
	ds := []pushDelivery{
		{EventID: "e1", Type: "vehicle.positionUpdated", ConsentID: 1, KeysCount: 1, Status: "succeeded"},
		{EventID: "e2", Type: "vehicle.positionUpdated", ConsentID: 2, KeysCount: 1, Status: "dropped", Reason: "consent_revoked"},
		{EventID: "e3", Type: "vehicle.positionUpdated", ConsentID: 2, KeysCount: 1, Status: "succeeded"}, // before the revocation
		{EventID: "e4", Type: "consent.revoked", ConsentID: 2, Status: "succeeded"},                       // no data, no ledger
	}
	receipts := []receipt{
		{EventID: "e1", At: at(1), Status: 500},
		{EventID: "e1", At: at(12), Status: 200},
		{EventID: "e3", At: at(5), Status: 200},
		{EventID: "e4", At: at(21), Status: 200},
		{EventID: "e4", At: at(22), Status: 200}, // at least once: a second copy is fine
	}
	ledger := map[string]int{"e1": 1, "e3": 1}
	revoked := map[int64]time.Time{2: at(20)}

	v := comparePushes(ds, receipts, ledger, revoked)
	if v.lost() != 0 || v.Kept != 1 || v.Dropped != 1 || v.Redelivered != 1 {
		t.Fatalf("clean run: %+v", v)
	}

	// A push of a consent that stayed granted that never succeeded.
	bad := append(slices.Clone(ds), pushDelivery{EventID: "e5", ConsentID: 1, KeysCount: 1, Status: "dead"})
	if v := comparePushes(bad, receipts, ledger, revoked); v.Undelivered != 1 || v.lost() != 1 {
		t.Fatalf("undelivered: %+v", v)
	}
	// Succeeded without its ledger record, and a record of a dropped push.
	if v := comparePushes(ds, receipts, map[string]int{"e3": 1, "e2": 1}, revoked); v.LedgerMissing != 1 || v.LedgerExtra != 1 {
		t.Fatalf("ledger mismatch: %+v", v)
	}
	// Two records for one event.
	if v := comparePushes(ds, receipts, map[string]int{"e1": 2, "e3": 1}, revoked); v.LedgerExtra != 1 {
		t.Fatalf("twice in the ledger: %+v", v)
	}
	// Data acknowledged well after the revocation was answered; just after it is in flight.
	late := append(slices.Clone(receipts), receipt{EventID: "e3", At: at(20.5), Status: 200}, receipt{EventID: "e3", At: at(30), Status: 200})
	if v := comparePushes(ds, late, ledger, revoked); v.InFlight != 1 || v.LateAfter != 1 || v.lost() != 1 {
		t.Fatalf("after revocation: %+v", v)
	}
	// Succeeded in the database, never acknowledged by the receiver.
	if v := comparePushes(ds, receipts[2:], ledger, revoked); v.Undelivered != 1 {
		t.Fatalf("not acknowledged: %+v", v)
	}
}

func TestCompareTicks(t *testing.T) {
	m := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	expected := map[string][]time.Time{"a": {m(1), m(2), m(3)}, "b": {m(5)}}
	runs := []tickRun{
		{Job: "a", ScheduledFor: m(1), Outcome: "succeeded", Rows: 1},
		{Job: "a", ScheduledFor: m(2), Outcome: "abandoned", Error: "killed", Rows: 1},
		{Job: "a", ScheduledFor: m(3), Outcome: "skipped", Rows: 1},
		{Job: "b", ScheduledFor: m(5), Outcome: "succeeded", Rows: 1},
	}
	v := compareTicks(expected, runs)
	if v.lost() != 0 || v.Expected != 4 || v.Outcomes["succeeded"] != 2 || len(v.NotRunErr) != 1 {
		t.Fatalf("clean: %+v", v)
	}
	runs[3].Rows = 2
	runs = runs[1:]
	v = compareTicks(expected, runs)
	if len(v.Missing) != 1 || v.Missing[0] != "a@"+m(1).Format(time.RFC3339) || len(v.Twice) != 1 || v.lost() != 2 {
		t.Fatalf("missing and twice: %+v", v)
	}
	runs[0].Outcome = "running"
	if v := compareTicks(expected, runs); len(v.Running) != 1 {
		t.Fatalf("still running: %+v", v)
	}
}

func TestCompareEmails(t *testing.T) {
	rows := []emailRow{{1, "sent"}, {2, "sent"}, {3, "pending"}, {4, "sent"}}
	ids := []string{"outbox-1.1700000000@cardata.local", "outbox-2.1700000000@cardata.local", "outbox-4.1700000000@cardata.local"}
	if v := compareEmails(rows, ids); v.lost() != 0 || v.Sent != 3 || v.Pending != 1 {
		t.Fatalf("clean: %+v", v)
	}
	v := compareEmails(rows, append(ids[1:], "outbox-2.1700000000@cardata.local", "outbox-3.1700000000@cardata.local", "other@x"))
	if !slices.Equal(v.Twice, []int64{2}) || !slices.Equal(v.NotReceived, []int64{1}) || !slices.Equal(v.NotMarked, []int64{3}) || v.ForeignCount != 1 {
		t.Fatalf("twice, lost, unmarked: %+v", v)
	}
}

func TestNumberGaps(t *testing.T) {
	series := map[string]int{"CD-2026": 3, "CN-2026": 1}
	if bad := numberGaps([]string{"CD-2026-000002", "CD-2026-000001", "CD-2026-000003", "CN-2026-000001"}, series); len(bad) != 0 {
		t.Fatalf("clean: %v", bad)
	}
	if bad := numberGaps([]string{"CD-2026-000001", "CD-2026-000003", "CN-2026-000001"}, series); len(bad) != 2 {
		t.Fatalf("a gap (and the series ahead of the numbers): %v", bad)
	}
	if bad := numberGaps([]string{"CD-2026-000001", "CD-2026-000002", "CD-2026-000003"}, series); len(bad) != 1 {
		t.Fatalf("a series with no numbers issued: %v", bad)
	}
}
