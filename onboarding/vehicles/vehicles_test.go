package vehicles_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"cardata/app/db/dbtest"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/errs"
)

var ctx = policies.WithPrincipal(context.Background(), policies.System("test"))

func newService(t *testing.T) *vehicles.Service {
	t.Helper()
	return &vehicles.Service{DB: dbtest.New(t)}
}

// vin builds a well-formed VIN from a prefix and a serial number.
func vin(prefix string, n int) string { return fmt.Sprintf("%s%0*d", prefix, 17-len(prefix), n) }

func mustVehicle(t *testing.T, s *vehicles.Service, in vehicles.NewVehicle) *vehicles.Vehicle {
	t.Helper()
	if in.Model == "" {
		in.Model = "test model"
	}
	if in.Drivetrain == "" {
		in.Drivetrain = "combustion"
	}
	v, err := s.RegisterVehicle(ctx, in)
	if err != nil {
		t.Fatalf("register %s: %v", in.VIN, err)
	}
	return v
}

func mustAccount(t *testing.T, s *vehicles.Service, email string) *vehicles.Account {
	t.Helper()
	a, err := s.CreateAccount(ctx, vehicles.NewAccount{Email: email, Name: "Test " + email})
	if err != nil {
		t.Fatalf("account %s: %v", email, err)
	}
	return a
}

func mustSubscribe(t *testing.T, s *vehicles.Service, vin, service string, start time.Time, end *time.Time) *vehicles.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctx, vin, vehicles.NewSubscription{Service: service, StartsAt: start, EndsAt: end})
	if err != nil {
		t.Fatalf("subscribe %s to %s: %v", vin, service, err)
	}
	return sub
}

func fieldCodes(err error) []string {
	var out []string
	if e := errs.As(err); e != nil {
		for _, f := range e.Fields {
			out = append(out, f.Field+":"+f.Code)
		}
	}
	return out
}

func TestValidateVIN(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"WBA11AA0X0DE12345":  "",
		"WMW11AA0X0DE12345":  "",
		"":                   "vin_required",
		"WBA11AA0X0DE1234":   "vin_length",
		"WBA11AA0X0DE123456": "vin_length",
		"WBA11AA0X0DE1234O":  "vin_characters", // letter O
		"WBA11AA0X0DE1234I":  "vin_characters",
		"WBA11AA0X0DE1234Q":  "vin_characters",
		"WBA11AA0X0DE1234-":  "vin_characters",
		"WBA11AA0X0DE1234ä":  "vin_length", // two bytes: 18
	}
	for in, want := range cases {
		var v errs.Validation
		vehicles.ValidateVIN(&v, "vin", in)
		got := ""
		if len(v.Fields) > 0 {
			got = v.Fields[0].Code
		}
		if got != want {
			t.Errorf("ValidateVIN(%q) = %q, want %q", in, got, want)
		}
	}
	if !vehicles.HasValidCheckDigit("1M8GDM9AXKP042788") {
		t.Error("the textbook VIN 1M8GDM9AXKP042788 has check digit X")
	}
	if vehicles.HasValidCheckDigit("1M8GDM9A1KP042788") {
		t.Error("a wrong check digit must be reported as such")
	}
	if policies.NormalizeVIN(" wba11aa0x0de12345 ") != "WBA11AA0X0DE12345" {
		t.Error("NormalizeVIN must trim and upper-case")
	}
}

func TestRegisterVehicle(t *testing.T) {
	t.Parallel()
	s := newService(t)
	v := mustVehicle(t, s, vehicles.NewVehicle{VIN: "wba11aa0x0de12345", Brand: "bmw", Model: "iX3", Drivetrain: "BEV", Market: "at",
		TelematicsCapable: true, SIMActive: true})
	if v.VIN != "WBA11AA0X0DE12345" || v.Brand != "BMW" || v.Market != "AT" || v.Drivetrain != "bev" {
		t.Fatalf("not normalized: %+v", v)
	}
	_, err := s.RegisterVehicle(ctx, vehicles.NewVehicle{VIN: "WBA11AA0X0DE12345", Brand: "BMW", Model: "X1", Drivetrain: "bev", Market: "DE"})
	if !errs.Is(err, "vin_exists") {
		t.Fatalf("duplicate VIN: got %v, want vin_exists", err)
	}
	_, err = s.RegisterVehicle(ctx, vehicles.NewVehicle{VIN: "WBAOOOOOOOOOOOOOO", Brand: "Audi", Drivetrain: "diesel", Market: "Austria"})
	got := fieldCodes(err)
	want := []string{"vin:vin_characters", "brand:brand_invalid", "model:model_required", "drivetrain:drivetrain_invalid", "market:market_invalid"}
	if !slices.Equal(got, want) {
		t.Fatalf("field errors %v, want %v", got, want)
	}
	if _, err := s.FindByVIN(ctx, "WBA11AA0X0DE99999"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown VIN: %v", err)
	}
	if _, err := s.FindByVIN(ctx, "short"); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("malformed VIN: %v", err)
	}
	if found, err := s.FindByVIN(ctx, " wba11aa0x0de12345"); err != nil || found.ID != v.ID {
		t.Fatalf("lookup by lower-case VIN: %v %v", found, err)
	}
}

func TestHolders(t *testing.T) {
	t.Parallel()
	s := newService(t)
	v := mustVehicle(t, s, vehicles.NewVehicle{VIN: vin("WBA", 1), Brand: "BMW", Market: "DE", TelematicsCapable: true})
	anna, ben, cleo := mustAccount(t, s, "anna@example.com"), mustAccount(t, s, "ben@example.com"), mustAccount(t, s, "cleo@example.com")
	if _, err := s.CreateAccount(ctx, vehicles.NewAccount{Email: "ANNA@example.com", Name: "Again"}); !errs.Is(err, "account_exists") {
		t.Fatalf("duplicate e-mail (other case): %v", err)
	}
	if err := s.AssignHolder(ctx, v.VIN, anna.ID, vehicles.RolePrimary); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignHolder(ctx, v.VIN, anna.ID, vehicles.RolePrimary); err != nil {
		t.Fatalf("repeating an assignment is a no-op: %v", err)
	}
	if err := s.AssignHolder(ctx, v.VIN, ben.ID, vehicles.RolePrimary); !errs.Is(err, "primary_holder_exists") {
		t.Fatalf("second primary: %v", err)
	}
	if err := s.AssignHolder(ctx, v.VIN, anna.ID, vehicles.RoleSecondary); !errs.Is(err, "holder_exists") {
		t.Fatalf("primary as secondary: %v", err)
	}
	for _, a := range []*vehicles.Account{ben, cleo} {
		if err := s.AssignHolder(ctx, v.VIN, a.ID, vehicles.RoleSecondary); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := s.Holders(ctx, v.ID)
	if err != nil || len(hs) != 3 || hs[0].Role != vehicles.RolePrimary || hs[0].Email != "anna@example.com" {
		t.Fatalf("holders = %+v, %v", hs, err)
	}
	if err := s.RemoveHolder(ctx, v.VIN, anna.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignHolder(ctx, v.VIN, ben.ID, vehicles.RolePrimary); !errs.Is(err, "holder_exists") {
		t.Fatalf("a secondary user must be removed before becoming primary: %v", err)
	}
	if err := s.AssignHolder(ctx, v.VIN, 999999, vehicles.RoleSecondary); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown account: %v", err)
	}
	if err := s.AssignHolder(ctx, v.VIN, cleo.ID, "owner"); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("bad role: %v", err)
	}
	own, err := s.VehiclesOfAccount(ctx, ben.ID)
	if err != nil || len(own) != 1 || own[0].VIN != v.VIN {
		t.Fatalf("vehicles of ben: %v %v", own, err)
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	s := newService(t)
	ice := mustVehicle(t, s, vehicles.NewVehicle{VIN: vin("WBA", 1), Brand: "BMW", Market: "DE", TelematicsCapable: true})
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	jul := jan.AddDate(0, 6, 0)
	first := mustSubscribe(t, s, ice.VIN, "remote_services", jan, &jul)
	if _, err := s.Subscribe(ctx, ice.VIN, vehicles.NewSubscription{Service: "remote_services", StartsAt: jan.AddDate(0, 3, 0)}); !errs.Is(err, "subscription_overlaps") {
		t.Fatalf("overlap: %v", err)
	}
	mustSubscribe(t, s, ice.VIN, "remote_services", jul, nil) // follows without a gap
	if _, err := s.Subscribe(ctx, ice.VIN, vehicles.NewSubscription{Service: "connected_charging", StartsAt: jan}); !slices.Equal(fieldCodes(err), []string{"service:service_not_applicable"}) {
		t.Fatalf("charging on a combustion car: %v", err)
	}
	if _, err := s.Subscribe(ctx, ice.VIN, vehicles.NewSubscription{Service: "premium", StartsAt: jan, EndsAt: &jan}); !slices.Equal(fieldCodes(err), []string{"service:service_unknown", "ends_at:ends_before_start"}) {
		t.Fatalf("bad subscription: %v", err)
	}
	if err := s.EndSubscription(ctx, first.ID, jul.AddDate(0, 1, 0)); !errs.Is(err, "subscription_not_running") {
		t.Fatalf("ending after its end: %v", err)
	}
	if err := s.EndSubscription(ctx, first.ID, jan.AddDate(0, 2, 0)); err != nil {
		t.Fatal(err)
	}
	subs, err := s.Subscriptions(ctx, ice.ID)
	if err != nil || len(subs) != 2 || subs[1].EndsAt == nil || !subs[1].EndsAt.Equal(jan.AddDate(0, 2, 0)) {
		t.Fatalf("subscriptions = %+v %v", subs, err)
	}
	if subs[1].State(jan.AddDate(0, 3, 0)) != "expired" || subs[0].State(jan) != "future" || subs[0].State(jul) != "active" {
		t.Fatal("subscription states are wrong")
	}
}

func keyCap(c *vehicles.Capabilities, key string) vehicles.KeyCapability {
	for _, k := range c.Keys {
		if k.Key == key {
			return k
		}
	}
	return vehicles.KeyCapability{Key: "missing " + key}
}

const (
	mileage  = "vehicle.vehicle.travelledDistance"
	latitude = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
	soc      = "vehicle.drivetrain.batteryManagement.header"
	fuel     = "vehicle.drivetrain.fuelSystem.level"
	trip     = "vehicle.trip.segment.end.travelledDistance"
)

func TestCapabilitiesEligibility(t *testing.T) {
	t.Parallel()
	s := newService(t)
	holder := mustAccount(t, s, "holder@example.com")
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		v       vehicles.NewVehicle
		mapped  bool
		reasons []string
	}{
		{"BMW in Austria", vehicles.NewVehicle{Brand: "BMW", Market: "AT", TelematicsCapable: true, SIMActive: true}, true, nil},
		{"BMW in Switzerland", vehicles.NewVehicle{Brand: "BMW", Market: "CH", TelematicsCapable: true, SIMActive: true}, true, nil},
		{"MINI in Germany", vehicles.NewVehicle{Brand: "MINI", Market: "DE", TelematicsCapable: true, SIMActive: true}, true, nil},
		{"MINI in Norway", vehicles.NewVehicle{Brand: "MINI", Market: "NO", TelematicsCapable: true, SIMActive: true}, true, []string{vehicles.ReasonMINIOutsideEU}},
		{"MINI in Switzerland", vehicles.NewVehicle{Brand: "MINI", Market: "CH", TelematicsCapable: true, SIMActive: true}, true, []string{vehicles.ReasonMINIOutsideEU}},
		{"MINI in the UK", vehicles.NewVehicle{Brand: "MINI", Market: "GB", TelematicsCapable: true, SIMActive: true}, true, []string{vehicles.ReasonMINIOutsideEU}},
		{"no telematics", vehicles.NewVehicle{Brand: "BMW", Market: "FR"}, true, []string{vehicles.ReasonNotTelematicsCapable}},
		{"unmapped", vehicles.NewVehicle{Brand: "BMW", Market: "IT", TelematicsCapable: true, SIMActive: true}, false, []string{vehicles.ReasonNotMapped}},
		{"BMW in Iceland", vehicles.NewVehicle{Brand: "BMW", Market: "IS", TelematicsCapable: true, SIMActive: true}, true, []string{vehicles.ReasonMarketNotSupported}},
		{"SIM inactive", vehicles.NewVehicle{Brand: "BMW", Market: "DE", TelematicsCapable: true}, true, []string{vehicles.ReasonSIMInactive}},
		{"MINI in the US, unmapped, no telematics", vehicles.NewVehicle{Brand: "MINI", Market: "US"}, false,
			[]string{vehicles.ReasonNotTelematicsCapable, vehicles.ReasonNotMapped, vehicles.ReasonMarketNotSupported, vehicles.ReasonMINIOutsideEU}},
	}
	for i, tc := range cases {
		tc.v.VIN = vin("WBA", i+1)
		v := mustVehicle(t, s, tc.v)
		if tc.mapped {
			if err := s.AssignHolder(ctx, v.VIN, holder.ID, vehicles.RolePrimary); err != nil {
				t.Fatal(err)
			}
		}
		mustSubscribe(t, s, v.VIN, "cd_basic", start, nil)
		c, err := s.Capabilities(ctx, v.VIN, start.AddDate(0, 1, 0))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Eligible != (len(tc.reasons) == 0) || !slices.Equal(c.Reasons, append([]string{}, tc.reasons...)) {
			t.Errorf("%s: eligible=%v reasons=%v, want reasons %v", tc.name, c.Eligible, c.Reasons, tc.reasons)
		}
		if got := keyCap(c, mileage).Available; got != c.Eligible {
			t.Errorf("%s: mileage available=%v, want %v (only eligible vehicles deliver)", tc.name, got, c.Eligible)
		}
		// Basic includes the (pushable) breakdown and emergency calls.
		if c.Eligible && !slices.Equal(c.DataDelivery, []string{"pull", "push"}) || !c.Eligible && len(c.DataDelivery) != 0 {
			t.Errorf("%s: dataDelivery %v", tc.name, c.DataDelivery)
		}
	}
	if _, err := s.Capabilities(ctx, vin("WBA", 99), start); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown VIN: %v", err)
	}
	if _, err := s.Capabilities(ctx, "WBA-TOO-SHORT", start); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("malformed VIN: %v", err)
	}
}

func TestCapabilitiesFollowSubscriptions(t *testing.T) {
	t.Parallel()
	s := newService(t)
	anna := mustAccount(t, s, "anna@example.com")
	phev := mustVehicle(t, s, vehicles.NewVehicle{VIN: vin("WBA", 7), Brand: "BMW", Market: "AT", Drivetrain: "phev", TelematicsCapable: true, SIMActive: true})
	if err := s.AssignHolder(ctx, phev.VIN, anna.ID, vehicles.RolePrimary); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	caps := func(at time.Time) *vehicles.Capabilities {
		t.Helper()
		c, err := s.Capabilities(ctx, phev.VIN, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Eligible, but nothing booked: no key is available.
	if c := caps(t0); !c.Eligible || c.AvailableKeys() != 0 || !slices.Equal(c.DataDelivery, []string{"pull"}) {
		t.Fatalf("nothing booked: eligible=%v available=%d delivery=%v", c.Eligible, c.AvailableKeys(), c.DataDelivery)
	}
	mustSubscribe(t, s, phev.VIN, "cd_basic", t0, nil)
	c := caps(t0)
	if k := keyCap(c, mileage); !k.Available || k.Frequency != "PT1H" || k.Push {
		t.Fatalf("mileage with Basic: %+v", k)
	}
	if keyCap(c, latitude).Available || keyCap(c, soc).Available {
		t.Fatal("position and charging need their own services")
	}
	// Remote Services booked from t0+1h for one day: the answer changes at its start and end.
	end := t0.Add(25 * time.Hour)
	mustSubscribe(t, s, phev.VIN, "remote_services", t0.Add(time.Hour), &end)
	if keyCap(caps(t0.Add(59*time.Minute)), latitude).Available {
		t.Fatal("position must not be available before Remote Services starts")
	}
	c = caps(t0.Add(time.Hour))
	if k := keyCap(c, latitude); !k.Available || k.Frequency != "PT5M" || !k.Push {
		t.Fatalf("position during Remote Services: %+v", k)
	}
	if !slices.Equal(c.DataDelivery, []string{"pull", "push"}) || len(c.Services) != 2 {
		t.Fatalf("delivery %v services %+v", c.DataDelivery, c.Services)
	}
	if keyCap(caps(end), latitude).Available {
		t.Fatal("position must end with the subscription (end is exclusive)")
	}
	// Drive train: a PHEV has fuel and battery keys.
	mustSubscribe(t, s, phev.VIN, "connected_charging", t0, nil)
	c = caps(t0)
	if !keyCap(c, soc).Available || !keyCap(c, fuel).Available {
		t.Fatal("a PHEV with Basic and Charging has fuel level and state of charge")
	}
	// The shortest frequency wins when two services enable a key.
	mustSubscribe(t, s, phev.VIN, "driving_analysis", t0, nil)
	c = caps(t0)
	if k := keyCap(c, "vehicle.vehicle.averageWeeklyDistanceLongTerm"); k.Frequency != "P1D" {
		t.Fatalf("weekly distance: %+v", k)
	}
	if k := keyCap(c, trip); !k.Available || k.Frequency != "event" || !k.Push {
		t.Fatalf("trip end with Driving Analysis: %+v", k)
	}
	if k := keyCap(c, "vehicle.vehicle.speed"); k.Frequency != "PT1M" {
		t.Fatalf("speed: Basic gives hourly, Driving Analysis every minute; got %+v", k)
	}
	if len(c.Keys) < 80 {
		t.Fatalf("every catalog key is listed, got %d", len(c.Keys))
	}
}

func TestCapabilitiesDrivetrain(t *testing.T) {
	t.Parallel()
	s := newService(t)
	a := mustAccount(t, s, "e@example.com")
	bev := mustVehicle(t, s, vehicles.NewVehicle{VIN: vin("WBY", 1), Brand: "BMW", Market: "DE", Drivetrain: "bev", TelematicsCapable: true, SIMActive: true})
	if err := s.AssignHolder(ctx, bev.VIN, a.ID, vehicles.RolePrimary); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mustSubscribe(t, s, bev.VIN, "cd_basic", t0, nil)
	mustSubscribe(t, s, bev.VIN, "connected_charging", t0, nil)
	c, err := s.Capabilities(ctx, bev.VIN, t0)
	if err != nil {
		t.Fatal(err)
	}
	if keyCap(c, fuel).Available || !keyCap(c, soc).Available {
		t.Fatal("a BEV has a battery, not a fuel tank")
	}
}

func TestImportFleet(t *testing.T) {
	t.Parallel()
	s := newService(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	end := t0.AddDate(1, 0, 0)
	fleet := []vehicles.FleetVehicle{
		{NewVehicle: vehicles.NewVehicle{VIN: vin("WBA", 1), Brand: "BMW", Model: "320d", Drivetrain: "combustion", Market: "DE", TelematicsCapable: true, SIMActive: true},
			HolderEmail: "a@example.com", HolderName: "A", Subscriptions: []vehicles.NewSubscription{{Service: "cd_basic", StartsAt: t0}, {Service: "remote_services", StartsAt: t0, EndsAt: &end}}},
		{NewVehicle: vehicles.NewVehicle{VIN: vin("WMW", 2), Brand: "MINI", Model: "Cooper SE", Drivetrain: "bev", Market: "NL", TelematicsCapable: true, SIMActive: true},
			HolderEmail: "a@example.com", HolderName: "A"},
		{NewVehicle: vehicles.NewVehicle{VIN: vin("WBA", 3), Brand: "BMW", Model: "X5", Drivetrain: "phev", Market: "SE"}},
	}
	res, err := s.ImportFleet(ctx, fleet)
	if err != nil || res != (vehicles.ImportResult{Vehicles: 3, Accounts: 1, Subscriptions: 2}) {
		t.Fatalf("import = %+v, %v", res, err)
	}
	res, err = s.ImportFleet(ctx, fleet)
	if err != nil || res != (vehicles.ImportResult{}) {
		t.Fatalf("re-import must create nothing: %+v, %v", res, err)
	}
	c, err := s.Capabilities(ctx, vin("WBA", 1), t0)
	if err != nil || !c.Eligible || !keyCap(c, latitude).Available {
		t.Fatalf("imported vehicle: %+v %v", c, err)
	}
	if c, _ := s.Capabilities(ctx, vin("WBA", 3), t0); c.Eligible {
		t.Fatal("the third vehicle is neither mapped nor capable")
	}
	bad := []vehicles.FleetVehicle{{NewVehicle: vehicles.NewVehicle{VIN: "BAD", Brand: "BMW", Model: "x", Drivetrain: "bev", Market: "DE"}}}
	if _, err := s.ImportFleet(ctx, bad); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("bad VIN in import: %v", err)
	}
	list, total, err := s.Search(ctx, vehicles.Filter{Query: "a@example"})
	if err != nil || total != 2 || len(list) != 2 {
		t.Fatalf("search by holder e-mail: %d %v", total, err)
	}
	if _, total, _ := s.Search(ctx, vehicles.Filter{Query: "wmw"}); total != 1 {
		t.Fatalf("search by VIN prefix: %d", total)
	}
	if _, total, _ := s.Search(ctx, vehicles.Filter{Brand: "BMW", Market: "se"}); total != 1 {
		t.Fatalf("filter by brand and market: %d", total)
	}
}
