package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cardata/app/ingest"
	"cardata/billing"
	"cardata/onboarding/catalog"
	"cardata/policies"
	"cardata/policies/consent"
)

// ingestReadings stores readings through the real ingest.
func ingestReadings(t *testing.T, w *consentWorld, readings ...[4]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"signals":[`)
	for i, r := range readings {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"vin":%q,"key":%q,"value":%q,"timestamp":%q}`, r[0], r[1], r[2], r[3])
	}
	b.WriteString("]}")
	sigs, err := ingest.DecodeJSON([]byte(b.String()), 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.tt.App.Ingest.Ingest(context.Background(), sigs)
	if err != nil || res.Accepted != len(readings) {
		t.Fatalf("ingest: %+v %v", res, err)
	}
}

func unzip(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], _ = io.ReadAll(r)
		r.Close()
	}
	return out
}

// Customers sign in at /my; wrong passwords and other surfaces' users are
// refused; sign-out ends the session.
func TestCustomerLoginAndLogout(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	w.customer(t, "anna@test.local")
	c := w.tt.Client(t)
	if res := c.Get("/my"); res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/my/login") {
		t.Fatalf("anonymous /my: %d %s", res.Status, res.Header.Get("Location"))
	}
	if res := c.PostForm("/my/login", url.Values{"email": {"anna@test.local"}, "password": {"wrong-password"}}); res.Status != 401 {
		t.Fatalf("wrong password: %d", res.Status)
	}
	if res := c.PostForm("/my/login", url.Values{"email": {"nobody@test.local"}, "password": {csPassword}}); res.Status != 401 {
		t.Fatalf("unknown customer: %d", res.Status)
	}
	c = w.loginCustomer(t, "anna@test.local")
	csContains(t, c.Get("/my").Body, "My vehicles and consents", "anna")
	if res := c.Get("/admin"); res.Status != http.StatusForbidden {
		t.Fatalf("customer on /admin: %d", res.Status)
	}
	if res := c.Get("/portal/containers"); res.Status != http.StatusForbidden {
		t.Fatalf("customer on /portal: %d", res.Status)
	}
	if res := c.PostForm("/my/logout", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.Status)
	}
	if res := c.Get("/my"); res.Status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", res.Status)
	}
	// Staff cannot use /my.
	w.tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	if res := w.tt.LoginStaff(t, "sam@test.local").Get("/my"); res.Status != http.StatusForbidden {
		t.Fatalf("staff on /my: %d", res.Status)
	}
}

type reportJSON struct {
	Customer struct{ Email string }
	Vehicles []struct {
		VIN    string
		Role   string
		Values []struct {
			Key      string
			Received bool
			Value    *string
			ReadAt   *time.Time
		}
	}
	Consents []struct {
		ID      int64
		State   string
		Keys    []string
		History []struct{ From, To, Actor string }
	}
}

// The data report lists exactly what is stored: the latest value and
// reading time of each key, "never received" for the others, and the
// consents with their history. Small accounts get it at once.
func TestDataReportListsExactlyWhatIsStored(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	other := w.customer(t, "ben@test.local")
	otherVIN := w.vehicle(t, "BMW", "AT", true, other)
	read1 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	read2 := read1.Add(time.Hour)
	ingestReadings(t, w,
		[4]string{vin, csMileage, "12000", read1.Format(time.RFC3339)},
		[4]string{vin, csMileage, "12042", read2.Format(time.RFC3339)}, // the newer one is kept
		[4]string{vin, csLat, "48.2082", read1.Format(time.RFC3339)},
		[4]string{otherVIN, csMileage, "99999", read1.Format(time.RFC3339)},
	)
	v := w.approvedContainer(t, "Mileage", csMileage)
	k := w.granted(t, vin, v.ContainerID, anna)

	c := w.loginCustomer(t, "anna@test.local")
	if res := c.PostForm("/my/reports", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("request: %d %s", res.Status, res.Body)
	}
	reports, err := w.cs.FindDataReports(context.Background(), anna)
	if err != nil || len(reports) != 1 || reports[0].Status != consent.ReportReady {
		t.Fatalf("reports: %+v %v", reports, err)
	}
	page := c.Get("/my/reports")
	csContains(t, page.Body, fmt.Sprintf("/my/reports/%d/download", reports[0].ID))
	res := c.Get(fmt.Sprintf("/my/reports/%d/download", reports[0].ID))
	if res.Status != 200 || res.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	files := unzip(t, []byte(res.Body))
	for _, name := range []string{"report.json", "values.csv", "consents.csv", "consent_history.csv", "report.html"} {
		if len(files[name]) == 0 {
			t.Fatalf("archive lacks %s", name)
		}
	}
	var r reportJSON
	if err := json.Unmarshal(files["report.json"], &r); err != nil {
		t.Fatal(err)
	}
	if r.Customer.Email != "anna@test.local" || len(r.Vehicles) != 1 || r.Vehicles[0].VIN != vin {
		t.Fatalf("report vehicles: %+v", r.Vehicles)
	}
	received := map[string]string{}
	never := 0
	for _, x := range r.Vehicles[0].Values {
		if x.Received {
			received[x.Key] = *x.Value + "@" + x.ReadAt.UTC().Format(time.RFC3339)
		} else {
			never++
			if x.Value != nil || x.ReadAt != nil {
				t.Fatalf("never received %s has a value", x.Key)
			}
		}
	}
	want := map[string]string{csMileage: "12042@" + read2.Format(time.RFC3339), csLat: "48.2082@" + read1.Format(time.RFC3339)}
	if fmt.Sprint(received) != fmt.Sprint(want) {
		t.Fatalf("received values %v, want %v", received, want)
	}
	if never < 50 {
		t.Fatalf("only %d keys never received", never)
	}
	if len(r.Consents) != 1 || r.Consents[0].ID != k.ID || r.Consents[0].State != "granted" || len(r.Consents[0].History) != 2 ||
		r.Consents[0].Keys[0] != csMileage {
		t.Fatalf("report consents: %+v", r.Consents)
	}
	rows, err := csv.NewReader(bytes.NewReader(files["values.csv"])).ReadAll()
	if err != nil || len(rows) != len(r.Vehicles[0].Values)+1 {
		t.Fatalf("values.csv: %d rows, %v", len(rows), err)
	}
	if !bytes.Contains(files["report.html"], []byte("never received")) || !bytes.Contains(files["report.html"], []byte("12042")) {
		t.Fatal("report.html lacks values")
	}
	if bytes.Contains(files["report.json"], []byte("99999")) {
		t.Fatal("another customer's value leaked into the report")
	}
	// Another customer cannot download it.
	w.customer(t, "eve@test.local")
	if res := w.loginCustomer(t, "eve@test.local").Get(fmt.Sprintf("/my/reports/%d/download", reports[0].ID)); res.Status != 404 {
		t.Fatalf("stranger download: %d", res.Status)
	}
	// Kept for 7 days, then the clean-up job deletes it.
	w.tt.DB.Exec("UPDATE data_reports SET expires_at = now() - interval '1 minute'")
	if rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.reports_purge"); err != nil || rec.Outcome != "succeeded" {
		t.Fatalf("purge: %v %+v", err, rec)
	}
	var n int64
	w.tt.DB.Raw("SELECT count(*) FROM data_reports").Scan(&n)
	if n != 0 {
		t.Fatalf("%d reports left after purge", n)
	}
	// Anna reads /my in German: her next archive is German (page, CSV
	// headers, the catalog's German descriptions).
	if res := c.PostForm("/lang", url.Values{"lang": {"de"}}); res.Status >= 400 {
		t.Fatalf("switch to German: %d", res.Status)
	}
	if res := c.PostForm("/my/reports", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("request in German: %d %s", res.Status, res.Body)
	}
	reports, err = w.cs.FindDataReports(context.Background(), anna)
	if err != nil || len(reports) != 1 || reports[0].Status != consent.ReportReady {
		t.Fatalf("German report: %+v %v", reports, err)
	}
	files = unzip(t, []byte(c.Get(fmt.Sprintf("/my/reports/%d/download", reports[0].ID)).Body))
	csContains(t, string(files["report.html"]), `<html lang="de">`, "Ihr CarData-Datenbericht", "nie empfangen", "Kilometerstand")
	csContains(t, string(files["values.csv"]), "VIN,Schlüssel,Beschreibung,Kategorie")
}

// A large account's report is built in the background by the job.
func TestDataReportOfALargeAccountIsBuiltInTheBackground(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	fleet := w.customer(t, "fleet@test.local")
	for i := 0; i <= consent.SyncReportMaxVehicles; i++ {
		w.vehicle(t, "BMW", "DE", true, fleet)
	}
	w.tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	staff := w.tt.LoginStaff(t, "sam@test.local")
	if res := staff.PostForm(fmt.Sprintf("/admin/customers/%d/data-reports", fleet), nil); res.Status != http.StatusSeeOther {
		t.Fatalf("request: %d %s", res.Status, res.Body)
	}
	reports, _ := w.cs.FindDataReports(context.Background(), fleet)
	if len(reports) != 1 || reports[0].Status != consent.ReportPending || reports[0].RequestedBy != "sam" {
		t.Fatalf("queued report: %+v", reports)
	}
	// A second click does not queue a second one.
	staff.PostForm(fmt.Sprintf("/admin/customers/%d/data-reports", fleet), nil)
	if again, _ := w.cs.FindDataReports(context.Background(), fleet); len(again) != 1 {
		t.Fatalf("%d reports after a second click", len(again))
	}
	if rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "consent.reports_build"); err != nil || rec.Outcome != "succeeded" || rec.Figures["built"] != 1 {
		t.Fatalf("build job: %v %+v", err, rec)
	}
	reports, _ = w.cs.FindDataReports(context.Background(), fleet)
	if reports[0].Status != consent.ReportReady || reports[0].Vehicles != consent.SyncReportMaxVehicles+1 {
		t.Fatalf("built report: %+v", reports[0])
	}
	res := staff.Get(fmt.Sprintf("/admin/customers/%d/data-reports/%d", fleet, reports[0].ID))
	if res.Status != 200 {
		t.Fatalf("staff download: %d", res.Status)
	}
	var r reportJSON
	if err := json.Unmarshal(unzip(t, []byte(res.Body))["report.json"], &r); err != nil || len(r.Vehicles) != consent.SyncReportMaxVehicles+1 {
		t.Fatalf("fleet report: %d vehicles, %v", len(r.Vehicles), err)
	}
	var audits int64
	w.tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action IN ('customer.data_report', 'customer.data_report_download') AND actor_label = 'sam@test.local'").Scan(&audits)
	if audits != 2 {
		t.Fatalf("audit entries: %d", audits)
	}
}

// The transaction report lists exactly the ledger's transfers under the
// customer's consents, filtered by date, as CSV and PDF.
func TestTransactionReportListsExactlyWhatWasDelivered(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	ben := w.customer(t, "ben@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	benVIN := w.vehicle(t, "BMW", "AT", true, ben)
	v := w.approvedContainer(t, "Mileage", csMileage, csWeekly)
	k := w.granted(t, vin, v.ContainerID, anna)
	kb := w.granted(t, benVIN, v.ContainerID, ben)
	day := func(d int) time.Time { return time.Date(2025, 3, d, 10, 0, 0, 0, time.UTC) }
	record := func(consentID int64, vin string, at time.Time, kind string, keys int, id string) {
		t.Helper()
		if err := (billing.Ledger{}).Record(context.Background(), w.tt.DB, billing.Delivery{ProviderID: w.pid, ClientID: w.clientID, VIN: vin,
			ContainerID: v.ContainerID, ContainerVersion: 1, ConsentID: consentID, Kind: kind, KeyIDs: catalogIDs(t, []string{csMileage, csWeekly}[:keys]...),
			Bytes: 100, RequestID: id, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	record(k.ID, vin, day(1), billing.KindPull, 2, "r1")
	record(k.ID, vin, day(10), billing.KindPush, 1, "r2")
	record(k.ID, vin, day(20), billing.KindPull, 2, "r3")
	record(kb.ID, benVIN, day(10), billing.KindPull, 2, "r4") // Ben's, never in Anna's report

	c := w.loginCustomer(t, "anna@test.local")
	res := c.Get("/my/transactions?from=2025-03-05&to=2025-03-20&format=csv")
	if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s", res.Status, res.Body)
	}
	rows, err := csv.NewReader(strings.NewReader(res.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[1][0] != "2025-03-10T10:00:00Z" || rows[1][8] != "push" || rows[2][0] != "2025-03-20T10:00:00Z" ||
		rows[1][1] != vin || rows[1][2] != "Alpen Versicherung AG" || rows[2][9] != "2" || rows[2][10] != csMileage+" "+csWeekly {
		t.Fatalf("csv rows: %q", rows)
	}
	res = c.Get("/my/transactions")
	csContains(t, res.Body, "3 transfers", vin)
	if strings.Contains(res.Body, benVIN) {
		t.Fatal("Ben's transfer in Anna's report")
	}
	if res := c.Get("/my/transactions?format=pdf&from=2025-03-01"); res.Status != 200 || !strings.HasPrefix(res.Body, "%PDF") {
		t.Fatalf("pdf: %d", res.Status)
	}
	if res := c.Get("/my/transactions?from=2025-13-01"); res.Status != 422 {
		t.Fatalf("bad date: %d", res.Status)
	}
	if res := c.Get("/my/transactions?from=2025-03-10&to=2025-03-01"); res.Status != 422 {
		t.Fatalf("reversed period: %d", res.Status)
	}

	// Auditors produce it on the customer's request; it is audited.
	w.tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	auditor := w.tt.LoginStaff(t, "otto@test.local")
	res = auditor.Get(fmt.Sprintf("/admin/customers/%d/transactions?format=csv", anna))
	if res.Status != 200 || strings.Count(res.Body, "\n") != 4 {
		t.Fatalf("auditor csv: %d %q", res.Status, res.Body)
	}
	if res := auditor.Get(fmt.Sprintf("/admin/customers/%d/transactions?format=pdf&to=2025-03-15", anna)); res.Status != 200 || !strings.HasPrefix(res.Body, "%PDF") {
		t.Fatalf("auditor pdf: %d", res.Status)
	}
	if res := auditor.Get(fmt.Sprintf("/admin/customers/%d/transactions?format=doc", anna)); res.Status != 422 {
		t.Fatalf("bad format: %d", res.Status)
	}
	var audits int64
	w.tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action = 'customer.transaction_report' AND actor_label = 'otto@test.local'").Scan(&audits)
	if audits != 2 {
		t.Fatalf("audit entries: %d", audits)
	}
	if res := auditor.Get("/admin/customers?q=anna"); res.Status != 200 || !strings.Contains(res.Body, "anna@test.local") {
		t.Fatalf("search: %d", res.Status)
	}
}

// catalogIDs are the catalog ids of keys (a ledger record names the keys
// whose values it carried).
func catalogIDs(t *testing.T, keys ...string) []int16 {
	t.Helper()
	ids := make([]int16, len(keys))
	for i, k := range keys {
		ck, ok := catalog.Default().Lookup(k)
		if !ok {
			t.Fatalf("no catalog key %s", k)
		}
		ids[i] = ck.ID
	}
	return ids
}

// firstKeyIDs names n catalog keys for a hand-written ledger record.
func firstKeyIDs(n int) []int16 {
	ids := make([]int16, n)
	for i := range ids {
		ids[i] = int16(i + 1)
	}
	return ids
}
