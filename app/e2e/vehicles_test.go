package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/app/providerapi/client"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

func TestCatalogAPIAndTable(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	api := apiGenOver(t, apiInProcessClient(t, tt)) // public: no token
	res := call(api.GetCatalogWithResponse(t.Context(), &client.GetCatalogParams{Lang: ptr(client.De)})).must(t)
	var doc struct {
		Count int
		Keys  []struct {
			Key, Type, Unit, Category, Sensitivity, Description, En, De string
			Values                                                      []string
			Pushable, Sensitive                                         bool
		}
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil || res.JSON200 == nil || doc.Count < 80 || len(doc.Keys) != doc.Count {
		t.Fatalf("catalog: %d, %d keys", res.StatusCode(), doc.Count)
	}
	found := false
	for _, k := range doc.Keys {
		if k.Key == keyLat {
			found = k.Sensitive && k.Sensitivity == "location" && k.Pushable && k.Description == k.De && k.En != "" && k.Unit == "°"
		}
	}
	if !found {
		t.Fatal("latitude is missing or incomplete in the catalog API")
	}
	res = call(api.GetCatalogWithResponse(t.Context(), &client.GetCatalogParams{Category: ptr("electric")})).must(t)
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range doc.Keys {
		if k.Category != "electric" {
			t.Fatalf("category filter let %s (%s) through", k.Key, k.Category)
		}
	}
	// The table SQL joins on matches the embedded file, key for key.
	var rows []struct {
		ID       int16
		Key      string
		DataType string
		Pushable bool
	}
	if err := tt.DB.Raw("SELECT id, key, data_type, pushable FROM catalog_keys WHERE NOT retired ORDER BY id").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	cat := catalog.Default()
	if len(rows) != cat.Len() {
		t.Fatalf("catalog_keys has %d rows, the file %d keys", len(rows), cat.Len())
	}
	for i, k := range cat.Keys() {
		if r := rows[i]; r.ID != k.ID || r.Key != k.Name || r.DataType != string(k.Type) || r.Pushable != k.Pushable {
			t.Fatalf("catalog_keys row %+v differs from %s", r, k.Name)
		}
	}
}

func TestVehicleAndCatalogPagesByRole(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	v, err := tt.App.Vehicles.RegisterVehicle(tt.Ctx, vehicles.NewVehicle{VIN: "WBA11AA0X0F000001", Brand: "BMW", Model: "iX3",
		Drivetrain: "bev", Market: "AT", TelematicsCapable: true, SIMActive: true})
	if err != nil {
		t.Fatal(err)
	}
	vehicleAllowed := map[string]bool{"partner_manager": true, "support": true, "admin": true, "auditor": true}
	for _, role := range policies.StaffRoles {
		tt.MustCreateStaff(t, role+"@test.local", role)
		c := tt.LoginStaff(t, role+"@test.local")
		if res := c.Get("/admin/catalog"); res.Status != 200 || !strings.Contains(res.Body, keyMileage) {
			t.Errorf("%s: catalog page %d", role, res.Status)
		}
		for _, path := range []string{"/admin/vehicles", "/admin/vehicles/" + v.VIN} {
			res := c.Get(path)
			if want := map[bool]int{true: 200, false: 403}[vehicleAllowed[role]]; res.Status != want {
				t.Errorf("%s: GET %s = %d, want %d", role, path, res.Status, want)
			}
		}
	}
	if res := tt.Client(t).Get("/admin/vehicles"); res.Status != http.StatusSeeOther {
		t.Fatalf("anonymous: %d", res.Status)
	}
}

func TestVehiclePages(t *testing.T) {
	t.Parallel()
	e := newIngestEnv(t, 0)
	tt := e.tt
	svc := tt.App.Vehicles
	mustReg := func(in vehicles.NewVehicle) *vehicles.Vehicle {
		v, err := svc.RegisterVehicle(tt.Ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	bmw := mustReg(vehicles.NewVehicle{VIN: "WBA11AA0X0F000001", Brand: "BMW", Model: "X1 xDrive25e", Drivetrain: "phev", Market: "AT", TelematicsCapable: true, SIMActive: true})
	mini := mustReg(vehicles.NewVehicle{VIN: "WMW11AA0X0F000002", Brand: "MINI", Model: "Cooper", Drivetrain: "combustion", Market: "CH", TelematicsCapable: true, SIMActive: true})
	anna, err := svc.CreateAccount(tt.Ctx, vehicles.NewAccount{Email: "anna@example.com", Name: "Anna Berger"})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*vehicles.Vehicle{bmw, mini} {
		if err := svc.AssignHolder(tt.Ctx, v.VIN, anna.ID, vehicles.RolePrimary); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if _, err := svc.Subscribe(tt.Ctx, bmw.VIN, vehicles.NewSubscription{Service: "remote_services", StartsAt: now.AddDate(0, -1, 0)}); err != nil {
		t.Fatal(err)
	}
	e.post(t, "application/json", batch(signalJSON(bmw.VIN, keyMileage, "4711", now.Add(-time.Minute)),
		signalJSON(bmw.VIN, keyLat, "47.26912", now.Add(-time.Minute))))

	tt.MustCreateStaff(t, "support@test.local", policies.RoleSupport)
	c := tt.LoginStaff(t, "support@test.local")
	// A full VIN (any case) jumps to the vehicle; a partial one lists matches.
	if res := c.Get("/admin/vehicles?q=" + strings.ToLower(bmw.VIN)); res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin/vehicles/"+bmw.VIN {
		t.Fatalf("VIN search: %d %s", res.Status, res.Header.Get("Location"))
	}
	res := c.Get("/admin/vehicles?q=anna@")
	if res.Status != 200 || !strings.Contains(res.Body, bmw.VIN) || !strings.Contains(res.Body, mini.VIN) {
		t.Fatalf("search by holder: %d", res.Status)
	}
	res = c.Get("/admin/vehicles/" + bmw.VIN)
	for _, want := range []string{"eligible", "Anna Berger", "primary holder", "Remote Services", "4711", keyLat, "hidden (location)", "every 5 minutes"} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("vehicle page lacks %q", want)
		}
	}
	if strings.Contains(res.Body, "47.26912") {
		t.Error("the vehicle page shows a position to staff")
	}
	res = c.Get("/admin/vehicles/" + mini.VIN)
	if !strings.Contains(res.Body, "not eligible") || !strings.Contains(res.Body, "MINI vehicles only when registered in the EU") {
		t.Error("the MINI in Switzerland must show as not eligible, with the reason")
	}
	// Before the subscription started, the capabilities differ.
	res = c.Get("/admin/vehicles/" + bmw.VIN + "?at=" + now.AddDate(0, -2, 0).In(tt.App.View.Location).Format("2006-01-02T15:04"))
	if res.Status != 200 || !strings.Contains(res.Body, "<strong>0</strong> keys available") {
		t.Errorf("capabilities two months ago: %d", res.Status)
	}
	if res := c.Get("/admin/vehicles/NOT-A-VIN"); res.Status != 404 {
		t.Errorf("malformed VIN page: %d", res.Status)
	}
	if res := c.Get("/admin/vehicles/WBA11AA0X0F999999"); res.Status != 404 {
		t.Errorf("unknown VIN page: %d", res.Status)
	}
	if res := c.Get("/admin/vehicles/" + bmw.VIN + "?at=yesterday"); res.Status != 400 {
		t.Errorf("bad time: %d", res.Status)
	}
}

func TestVehicleDemo(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	var out bytes.Buffer
	if err := demo.Vehicles(tt.Ctx, tt.App.Services, &out); err != nil {
		t.Fatal(err)
	}
	if err := demo.Vehicles(tt.Ctx, tt.App.Services, io.Discard); err != nil {
		t.Fatalf("second run: %v", err)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM vehicles").Scan(&n)
	if n != demo.FleetSize {
		t.Fatalf("%d vehicles after two runs, want %d", n, demo.FleetSize)
	}
	svc := tt.App.Vehicles
	now := time.Now()
	c, err := svc.Capabilities(tt.Ctx, demo.AnnaVIN, now)
	if err != nil {
		t.Fatal(err)
	}
	avail := map[string]bool{}
	for _, k := range c.Keys {
		avail[k.Key] = k.Available
	}
	if !c.Eligible || c.Brand != "BMW" || c.Market != "AT" || !avail[keyMileage] || !avail[keyLat] {
		t.Fatalf("Anna's BMW: %+v", c)
	}
	if avail["vehicle.trip.segment.end.travelledDistance"] || avail["vehicle.drivetrain.batteryManagement.header"] {
		t.Fatal("Driving Analysis expired and Connected Charging has not started yet")
	}
	if c, _ := svc.Capabilities(tt.Ctx, demo.AnnaVIN, now.AddDate(0, 1, 1)); !capAvailable(c, "vehicle.drivetrain.batteryManagement.header") {
		t.Fatal("next month Connected Charging runs")
	}
	for vin, reason := range map[string]string{demo.MININorway: vehicles.ReasonMINIOutsideEU, demo.MINISwitz: vehicles.ReasonMINIOutsideEU,
		demo.NoTelematics: vehicles.ReasonNotTelematicsCapable, demo.Unmapped: vehicles.ReasonNotMapped} {
		c, err := svc.Capabilities(tt.Ctx, vin, now)
		if err != nil || c.Eligible || c.Reasons[0] != reason {
			t.Errorf("%s: %+v %v, want reason %s", vin, c, err, reason)
		}
	}
	anna, _ := svc.FindByVIN(tt.Ctx, demo.AnnaVIN)
	latest, err := svc.LatestValues(tt.Ctx, anna.ID)
	if err != nil || len(latest) < 8 {
		t.Fatalf("Anna's latest values: %d %v", len(latest), err)
	}
	var readings int64
	tt.DB.Raw("SELECT count(*) FROM vehicle_readings").Scan(&readings)
	if readings < 1000 {
		t.Fatalf("only %d demo readings", readings)
	}
	// The documented demo token works.
	req := httptest.NewRequest(http.MethodPost, "/ingest/v1/signals", strings.NewReader(string(batch(signalJSON(demo.AnnaVIN, keyMileage, "99999", now)))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+demo.IngestToken)
	if res := tt.Client(t).Do(req); res.Status != 200 || !strings.Contains(res.Body, `"accepted":1`) {
		t.Fatalf("demo token: %d %s", res.Status, res.Body)
	}
}

func capAvailable(c *vehicles.Capabilities, key string) bool {
	for _, k := range c.Keys {
		if k.Key == key {
			return k.Available
		}
	}
	return false
}
