package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"cardata/policies"
	"cardata/policies/consent"
)

// reportDeadLetters reads cardata_report_dead_letters_total from the registry /metrics serves.
func reportDeadLetters(t *testing.T, w *consentWorld) float64 {
	t.Helper()
	mfs, err := w.tt.App.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cardata_report_dead_letters_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no cardata_report_dead_letters_total on /metrics")
	return 0
}

// A data report whose build fails for good is set aside with its error
// (dead letter), counted and shown to staff, and the reports queued behind
// it are built all the same; the staff's retry builds it once the cause is
// gone.
func TestFailingDataReportIsDeadLetteredAndRetried(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	w.tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	staff := w.tt.LoginStaff(t, "sam@test.local")
	fleet := func(email string) int64 {
		id := w.customer(t, email)
		for i := 0; i <= consent.SyncReportMaxVehicles; i++ { // large: built in the background
			w.vehicle(t, "BMW", "DE", true, id)
		}
		return id
	}
	// The poisoned account's report is queued first, so it is claimed first.
	bad, good1, good2 := fleet("bad@test.local"), fleet("good1@test.local"), fleet("good2@test.local")
	for _, acc := range []int64{bad, good1, good2} {
		if res := staff.PostForm(fmt.Sprintf("/admin/customers/%d/data-reports", acc), nil); res.Status != http.StatusSeeOther {
			t.Fatalf("request: %d %s", res.Status, res.Body)
		}
	}
	// The database refuses to store the bad account's archive, every time.
	if err := w.tt.DB.Exec(fmt.Sprintf(`CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.status = 'ready' AND NEW.account_id = %d THEN
				RAISE EXCEPTION 'archive refused by the test' USING ERRCODE = '22023';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_report BEFORE UPDATE ON data_reports FOR EACH ROW EXECUTE FUNCTION refuse_report();`, bad)).Error; err != nil {
		t.Fatal(err)
	}
	if got := reportDeadLetters(t, w); got != 0 {
		t.Fatalf("dead letters before: %v", got)
	}

	rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.reports_build")
	if err != nil || rec.Outcome != "succeeded" || rec.Figures["built"] != 2 || rec.Figures["failed"] != 1 {
		t.Fatalf("build job: %v %+v", err, rec)
	}
	for _, acc := range []int64{good1, good2} {
		rs, _ := w.cs.FindDataReports(context.Background(), acc)
		if len(rs) != 1 || rs[0].Status != consent.ReportReady {
			t.Fatalf("report of %d behind the failing one: %+v", acc, rs)
		}
	}
	rs, _ := w.cs.FindDataReports(context.Background(), bad)
	if len(rs) != 1 || rs[0].Status != consent.ReportFailed || !strings.Contains(rs[0].Error, "archive refused by the test") || rs[0].FailedAt == nil {
		t.Fatalf("failing report: %+v", rs)
	}
	deadID := rs[0].ID
	if got := reportDeadLetters(t, w); got != 1 {
		t.Fatalf("dead letters: %v", got)
	}
	// Set aside: the next run does not take it up again.
	if rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.reports_build"); err != nil || rec.Figures["built"] != 0 || rec.Figures["failed"] != 0 {
		t.Fatalf("second run: %v %+v", err, rec)
	}
	// Staff see it with its error and a retry, on the requests page and the customer's.
	page := staff.Get("/admin/customers")
	csContains(t, page.Body, `id="dead-reports"`, "bad@test.local", "archive refused by the test",
		fmt.Sprintf(`action="/admin/customers/%d/data-reports/%d/retry"`, bad, deadID))
	page = staff.Get(fmt.Sprintf("/admin/customers/%d", bad))
	csContains(t, page.Body, "archive refused by the test", fmt.Sprintf(`id="retry-report-%d"`, deadID))
	// Expired archives are purged, the dead letter is kept.
	w.tt.DB.Exec("UPDATE data_reports SET expires_at = now() - interval '1 minute'")
	if rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.reports_purge"); err != nil || rec.Figures["reports_deleted"] != 2 {
		t.Fatalf("purge: %v %+v", err, rec)
	}
	// A retry of a report that is not failed, or of another customer's, is refused.
	if res := staff.PostForm(fmt.Sprintf("/admin/customers/%d/data-reports/%d/retry", good1, deadID), nil); res.Status != http.StatusNotFound {
		t.Fatalf("retry through another customer: %d", res.Status)
	}

	// The cause is fixed; staff retry it and the builder builds it.
	w.tt.DB.Exec("DROP TRIGGER refuse_report ON data_reports")
	if res := staff.PostForm(fmt.Sprintf("/admin/customers/%d/data-reports/%d/retry", bad, deadID), nil); res.Status != http.StatusSeeOther {
		t.Fatalf("retry: %d %s", res.Status, res.Body)
	}
	if res := staff.PostForm(fmt.Sprintf("/admin/customers/%d/data-reports/%d/retry", bad, deadID), nil); res.Status != http.StatusNotFound {
		t.Fatalf("second retry of a queued report: %d", res.Status)
	}
	var audits int64
	w.tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action = 'customer.data_report_retry' AND object_id = ? AND actor_label = 'sam@test.local' AND summary LIKE '%archive refused by the test%'",
		fmt.Sprint(bad)).Scan(&audits)
	if audits != 1 {
		t.Fatalf("retry audit entries: %d", audits)
	}
	if rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.reports_build"); err != nil || rec.Figures["built"] != 1 || rec.Figures["failed"] != 0 {
		t.Fatalf("build after retry: %v %+v", err, rec)
	}
	rs, _ = w.cs.FindDataReports(context.Background(), bad)
	if len(rs) != 1 || rs[0].ID != deadID || rs[0].Status != consent.ReportReady || rs[0].Error != "" || rs[0].FailedAt != nil {
		t.Fatalf("retried report: %+v", rs)
	}
	if res := staff.Get(fmt.Sprintf("/admin/customers/%d/data-reports/%d", bad, deadID)); res.Status != 200 {
		t.Fatalf("download of the retried report: %d", res.Status)
	}
	csContains(t, staff.Get("/admin/customers").Body, "None: every requested report was built")
	if got := reportDeadLetters(t, w); got != 1 {
		t.Fatalf("dead letters after the retry: %v", got)
	}
}
