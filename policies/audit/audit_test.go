package audit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"github.com/shopspring/decimal"
	"time"
)

func ctx() context.Context {
	c := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindStaff, ID: 7, Email: "a@x"})
	return policies.WithRequest(c, policies.Request{ID: "req-1", ClientAddr: "10.0.0.1"})
}

func TestChainVerifiesAndRecordsContext(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := audit.Record(ctx(), gdb, "thing.create", "thing", fmt.Sprint(i), "made it"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n, broken, err := audit.Verify(context.Background(), gdb)
	if err != nil || broken != nil || n != 20 {
		t.Fatalf("verify: n=%d broken=%+v err=%v", n, broken, err)
	}
	entries, total, err := audit.List(context.Background(), gdb, audit.Filter{Action: "thing", Limit: 5})
	if err != nil || total != 20 || len(entries) != 5 {
		t.Fatalf("list: %d %d %v", total, len(entries), err)
	}
	e := entries[0]
	if e.ActorLabel != "a@x" || e.RequestID != "req-1" || e.ClientAddr != "10.0.0.1" || *e.ActorID != 7 {
		t.Fatalf("entry context: %+v", e)
	}
}

func TestDatabaseRejectsUpdateAndDelete(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	if err := audit.Record(ctx(), gdb, "thing.create", "thing", "1", "x"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE audit_entries SET summary = 'y'", "DELETE FROM audit_entries", "TRUNCATE audit_entries"} {
		err := gdb.Exec(q).Error
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: want append-only error, got %v", q, err)
		}
	}
}

func TestVerifyNamesFirstTamperedEntry(t *testing.T) {
	t.Parallel()
	u := dbtest.URL(t)
	gdb, err := db.Open(u, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	for i := 1; i <= 5; i++ {
		if err := audit.Record(ctx(), gdb, "thing.update", "thing", fmt.Sprint(i), fmt.Sprintf("change %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Tamper as the superuser, bypassing the append-only triggers.
	su, err := db.Open(dbtest.SuperuserURL(t, u), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(su)
	err = su.Exec("SET session_replication_role = replica; UPDATE audit_entries SET summary = 'nothing happened' WHERE id = 3").Error
	if err != nil {
		t.Fatal(err)
	}
	_, broken, err := audit.Verify(context.Background(), gdb)
	if err != nil || broken == nil || broken.ID != 3 || !strings.Contains(broken.Reason, "altered") {
		t.Fatalf("want entry 3 altered, got %+v %v", broken, err)
	}
	// Deleting an entry breaks the link of the next one.
	if err := su.Exec("SET session_replication_role = replica; DELETE FROM audit_entries WHERE id IN (2,3)").Error; err != nil {
		t.Fatal(err)
	}
	_, broken, _ = audit.Verify(context.Background(), gdb)
	if broken == nil || broken.ID != 4 || !strings.Contains(broken.Reason, "removed") {
		t.Fatalf("want entry 4 unlinked, got %+v", broken)
	}
}

// RecordMany appends its entries as one chain step, in order, interleaved
// safely with single records.
func TestRecordManyKeepsTheChain(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var items []audit.Item
			for k := 0; k < 40; k++ {
				items = append(items, audit.Item{Action: "bulk.create", ObjectType: "thing", ObjectID: fmt.Sprint(i, "-", k), Summary: "bulk"})
			}
			if err := audit.RecordMany(ctx(), gdb, items); err != nil {
				t.Error(err)
			}
			if err := audit.Record(ctx(), gdb, "thing.create", "thing", fmt.Sprint(i), "single"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n, broken, err := audit.Verify(context.Background(), gdb)
	if err != nil || broken != nil || n != 6*41 {
		t.Fatalf("verify: n=%d broken=%+v err=%v", n, broken, err)
	}
}

// A summary written with Recordf reads in German when its format has a
// translation and its stored arguments give back the hashed English text;
// arguments changed outside the chain make the page show the English.
func TestRecordfSaysTheSummaryInTheReadersLanguage(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	if err := audit.Recordf(ctx(), gdb, "staff_user.password", "staff_user", "9", "password changed for %s", "sam@x"); err != nil {
		t.Fatal(err)
	}
	if err := audit.Record(ctx(), gdb, "thing.create", "thing", "1", "made it"); err != nil {
		t.Fatal(err)
	}
	if _, broken, err := audit.Verify(context.Background(), gdb); err != nil || broken != nil {
		t.Fatalf("verify: %+v %v", broken, err)
	}
	entries, err := audit.ForObject(context.Background(), gdb, "staff_user", "9")
	if err != nil || len(entries) != 1 {
		t.Fatalf("%v %v", entries, err)
	}
	e := entries[0]
	if e.Summary != "password changed for sam@x" || e.SummaryIn("en") != e.Summary {
		t.Errorf("English: %q / %q", e.Summary, e.SummaryIn("en"))
	}
	if got := e.SummaryIn("de"); got != "Passwort von sam@x geändert" {
		t.Errorf("German: %q", got)
	}
	e.SummaryArgs[0].Text = "eve@x"
	if got := e.SummaryIn("de"); got != "password changed for sam@x" {
		t.Errorf("arguments that do not give back the summary must not be shown: %q", got)
	}
	old, _ := audit.ForObject(context.Background(), gdb, "thing", "1")
	if got := old[0].SummaryIn("de"); got != "made it" {
		t.Errorf("a summary without a format stays as recorded: %q", got)
	}
}

type euros decimal.Decimal

func (e euros) String() string          { return decimal.Decimal(e).StringFixed(2) + " EUR" }
func (e euros) Amount() decimal.Decimal { return decimal.Decimal(e) }

// Amounts and days in a summary are written the reader's way in German.
func TestRecordfWritesAmountsAndDaysInTheReadersFormat(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	day := errs.Day{T: time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)}
	if err := audit.Recordf(ctx(), gdb, "invoice.payment", "invoice", "5", "booked payment of %s on %s (received %s, ref %q)",
		euros(decimal.RequireFromString("1190")), "CD-1", day, "SEPA 1"); err != nil {
		t.Fatal(err)
	}
	entries, err := audit.ForObject(context.Background(), gdb, "invoice", "5")
	if err != nil || len(entries) != 1 {
		t.Fatalf("%v %v", entries, err)
	}
	e := entries[0]
	if e.Summary != `booked payment of 1190.00 EUR on CD-1 (received 2027-01-10, ref "SEPA 1")` {
		t.Errorf("English: %q", e.Summary)
	}
	if got := e.SummaryIn("de"); !strings.Contains(got, "1.190,00\u00a0€") || !strings.Contains(got, "10.01.2027") {
		t.Errorf("German: %q", got)
	}
}

// A list of words of the product (errs.Terms) and a list of phrases
// (errs.Phrasef) print as their English joined in the hashed summary and
// read item by item in the reader's language; a stored list altered
// outside the chain makes the page show the recorded English.
func TestRecordfSaysListsItemByItem(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	changes := []errs.Phrase{
		errs.Phrasef("name %q -> %q", "Sam", "Sam B"),
		errs.Phrasef("roles [%s] -> [%s]", errs.Terms(", ", "finance"), errs.Terms(", ", "auditor", "partner_manager")),
	}
	if err := audit.Recordf(ctx(), gdb, "staff_user.create", "staff_user", "9", "created %s (%s) with roles %s",
		"sam@x", "Sam", errs.Terms(", ", "finance", "partner_manager")); err != nil {
		t.Fatal(err)
	}
	if err := audit.Recordf(ctx(), gdb, "staff_user.update", "staff_user", "9", "%s: %s", "sam@x", errs.ListOf("; ", changes)); err != nil {
		t.Fatal(err)
	}
	if _, broken, err := audit.Verify(context.Background(), gdb); err != nil || broken != nil {
		t.Fatalf("verify: %+v %v", broken, err)
	}
	entries, err := audit.ForObject(context.Background(), gdb, "staff_user", "9")
	if err != nil || len(entries) != 2 {
		t.Fatalf("%v %v", entries, err)
	}
	created, updated := entries[0], entries[1]
	for _, c := range []struct {
		e      audit.Entry
		en, de string
	}{
		{created, "created sam@x (Sam) with roles finance, partner_manager", "sam@x (Sam) angelegt mit den Rollen Finanzen, Partnermanager"},
		{updated, `sam@x: name "Sam" -> "Sam B"; roles [finance] -> [auditor, partner_manager]`,
			`sam@x: Name "Sam" -> "Sam B"; Rollen [Finanzen] -> [Prüfer, Partnermanager]`},
	} {
		if c.e.Summary != c.en || c.e.SummaryIn("en") != c.en {
			t.Errorf("English: %q / %q, want %q", c.e.Summary, c.e.SummaryIn("en"), c.en)
		}
		if got := c.e.SummaryIn("de"); got != c.de {
			t.Errorf("German: %q, want %q", got, c.de)
		}
	}
	// An item of a list changed in the stored arguments (a role added, a
	// phrase's argument swapped): the recorded English is shown.
	created.SummaryArgs[2].Items[1].Text = "admin"
	if got := created.SummaryIn("de"); got != created.Summary {
		t.Errorf("an altered list must not be shown: %q", got)
	}
	updated.SummaryArgs[1].Items[1].Args[1].Items = append(updated.SummaryArgs[1].Items[1].Args[1].Items, audit.Arg{Text: "admin", Term: true})
	if got := updated.SummaryIn("de"); got != updated.Summary {
		t.Errorf("an altered phrase must not be shown: %q", got)
	}
}

// An entry written before lists were marked (the joined list a plain
// argument) reads as it did: the German sentence with the list as recorded.
func TestEntriesWithAPlainListReadAsRecorded(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	if err := audit.Recordf(ctx(), gdb, "staff_user.create", "staff_user", "9", "created %s (%s) with roles %s",
		"sam@x", "Sam", strings.Join([]string{"finance", "partner_manager"}, ", ")); err != nil {
		t.Fatal(err)
	}
	entries, err := audit.ForObject(context.Background(), gdb, "staff_user", "9")
	if err != nil || len(entries) != 1 {
		t.Fatalf("%v %v", entries, err)
	}
	e := entries[0]
	if e.Summary != "created sam@x (Sam) with roles finance, partner_manager" || e.SummaryIn("en") != e.Summary {
		t.Errorf("English: %q / %q", e.Summary, e.SummaryIn("en"))
	}
	if got := e.SummaryIn("de"); got != "sam@x (Sam) angelegt mit den Rollen finance, partner_manager" {
		t.Errorf("German: %q", got)
	}
}
