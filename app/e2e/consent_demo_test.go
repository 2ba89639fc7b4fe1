package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/billing/billingtest"
)

// The demo leaves containers in every state, customer1 with consents in
// every state, the demo insurer with at least 100 granted consents, and
// customers who can sign in to /my; a second run changes nothing.
func TestConsentDemoIsCompleteAndIdempotent(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	if err := demo.Load(tt.Ctx, tt.App.Services, io.Discard); err != nil {
		t.Fatal(err)
	}
	count := func(q string, args ...any) int64 {
		var n int64
		if err := tt.DB.Raw(q, args...).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count("SELECT count(*) FROM consents") + 1000*count("SELECT count(*) FROM container_versions")
	for _, s := range []string{"draft", "submitted", "approved", "rejected", "deprecated", "withdrawn"} {
		if count("SELECT count(*) FROM container_versions WHERE state = ?", s) == 0 {
			t.Errorf("no container version is %s", s)
		}
	}
	if count("SELECT count(*) FROM container_versions WHERE sensitive AND state = 'approved'") == 0 {
		t.Error("no approved sensitive container")
	}
	for _, s := range []string{"requested", "granted", "denied", "revoked", "expired"} {
		if count(`SELECT count(*) FROM consents c JOIN customer_accounts a ON a.id = c.account_id WHERE a.email = ? AND c.state = ?`,
			demo.Customer1Email, s) == 0 {
			t.Errorf("customer1 has no %s consent", s)
		}
	}
	insurer := count(`SELECT count(DISTINCT c.vehicle_id) FROM consents c JOIN providers p ON p.id = c.provider_id
		WHERE p.legal_name = 'Demo Insurance AG' AND c.state = 'granted'`)
	if insurer < 100 {
		t.Errorf("the demo insurer holds granted consents for %d vehicles", insurer)
	}
	if billingtest.CountRecords(t, tt.DB, billingtest.RecordFilter{RequestIDPrefix: "demo-consent-"}) == 0 {
		t.Error("no demo transfers for the transaction reports")
	}
	// The demo passes the product's own rules: nothing is asked for, nor
	// billed, for a vehicle that cannot deliver.
	ineligible := `(NOT v.telematics_capable OR NOT v.sim_active OR (v.brand = 'MINI' AND v.market IN ('CH','NO','GB','LI'))
		OR NOT EXISTS (SELECT 1 FROM vehicle_holders h WHERE h.vehicle_id = v.id AND h.role = 'primary'))`
	if n := count("SELECT count(*) FROM consents c JOIN vehicles v ON v.id = c.vehicle_id WHERE " + ineligible); n != 0 {
		t.Errorf("%d demo consents for ineligible vehicles", n)
	}
	var ineligibleVINs []string
	if err := tt.DB.Raw("SELECT v.vin FROM vehicles v WHERE " + ineligible).Scan(&ineligibleVINs).Error; err != nil {
		t.Fatal(err)
	}
	if len(ineligibleVINs) > 0 {
		if n := billingtest.CountRecords(t, tt.DB, billingtest.RecordFilter{VINs: ineligibleVINs}); n != 0 {
			t.Errorf("%d demo ledger rows for ineligible vehicles", n)
		}
	}
	c := tt.Client(t)
	res := c.PostForm("/my/login", url.Values{"email": {demo.Customer1Email}, "password": {demo.Password}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("customer1 sign-in: %d", res.Status)
	}
	if home := c.Get("/my"); !strings.Contains(home.Body, "Pay-as-you-drive") || !strings.Contains(home.Body, "Mileage check") {
		t.Fatalf("customer1's page lacks the demo consents")
	}
	if home := c.Get("/my"); !strings.Contains(home.Body, `id="no-data-`+demo.MININorway+`"`) || !strings.Contains(home.Body, `data-reason="mini_outside_eu"`) {
		t.Fatalf("customer1's page does not say why the MINI in Norway sends nothing")
	}

	if err := demo.Load(tt.Ctx, tt.App.Services, io.Discard); err != nil {
		t.Fatal(err)
	}
	after := count("SELECT count(*) FROM consents") + 1000*count("SELECT count(*) FROM container_versions")
	if after != before {
		t.Fatalf("second demo run changed the data: %d -> %d", before, after)
	}
}
