package e2e

import (
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// The coverage report counts, per market, the vehicles CarData can serve.
func TestCoverageCountsEligibleVehicles(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	veh := tt.App.Vehicles
	acc, err := veh.CreateAccount(tt.Ctx, vehicles.NewAccount{Email: "anna@test.local", Name: "Anna"})
	if err != nil {
		t.Fatal(err)
	}
	add := func(vin, brand, market string, capable, mapped bool) {
		t.Helper()
		if _, err := veh.RegisterVehicle(tt.Ctx, vehicles.NewVehicle{VIN: vin, Brand: brand, Model: "X", Drivetrain: "combustion",
			Market: market, TelematicsCapable: capable, SIMActive: capable}); err != nil {
			t.Fatal(err)
		}
		if mapped {
			if err := veh.AssignHolder(tt.Ctx, vin, acc.ID, vehicles.RolePrimary); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("WBA00000000000001", "BMW", "AT", true, true)  // eligible
	add("WBA00000000000002", "BMW", "AT", false, true) // not telematics capable
	add("WBA00000000000003", "BMW", "AT", true, false) // not mapped
	add("WMW00000000000004", "MINI", "AT", true, true) // MINI in the EU: eligible
	add("WMW00000000000005", "MINI", "CH", true, true) // MINI outside the EU: not
	add("WBA00000000000006", "BMW", "CH", true, true)  // BMW in CH: eligible
	csv := tt.LoginStaff(t, "pm@test.local").Get("/admin/coverage/export.csv").Body
	for _, want := range []string{"\nAT,Austria,active,0,0,2,", "\nCH,Switzerland,active,0,0,1,", "\nDE,Germany,active,0,0,0,"} {
		if !strings.Contains(csv, want) {
			t.Errorf("coverage CSV lacks %q:\n%s", want, csv)
		}
	}
}
