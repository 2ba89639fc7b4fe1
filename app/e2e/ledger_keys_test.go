package e2e

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/providerapi"
	"cardata/app/providerapi/client"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding/catalog"
	"cardata/policies"
	"cardata/policies/consent"
)

// ledgerRow cuts the table row with the given element id out of a page.
func ledgerRow(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no row %s in the page", id)
	}
	j := strings.Index(body[i:], "</tr>")
	if j < 0 {
		t.Fatalf("row %s not closed", id)
	}
	return body[i : i+j]
}

// mustName asserts that a rendered ledger row names exactly the expected
// keys (label and raw key) and none of the others.
func mustName(t *testing.T, where, row string, sent, notSent []string) {
	t.Helper()
	for _, k := range sent {
		ck, _ := catalog.Default().Lookup(k)
		if !strings.Contains(row, `<code class="raw-key">`+k+`</code>`) || !strings.Contains(row, ck.DescriptionEN) {
			t.Errorf("%s: %s (%q) not listed: %s", where, k, ck.DescriptionEN, row)
		}
	}
	for _, k := range notSent {
		if strings.Contains(row, k) {
			t.Errorf("%s: %s listed although its value was not sent: %s", where, k, row)
		}
	}
	if strings.Contains(row, "keys not recorded") {
		t.Errorf("%s: a record with keys says keys not recorded: %s", where, row)
	}
}

// mustBeUnrecorded asserts a legacy record's row names no key at all.
func mustBeUnrecorded(t *testing.T, where, row string) {
	t.Helper()
	if !strings.Contains(row, "keys not recorded") {
		t.Errorf("%s: the legacy record does not say keys not recorded: %s", where, row)
	}
	for _, k := range []string{apiKeyMileage, apiKeyMoving, apiKeyServiceCall, "raw-key\">vehicle."} {
		if strings.Contains(row, k) {
			t.Errorf("%s: the legacy record lists %s (invented): %s", where, k, row)
		}
	}
}

// mustNameForOwner asserts that a row of the customer's transaction report
// names exactly the sent keys by their plain label, and no raw key at all.
func mustNameForOwner(t *testing.T, where, row string, sent, notSent []string) {
	t.Helper()
	for _, k := range sent {
		ck, _ := catalog.Default().Lookup(k)
		if !strings.Contains(row, consent.PlainLabel(ck.DescriptionEN)) {
			t.Errorf("%s: %s (%q) not listed: %s", where, k, ck.DescriptionEN, row)
		}
	}
	for _, k := range append(notSent, sent...) {
		if strings.Contains(row, k) {
			t.Errorf("%s: raw key %s shown to the vehicle owner: %s", where, k, row)
		}
	}
	if strings.Contains(row, "not recorded") {
		t.Errorf("%s: a record with keys says not recorded: %s", where, row)
	}
}

// mustBeUnrecordedForOwner asserts a legacy record's row in the customer's
// report names no data at all and says it was not recorded.
func mustBeUnrecordedForOwner(t *testing.T, where, row string) {
	t.Helper()
	if !strings.Contains(row, "not recorded") || strings.Contains(row, "<li>") {
		t.Errorf("%s: the legacy record does not say not recorded, or lists data: %s", where, row)
	}
}

// The ledger names the data (issue 17): a read that returned two of the
// container's three keys (the third has no value) is recorded with exactly
// those two, and the deliveries API, the usage API, the portal's delivery
// log, the staff page, the customer's transaction report (HTML and CSV)
// and the data report agree on which keys left and when. A record written
// before keys were recorded says so everywhere and never lists a key.
func TestLedgerNamesTheKeysEverySurfaceShows(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	pid := w.Provider.Provider.ID
	sent := []string{apiKeyMileage, apiKeyMoving}
	notSent := []string{apiKeyServiceCall}

	// A record from before the ledger named keys: three values, which is unknown.
	legacyAt := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	legacyID := billingtest.MustLegacyDelivery(t, tt.DB, billing.Delivery{ProviderID: pid, VIN: w.VIN, ContainerID: w.ContainerID,
		ContainerVersion: 1, ConsentID: w.ConsentID, Kind: billing.KindPull, KeysDelivered: 3, Bytes: 300, RequestID: "legacy-1", At: legacyAt})

	// Two of the three keys get values; the service call never does.
	readAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	apiIngest(t, tt, w.VIN, apiKeyMileage, "12345", readAt)
	apiIngest(t, tt, w.VIN, apiKeyMoving, "true", readAt)
	api, ctx := apiGen(t, tt, w), t.Context()
	read := call(api.GetTelematicDataWithResponse(ctx, w.VIN, &client.GetTelematicDataParams{ContainerId: int(w.ContainerID)})).must(t)
	if read.JSON200 == nil {
		t.Fatalf("read: %d %s", read.StatusCode(), read.Body)
	}
	if v, ok := read.JSON200.TelematicData[apiKeyServiceCall]; !ok || v != nil {
		t.Fatalf("the service call has no value and must be null: %s", read.Body)
	}
	deliveryID := read.HTTPResponse.Header.Get(providerapi.DeliveryHeader)

	// The ledger record names exactly the keys with values.
	var pullID int64
	var pullAt time.Time
	for _, r := range apiLedgerRows(t, tt, pid) {
		if r.ID == legacyID {
			if r.KeyIDs != nil || r.KeysKnown() {
				t.Fatalf("legacy record has keys: %+v", r)
			}
			continue
		}
		pullID, pullAt = r.ID, r.DeliveredAt
		got := slices.Clone(billingtest.DeliveryKeyIDs(t, tt.DB, r.ID))
		slices.Sort(got)
		want := catalogIDs(t, sent...)
		slices.Sort(want)
		if !slices.Equal(got, want) || r.KeysDelivered != 2 {
			t.Fatalf("ledger key ids %v (count %d), want %v: %s was null and not sent", got, r.KeysDelivered, want, apiKeyServiceCall)
		}
	}
	if pullID == 0 {
		t.Fatal("the read was not recorded")
	}

	// The deliveries API lists the same keys, with labels; the legacy record none.
	list := call(api.ListDeliveriesWithResponse(ctx, nil)).must(t)
	if list.JSON200 == nil || len(list.JSON200.Deliveries) != 2 {
		t.Fatalf("deliveries: %d %s", list.StatusCode(), list.Body)
	}
	body := string(list.Body)
	for _, d := range list.JSON200.Deliveries {
		switch int64(d.Id) {
		case legacyID:
			if d.KeysKnown || d.Keys != nil || d.KeysDelivered != 3 || !strings.Contains(body, `"keys":null`) {
				t.Errorf("legacy delivery in the API: %+v", d)
			}
			if !d.DeliveredAt.Equal(legacyAt) {
				t.Errorf("legacy delivered at %s, recorded %s", d.DeliveredAt, legacyAt)
			}
		case pullID:
			if !d.KeysKnown || d.Keys == nil || d.DeliveryId != deliveryID || d.EventId != nil || !d.DeliveredAt.Equal(pullAt) {
				t.Fatalf("pull delivery in the API: %+v", d)
			}
			var names []string
			for _, k := range *d.Keys {
				ck, ok := catalog.Default().Lookup(k.Key)
				if !ok || int(ck.ID) != k.Id || k.Label != ck.DescriptionEN || k.LabelDe != ck.DescriptionDE {
					t.Errorf("API key %+v does not match the catalog", k)
				}
				names = append(names, k.Key)
			}
			slices.Sort(names)
			if want := slices.Sorted(slices.Values(sent)); !slices.Equal(names, want) {
				t.Errorf("API keys %v, want %v", names, want)
			}
		default:
			t.Errorf("unexpected delivery %+v", d)
		}
	}
	// The usage API counts both deliveries (an invoice line counts deliveries).
	// (the legacy record counts when it falls into the read's month).
	month := billing.PeriodOf(pullAt, tt.App.Cfg.BillingTimezone)
	want := int64(1)
	if !legacyAt.Before(month.Start) {
		want = 2
	}
	usage := call(api.GetUsageWithResponse(ctx, &client.GetUsageParams{Period: ptr(month.String())})).must(t)
	if u := usage.JSON200; u == nil || len(u.Items) != 2 || int64(u.Items[0].Count) != want {
		t.Fatalf("usage (want %d pulls): %d %s", want, usage.StatusCode(), usage.Body)
	}

	// The portal's delivery log and the staff page show the same.
	portal := loginProvider(t, tt, w.Provider.Admin.Email, providerPassword)
	res2 := portal.Get("/portal/deliveries")
	if res2.Status != 200 {
		t.Fatalf("portal: %d", res2.Status)
	}
	mustName(t, "portal", ledgerRow(t, res2.Body, fmt.Sprintf("delivery-%d", pullID)), sent, notSent)
	mustBeUnrecorded(t, "portal", ledgerRow(t, res2.Body, fmt.Sprintf("delivery-%d", legacyID)))
	tt.MustCreateStaff(t, "finance@cardata.example", policies.RoleFinance)
	staff := tt.LoginStaff(t, "finance@cardata.example")
	res2 = staff.Get(fmt.Sprintf("/admin/deliveries/%d", pid))
	if res2.Status != 200 {
		t.Fatalf("staff page: %d", res2.Status)
	}
	mustName(t, "staff", ledgerRow(t, res2.Body, fmt.Sprintf("delivery-%d", pullID)), sent, notSent)
	mustBeUnrecorded(t, "staff", ledgerRow(t, res2.Body, fmt.Sprintf("delivery-%d", legacyID)))

	// The customer's transaction report: HTML and CSV.
	var email string
	tt.DB.Raw("SELECT email FROM customer_accounts WHERE id = ?", w.AccountID).Scan(&email)
	if err := apiConsents(tt).SetCustomerPassword(context.Background(), w.AccountID, csPassword); err != nil {
		t.Fatal(err)
	}
	cust := tt.Client(t)
	if res := cust.PostForm("/my/login", url.Values{"email": {email}, "password": {csPassword}}); res.Status != http.StatusSeeOther {
		t.Fatalf("customer login: %d %s", res.Status, res.Body)
	}
	res2 = cust.Get("/my/transactions")
	if res2.Status != 200 || strings.Count(res2.Body, `<tr class="transfer">`) != 2 {
		t.Fatalf("transactions page: %d %s", res2.Status, res2.Body)
	}
	rows := strings.Split(res2.Body, `<tr class="transfer">`)[1:]
	mustBeUnrecordedForOwner(t, "transactions (oldest first)", rows[0][:strings.Index(rows[0], "</tr>")])
	mustNameForOwner(t, "transactions", rows[1][:strings.Index(rows[1], "</tr>")], sent, notSent)

	res2 = cust.Get("/my/transactions?format=csv")
	recs, err := csv.NewReader(strings.NewReader(res2.Body)).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("csv: %v %q", err, res2.Body)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	legacy, pull := recs[1], recs[2]
	if legacy[col["keys"]] != "" || legacy[col["keys_recorded"]] != "no" || legacy[col["key_labels"]] != "keys not recorded" ||
		legacy[col["values_delivered"]] != "3" || legacy[col["delivered_at"]] != legacyAt.Format(time.RFC3339Nano) {
		t.Errorf("legacy csv row: %q", legacy)
	}
	keys := strings.Fields(pull[col["keys"]])
	slices.Sort(keys)
	if !slices.Equal(keys, slices.Sorted(slices.Values(sent))) || pull[col["keys_recorded"]] != "yes" || pull[col["values_delivered"]] != "2" ||
		pull[col["delivered_at"]] != pullAt.UTC().Format(time.RFC3339Nano) {
		t.Errorf("pull csv row: %q", pull)
	}
	for _, k := range sent {
		ck, _ := catalog.Default().Lookup(k)
		if !strings.Contains(pull[col["key_labels"]], ck.DescriptionEN+" ("+k+")") || !strings.Contains(pull[col["key_labels_de"]], ck.DescriptionDE) {
			t.Errorf("csv labels lack %s: %q", k, pull)
		}
	}
	res2 = cust.Get("/my/transactions?format=pdf")
	if res2.Status != 200 || !strings.HasPrefix(res2.Body, "%PDF") {
		t.Fatalf("pdf: %d", res2.Status)
	}
	text := pdfText(t, []byte(res2.Body))
	if strings.Count(text, "Keys sent: ") != 2 || !strings.Contains(text, "Keys sent: keys not recorded") {
		t.Errorf("pdf lacks the transfers' keys: %s", text)
	}
	for _, k := range sent {
		if !strings.Contains(text, k) {
			t.Errorf("pdf lacks %s", k)
		}
	}
	// The container's keys are listed once, as what the consent covers.
	if strings.Count(text, apiKeyServiceCall) != 1 {
		t.Errorf("pdf names %s %d times, want once (the container's keys)", apiKeyServiceCall, strings.Count(text, apiKeyServiceCall))
	}

	// The data report: which keys were sent to whom, from the ledger.
	if res := cust.PostForm("/my/reports", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("data report: %d %s", res.Status, res.Body)
	}
	reps, err := apiConsents(tt).FindDataReports(context.Background(), w.AccountID)
	if err != nil || len(reps) != 1 {
		t.Fatalf("reports: %v %v", reps, err)
	}
	res2 = cust.Get("/my/reports/" + strconv.FormatInt(reps[0].ID, 10) + "/download")
	files := unzip(t, []byte(res2.Body))
	var rep struct {
		Consents []struct {
			ID       int64
			Provider string
			Sent     []struct {
				Key        string
				Label      string
				Deliveries int64
				LastSentAt time.Time
			}
			KeysNotRecorded *struct{ Deliveries int64 }
		}
	}
	if err := json.Unmarshal(files["report.json"], &rep); err != nil || len(rep.Consents) != 1 {
		t.Fatalf("report.json: %v %s", err, files["report.json"])
	}
	rc := rep.Consents[0]
	var got []string
	for _, s := range rc.Sent {
		got = append(got, s.Key)
		if s.Deliveries != 1 || !s.LastSentAt.Equal(pullAt) {
			t.Errorf("sent %+v: one delivery at %s", s, pullAt)
		}
	}
	slices.Sort(got)
	if rc.ID != w.ConsentID || rc.Provider != "Alpen Versicherung AG" || !slices.Equal(got, slices.Sorted(slices.Values(sent))) ||
		rc.KeysNotRecorded == nil || rc.KeysNotRecorded.Deliveries != 1 {
		t.Errorf("data report consent: %+v", rc)
	}
	sentCSV, err := csv.NewReader(strings.NewReader(string(files["sent_keys.csv"]))).ReadAll()
	if err != nil || len(sentCSV) != 4 || sentCSV[3][3] != "" || sentCSV[3][4] != "keys not recorded" {
		t.Errorf("sent_keys.csv: %v %q", err, sentCSV)
	}
	html := string(files["report.html"])
	if !strings.Contains(html, "Data sent to Alpen Versicherung AG") || !strings.Contains(html, "keys not recorded") ||
		!strings.Contains(html, "<code>"+apiKeyMoving+"</code>") {
		t.Errorf("report.html lacks the sent keys")
	}
}

// pdfText inflates a PDF's content streams (fpdf compresses them) so that
// a test can look for the text drawn.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	var out strings.Builder
	for rest := pdf; ; {
		i := bytes.Index(rest, []byte("stream\n"))
		if i < 0 {
			break
		}
		rest = rest[i+len("stream\n"):]
		j := bytes.Index(rest, []byte("endstream"))
		if j < 0 {
			break
		}
		if zr, err := zlib.NewReader(bytes.NewReader(rest[:j])); err == nil {
			b, _ := io.ReadAll(zr)
			out.Write(b)
		}
		rest = rest[j:]
	}
	// Text operands are PDF strings: unescape the parentheses.
	return strings.NewReplacer(`\(`, "(", `\)`, ")").Replace(out.String())
}
