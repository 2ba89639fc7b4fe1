package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"cardata/app/providerapi/client"
	"cardata/billing/billingtest"
	"cardata/onboarding/vehicles"
)

// A consent request for a vehicle that can never deliver is refused with
// the capability service's reason codes: MINIs outside the EU, no
// telematics unit, SIM inactive, no customer account, and no connected
// service that enables any key of the container.
func TestConsentRequestRefusedForIneligibleVehicles(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	v := w.approvedContainer(t, "Mileage", csMileage, csWeekly)

	register := func(nv vehicles.NewVehicle, holder int64, service string) string {
		t.Helper()
		nv.VIN, nv.Model, nv.Drivetrain = csVIN(), "Test", "combustion"
		if nv.Brand == "MINI" {
			nv.VIN = "WMW" + nv.VIN[3:]
		}
		if _, err := w.veh.RegisterVehicle(w.tt.Ctx, nv); err != nil {
			t.Fatal(err)
		}
		if holder != 0 {
			if err := w.veh.AssignHolder(w.tt.Ctx, nv.VIN, holder, vehicles.RolePrimary); err != nil {
				t.Fatal(err)
			}
		}
		if service != "" {
			if _, err := w.veh.Subscribe(w.tt.Ctx, nv.VIN, vehicles.NewSubscription{Service: service, StartsAt: time.Now().AddDate(-1, 0, 0)}); err != nil {
				t.Fatal(err)
			}
		}
		return nv.VIN
	}
	cases := []struct {
		name    string
		vin     string
		reasons []string
	}{
		{"MINI in CH", w.vehicle(t, "MINI", "CH", true, anna), []string{vehicles.ReasonMINIOutsideEU}},
		{"MINI in NO", w.vehicle(t, "MINI", "NO", true, anna), []string{vehicles.ReasonMINIOutsideEU}},
		{"MINI in GB", w.vehicle(t, "MINI", "GB", true, anna), []string{vehicles.ReasonMINIOutsideEU}},
		{"MINI in LI", w.vehicle(t, "MINI", "LI", true, anna), []string{vehicles.ReasonMINIOutsideEU}},
		{"not telematics-capable", w.vehicle(t, "BMW", "DE", false, anna), []string{vehicles.ReasonNotTelematicsCapable}},
		{"SIM inactive", register(vehicles.NewVehicle{Brand: "BMW", Market: "DE", TelematicsCapable: true}, anna, "cd_basic"),
			[]string{vehicles.ReasonSIMInactive}},
		{"no customer account", w.vehicle(t, "BMW", "DE", true, 0), []string{vehicles.ReasonNotMapped}},
		{"no connected service", register(vehicles.NewVehicle{Brand: "BMW", Market: "DE", TelematicsCapable: true, SIMActive: true}, anna, ""),
			[]string{vehicles.ReasonNoServiceForKeys}},
		// Remote services enable no key of a mileage container.
		{"no service for the container's keys", register(vehicles.NewVehicle{Brand: "BMW", Market: "DE", TelematicsCapable: true, SIMActive: true}, anna, "remote_services"),
			[]string{vehicles.ReasonNoServiceForKeys}},
	}
	for _, tc := range cases {
		r := call(w.gen.RequestConsentWithResponse(t.Context(), nil, client.NewConsentRequest{Vin: tc.vin, ContainerId: int(v.ContainerID)})).must(t)
		res := struct {
			Status int
			Header http.Header
			Body   string
		}{r.StatusCode(), r.HTTPResponse.Header, string(r.Body)}
		p := csProblem(t, res.Body)
		var got []string
		for _, e := range p.Errors {
			if e.Field != "vin" || e.Message == "" {
				t.Errorf("%s: reason without a field or text: %+v", tc.name, e)
			}
			got = append(got, e.Code)
		}
		if res.Status != http.StatusUnprocessableEntity || p.Code != "vehicle_not_eligible" || !slices.Equal(got, tc.reasons) ||
			res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s", tc.name, res.Status, res.Header.Get("Content-Type"), res.Body)
		}
	}
	var n int64
	w.tt.DB.Raw("SELECT count(*) FROM consents WHERE provider_id = ?", w.pid).Scan(&n)
	if n != 0 {
		t.Fatalf("%d consent requests were stored for ineligible vehicles", n)
	}
	// An eligible vehicle still can be asked for.
	ok := w.vehicle(t, "MINI", "AT", true, anna)
	if res := call(w.gen.RequestConsentWithResponse(t.Context(), nil, client.NewConsentRequest{Vin: ok, ContainerId: int(v.ContainerID)})).must(t); res.JSON201 == nil {
		t.Fatalf("MINI in AT: %d %s", res.StatusCode(), res.Body)
	}
}

// The capability service reports an inactive SIM: not eligible, the
// reason named, no key available.
func TestCapabilitiesReportSIMState(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	caps := func() *client.Capabilities {
		t.Helper()
		res := call(w.gen.GetCapabilitiesWithResponse(t.Context(), vin)).must(t)
		if res.JSON200 == nil {
			t.Fatalf("capabilities: %d %s", res.StatusCode(), res.Body)
		}
		return res.JSON200
	}
	available := func(c *client.Capabilities) (n int) {
		for _, k := range c.Keys {
			if k.Available {
				n++
			}
		}
		return n
	}
	reasons := func(c *client.Capabilities) (out []string) {
		for _, r := range c.Reasons {
			out = append(out, string(r))
		}
		return out
	}
	if c := caps(); !c.Eligible || !c.SimActive || len(c.Reasons) != 0 || available(c) == 0 {
		t.Fatalf("SIM active: %+v", c)
	}
	w.tt.DB.Exec("UPDATE vehicles SET sim_active = false WHERE vin = ?", vin)
	if c := caps(); c.Eligible || c.SimActive || !slices.Equal(reasons(c), []string{vehicles.ReasonSIMInactive}) || available(c) != 0 {
		t.Fatalf("SIM inactive: eligible=%v sim=%v reasons=%v available=%d", c.Eligible, c.SimActive, c.Reasons, available(c))
	}
}

// A consent whose vehicle becomes ineligible later stays granted, but reads
// answer with the reason, and the customer's /my says why no data flows.
func TestIneligibleLaterConsentStaysGrantedButReadsAnswerWhy(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Mileage", csMileage)
	k := w.granted(t, vin, v.ContainerID, anna)
	apiIngest(t, w.tt, vin, csMileage, "12345", time.Now().Add(-time.Minute))
	read := func() *client.GetTelematicDataResponse {
		return call(w.gen.GetTelematicDataWithResponse(t.Context(), vin, &client.GetTelematicDataParams{ContainerId: int(v.ContainerID)})).must(t)
	}
	if res := read(); res.JSON200 == nil {
		t.Fatalf("read while eligible: %d %s", res.StatusCode(), res.Body)
	}
	c := w.loginCustomer(t, "anna@test.local")
	if home := c.Get("/my"); home.Status != http.StatusOK || strings.Contains(home.Body, "no-data-"+vin) {
		t.Fatalf("/my while eligible: %d", home.Status)
	}

	w.tt.DB.Exec("UPDATE vehicles SET sim_active = false WHERE vin = ?", vin)
	res := read()
	if res.StatusCode() != http.StatusForbidden || apiProblem(res.Body) != "vehicle_sim_inactive" {
		t.Fatalf("read with the SIM off: %d %s", res.StatusCode(), res.Body)
	}
	if d := w.decide(t, vin, v.ContainerID); d != "vehicle_sim_inactive" {
		t.Fatalf("the general path decides %s", d)
	}
	var state string
	w.tt.DB.Raw("SELECT state FROM consents WHERE id = ?", k.ID).Scan(&state)
	if state != "granted" {
		t.Fatalf("the consent is %s", state)
	}
	home := c.Get("/my")
	csContains(t, home.Body, `id="no-data-`+vin+`"`, `data-reason="sim_inactive"`, "SIM is inactive",
		"Your consents below stay in force", fmt.Sprintf(`data-consent="%d"`, k.ID))
	if ledger := billingtest.CountRecords(t, w.tt.DB, billingtest.RecordFilter{ConsentID: k.ID}); ledger != 1 {
		t.Fatalf("ledger rows: %d (only the read while eligible)", ledger)
	}
}
