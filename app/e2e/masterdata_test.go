package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"cardata/app/apptest"
	"cardata/app/ingest"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// mdEnv is a booted app with a provider API world (a consented vehicle in
// AT), a master-data client and the provider's API client.
type mdEnv struct {
	tt    *apptest.T
	w     *apiWorld
	md    *apptest.Client // authenticated with the master-data token
	api   *http.Client
	oa    validator.Validator
	token string
}

func newMDEnv(t *testing.T, name, vat string) *mdEnv {
	t.Helper()
	tt := apptest.New(t)
	e := &mdEnv{tt: tt, w: mustAPIWorld(t, tt, name, "AT", vat)}
	e.api = apiClient(t, tt, e.w)
	_, token, err := tt.App.Ingest.CreateMasterDataClient(tt.Ctx, "oem-vehicle-systems")
	if err != nil {
		t.Fatal(err)
	}
	e.token = token
	e.md = tt.Client(t)
	e.md.Header.Set("Authorization", "Bearer "+token)
	e.oa = mdOpenAPIValidator(t)
	return e
}

// mdOpenAPIValidator builds the checker of real answers against the
// published master-data document, after checking that it can fail.
func mdOpenAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(ingest.MasterDataOpenAPI)
	if err != nil {
		t.Fatalf("masterdata_openapi.json: %v", err)
	}
	v, verrs := validator.NewValidator(doc)
	if len(verrs) > 0 {
		t.Fatalf("masterdata_openapi.json: %v", verrs)
	}
	if ok, derrs := v.ValidateDocument(); !ok {
		for _, e := range derrs {
			t.Errorf("masterdata_openapi.json invalid: %s %s", e.Message, e.Reason)
		}
	}
	res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"result":"created"}`))}
	if ok, _ := v.ValidateHttpResponse(httptest.NewRequest("PUT", "/ingest/v1/vehicles/WBA00000000000001", nil), res); ok {
		t.Fatal("the OpenAPI checker accepted an answer that breaks the document")
	}
	return v
}

// send sends a master-data request and checks the answer against the document.
func (e *mdEnv) send(t *testing.T, c *apptest.Client, method, path, contentType, body string) *apptest.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res := c.Do(req)
	if res.Status >= 500 {
		t.Fatalf("%s %s: %d (never a server error): %s", method, path, res.Status, res.Body)
	}
	r := &http.Response{StatusCode: res.Status, Header: res.Header, Body: io.NopCloser(strings.NewReader(res.Body))}
	if ok, verrs := e.oa.ValidateHttpResponse(httptest.NewRequest(method, path, nil), r); !ok {
		for _, ve := range verrs {
			t.Errorf("%s %s -> %d does not match the OpenAPI document: %s (%s) %v", method, path, res.Status, ve.Message, ve.Reason, ve.SchemaValidationErrors)
		}
	}
	return res
}

func (e *mdEnv) json(t *testing.T, method, path, body string) *apptest.Response {
	t.Helper()
	return e.send(t, e.md, method, path, "application/json", body)
}

// caps asks the provider API's capability service.
func (e *mdEnv) caps(t *testing.T, vin string) (int, vehicles.Capabilities) {
	t.Helper()
	res := call(apiGenOver(t, e.api).GetCapabilitiesWithResponse(t.Context(), vin)).must(t)
	var c vehicles.Capabilities
	if res.JSON200 != nil {
		if err := json.Unmarshal(res.Body, &c); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode(), c
}

func keyAvailable(c vehicles.Capabilities, key string) bool {
	for _, k := range c.Keys {
		if k.Key == key {
			return k.Available
		}
	}
	return false
}

func mdHistory(t *testing.T, tt *apptest.T, vin string) []vehicles.Change {
	t.Helper()
	var out []vehicles.Change
	err := tt.DB.Where("vehicle_id = (SELECT id FROM vehicles WHERE vin = ?)", vin).Order("id").Find(&out).Error
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func vehicleJSON(market string, sim bool) string {
	return fmt.Sprintf(`{"brand":"BMW","model":"iX1 xDrive30","drivetrain":"bev","market":%q,"telematicsCapable":true,"simActive":%t}`, market, sim)
}

// A vehicle sold today, registered through the API, is in the capability
// service's answer at once; its SIM state, holder and bookings follow each
// change at once too.
func TestMasterDataChangesShowInCapabilitiesAtOnce(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "Master Data Versicherung AG", "ATU13585627")
	vin := apiTestVIN()
	base := "/ingest/v1/vehicles/" + vin

	if status, _ := e.caps(t, vin); status != http.StatusNotFound {
		t.Fatalf("capabilities of an unregistered VIN: %d", status)
	}
	res := e.json(t, "PUT", base, vehicleJSON("AT", true))
	if res.Status != http.StatusCreated || !strings.Contains(res.Body, `"result":"created"`) {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	status, c := e.caps(t, vin)
	if status != 200 || c.Eligible || !slices.Equal(c.Reasons, []string{vehicles.ReasonNotMapped}) {
		t.Fatalf("registered, no holder yet: %d %+v", status, c.Reasons)
	}
	res = e.json(t, "PUT", base+"/holders", `{"primary":{"email":"new.owner@example.com","name":"Nina Neu"},"secondary":[{"email":"partner@example.com","name":"Paul"}]}`)
	if res.Status != 200 || !strings.Contains(res.Body, `"accountsCreated":2`) || !strings.Contains(res.Body, `"ownerChanged":false`) {
		t.Fatalf("holders: %d %s", res.Status, res.Body)
	}
	if _, c = e.caps(t, vin); !c.Eligible || c.AvailableKeys() != 0 {
		t.Fatalf("mapped, nothing booked: eligible %v, %d keys", c.Eligible, c.AvailableKeys())
	}

	// Book a connected service: its keys are available at once.
	var key string
	for k := range vehicles.ServiceKeys("connected_charging") {
		key = k
		break
	}
	start := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	booking := fmt.Sprintf(`{"ref":"SO-4711","service":"connected_charging","startsAt":%q}`, start.Format(time.RFC3339))
	res = e.json(t, "POST", base+"/subscriptions", booking)
	if res.Status != http.StatusCreated {
		t.Fatalf("book: %d %s", res.Status, res.Body)
	}
	if _, c = e.caps(t, vin); !keyAvailable(c, key) || len(c.Services) != 1 {
		t.Fatalf("booked: %s not available: %+v", key, c.Services)
	}
	// The same booking again changes nothing; another service under its ref is refused.
	if res = e.json(t, "POST", base+"/subscriptions", booking); res.Status != 200 || !strings.Contains(res.Body, `"result":"unchanged"`) {
		t.Fatalf("book again: %d %s", res.Status, res.Body)
	}
	res = e.json(t, "POST", base+"/subscriptions", fmt.Sprintf(`{"ref":"SO-4711","service":"cd_basic","startsAt":%q}`, start.Format(time.RFC3339)))
	wantProblem(t, res, http.StatusConflict, "subscription_ref_conflict")

	// The SIM is deactivated: not eligible, reason sim_inactive, at once.
	if res = e.json(t, "PUT", base, vehicleJSON("AT", false)); res.Status != 200 || !strings.Contains(res.Body, `"result":"updated"`) {
		t.Fatalf("SIM off: %d %s", res.Status, res.Body)
	}
	if _, c = e.caps(t, vin); c.Eligible || !slices.Contains(c.Reasons, vehicles.ReasonSIMInactive) || keyAvailable(c, key) {
		t.Fatalf("SIM inactive: eligible %v reasons %v", c.Eligible, c.Reasons)
	}
	if res = e.json(t, "PUT", base, vehicleJSON("AT", true)); res.Status != 200 {
		t.Fatalf("SIM on: %d %s", res.Status, res.Body)
	}
	if _, c = e.caps(t, vin); !c.Eligible || !keyAvailable(c, key) {
		t.Fatalf("SIM active again: eligible %v reasons %v", c.Eligible, c.Reasons)
	}
	// The same state again is no change and leaves no history.
	before := len(mdHistory(t, e.tt, vin))
	if res = e.json(t, "PUT", base, vehicleJSON("AT", true)); res.Status != 200 || !strings.Contains(res.Body, `"result":"unchanged"`) {
		t.Fatalf("same state: %d %s", res.Status, res.Body)
	}
	if n := len(mdHistory(t, e.tt, vin)); n != before {
		t.Fatalf("an unchanged upsert wrote history: %d -> %d", before, n)
	}

	// End the booking early: its keys go at once; ending it again changes nothing.
	res = e.send(t, e.md, "POST", base+"/subscriptions/SO-4711/end", "", "")
	if res.Status != 200 || !strings.Contains(res.Body, `"result":"updated"`) {
		t.Fatalf("end: %d %s", res.Status, res.Body)
	}
	if _, c = e.caps(t, vin); keyAvailable(c, key) || len(c.Services) != 0 {
		t.Fatalf("ended: %s still available, services %+v", key, c.Services)
	}
	if res = e.send(t, e.md, "POST", base+"/subscriptions/SO-4711/end", "", ""); res.Status != 200 || !strings.Contains(res.Body, `"result":"unchanged"`) {
		t.Fatalf("end again: %d %s", res.Status, res.Body)
	}
	wantProblem(t, e.send(t, e.md, "POST", base+"/subscriptions/SO-0000/end", "", ""), http.StatusNotFound, "subscription_not_found")

	// A market outside CarData's: not eligible at once.
	e.json(t, "PUT", base, vehicleJSON("US", true))
	if _, c = e.caps(t, vin); c.Eligible || !slices.Contains(c.Reasons, vehicles.ReasonMarketNotSupported) {
		t.Fatalf("moved to US: %v", c.Reasons)
	}

	// The history names every change and its source.
	var actions []string
	for _, h := range mdHistory(t, e.tt, vin) {
		actions = append(actions, h.Action)
		if h.SourceKind != vehicles.SourceAPI || h.SourceLabel != "oem-vehicle-systems" {
			t.Errorf("history source %s %s", h.SourceKind, h.SourceLabel)
		}
	}
	want := []string{"vehicle.created", "holders.primary_set", "holders.secondary_added", "subscription.booked", "vehicle.updated",
		"vehicle.updated", "subscription.ended", "vehicle.updated"}
	if !slices.Equal(actions, want) {
		t.Fatalf("history %v, want %v", actions, want)
	}

	// The API reads the master data back.
	res = e.send(t, e.md, "GET", base, "", "")
	if res.Status != 200 || !strings.Contains(res.Body, `"ref":"SO-4711"`) || !strings.Contains(res.Body, "new.owner@example.com") {
		t.Fatalf("get: %d %s", res.Status, res.Body)
	}
}

// Bad input is a problem document with a stable code, never a 500.
func TestMasterDataBadInput(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "Bad Input Versicherung AG", "ATU13585627")
	vin := apiTestVIN()
	base := "/ingest/v1/vehicles/" + vin
	wantProblem(t, e.json(t, "PUT", base, `{"brand":"BMW"`), http.StatusBadRequest, "malformed_body")
	wantProblem(t, e.json(t, "PUT", base, `{"brand":"BMW","colour":"red"}`), http.StatusBadRequest, "malformed_body")
	wantProblem(t, e.json(t, "PUT", base, `{"brand":"BMW","telematicsCapable":"yes"}`), http.StatusBadRequest, "malformed_body")
	wantProblem(t, e.send(t, e.md, "PUT", base, "text/plain", vehicleJSON("AT", true)), http.StatusUnsupportedMediaType, "unsupported_media_type")
	res := e.json(t, "PUT", base, `{"brand":"AUDI","model":"","drivetrain":"steam","market":"Austria"}`)
	wantProblem(t, res, http.StatusUnprocessableEntity, "validation_failed")
	for _, f := range []string{"telematicsCapable", "simActive"} {
		if !strings.Contains(res.Body, `"field":"`+f+`"`) {
			t.Errorf("no error for %s: %s", f, res.Body)
		}
	}
	res = e.json(t, "PUT", base, `{"brand":"AUDI","model":"","drivetrain":"steam","market":"Austria","telematicsCapable":true,"simActive":true}`)
	wantProblem(t, res, http.StatusUnprocessableEntity, "validation_failed")
	for _, f := range []string{"brand", "model", "drivetrain", "market"} {
		if !strings.Contains(res.Body, `"field":"`+f+`"`) {
			t.Errorf("no error for %s: %s", f, res.Body)
		}
	}
	wantProblem(t, e.json(t, "PUT", "/ingest/v1/vehicles/NOT-A-VIN", vehicleJSON("AT", true)), http.StatusUnprocessableEntity, "validation_failed")
	wantProblem(t, e.json(t, "PUT", base+"/holders", `{"primary":{"email":"x@example.com"}}`), http.StatusNotFound, "vehicle_not_found")
	e.json(t, "PUT", base, vehicleJSON("AT", true))
	wantProblem(t, e.json(t, "PUT", base+"/holders", `{"primary":{"email":"nobody@example.com"}}`), http.StatusUnprocessableEntity, "validation_failed")
	res = e.json(t, "PUT", base+"/holders", `{"secondary":[]}`)
	wantProblem(t, res, http.StatusUnprocessableEntity, "validation_failed")
	if !strings.Contains(res.Body, "primary_required") {
		t.Fatalf("holders without primary: %s", res.Body)
	}
	wantProblem(t, e.json(t, "PUT", base+"/holders", `{"primary":{"email":"a@example.com","name":"A"},"secondary":[{"email":"A@example.com"}]}`),
		http.StatusUnprocessableEntity, "validation_failed")
	wantProblem(t, e.json(t, "POST", base+"/subscriptions", `{"service":"cd_basic","startsAt":"2026-01-01T00:00:00Z"}`), http.StatusUnprocessableEntity, "validation_failed")
	wantProblem(t, e.json(t, "POST", base+"/subscriptions", `{"ref":"12345","service":"cd_basic","startsAt":"2026-01-01T00:00:00Z"}`), http.StatusUnprocessableEntity, "validation_failed")
	wantProblem(t, e.json(t, "POST", base+"/subscriptions", `{"ref":"x","service":"cd_basic","startsAt":"yesterday"}`), http.StatusBadRequest, "malformed_body")
	wantProblem(t, e.json(t, "POST", base+"/subscriptions", `{"ref":"x","service":"warp_drive","startsAt":"2026-01-01T00:00:00Z"}`), http.StatusUnprocessableEntity, "validation_failed")
	res = e.json(t, "POST", base+"/subscriptions", `{"ref":"x","service":"cd_basic","startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-01T00:00:00Z"}`)
	wantProblem(t, res, http.StatusUnprocessableEntity, "validation_failed")
	if !strings.Contains(res.Body, `"field":"endsAt"`) {
		t.Fatalf("end before start: %s", res.Body)
	}
	wantProblem(t, e.send(t, e.md, "POST", "/ingest/v1/master-data", "application/json", `{}`), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantProblem(t, e.send(t, e.md, "POST", "/ingest/v1/master-data", "application/x-ndjson", "\n\n"), http.StatusBadRequest, "empty_body")
}

// Only a master-data client's token reaches the API: no token, a telemetry
// gateway's, a provider's API token or a staff session do not; a disabled
// client is refused at once; a master-data token posts no readings.
func TestMasterDataCredentials(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "Credential Versicherung AG", "ATU13585627")
	path := "/ingest/v1/vehicles/" + e.w.VIN
	body := vehicleJSON("AT", true)

	wantProblem(t, e.send(t, e.tt.Client(t), "PUT", path, "application/json", body), http.StatusUnauthorized, "unauthenticated")
	bad := e.tt.Client(t)
	bad.Header.Set("Authorization", "Bearer cdm_not-a-real-token-at-all")
	wantProblem(t, e.send(t, bad, "PUT", path, "application/json", body), http.StatusUnauthorized, "invalid_token")

	_, gwToken, err := e.tt.App.Ingest.CreateGateway(e.tt.Ctx, "md-test-gateway", "")
	if err != nil {
		t.Fatal(err)
	}
	gw := e.tt.Client(t)
	gw.Header.Set("Authorization", "Bearer "+gwToken)
	wantProblem(t, e.send(t, gw, "PUT", path, "application/json", body), http.StatusForbidden, "forbidden")
	wantProblem(t, e.send(t, gw, "POST", "/ingest/v1/master-data", "application/x-ndjson", `{"op":"vehicle.upsert"}`), http.StatusForbidden, "forbidden")

	// The provider's OAuth client (a real token) is no credential here.
	res, respBody := apiSend(t, e.api, "PUT", "http://cardata.test"+path, body, nil)
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(respBody, "unauthenticated") && !strings.Contains(respBody, "invalid_token") {
		t.Fatalf("provider token: %d %s", res.StatusCode, respBody)
	}
	e.tt.MustCreateStaff(t, "md-admin@cardata.example", policies.RoleAdmin)
	staffClient := e.tt.LoginStaff(t, "md-admin@cardata.example")
	wantProblem(t, e.send(t, staffClient, "PUT", path, "application/json", body), http.StatusUnauthorized, "unauthenticated")

	// A master-data token posts no readings.
	sig := `{"signals":[{"vin":"` + e.w.VIN + `","key":"vehicle.vehicle.travelledDistance","value":"1","timestamp":"` + time.Now().UTC().Format(time.RFC3339) + `"}]}`
	sreq := httptest.NewRequest("POST", "/ingest/v1/signals", strings.NewReader(sig))
	sreq.Header.Set("Content-Type", "application/json")
	if r := e.md.Do(sreq); r.Status != http.StatusUnauthorized {
		t.Fatalf("master-data token on /signals: %d %s", r.Status, r.Body)
	}

	// Nothing above changed the vehicle.
	if h := mdHistory(t, e.tt, e.w.VIN); len(h) != 0 {
		t.Fatalf("refused requests wrote history: %+v", h)
	}
	if r := e.json(t, "GET", path, ""); r.Status != 200 {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if err := e.tt.App.Ingest.SetMasterDataClientActive(e.tt.Ctx, "oem-vehicle-systems", false); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.json(t, "GET", path, ""), http.StatusUnauthorized, "invalid_token")
	var stored int64
	e.tt.DB.Raw("SELECT count(*) FROM master_data_clients WHERE length(token_hash) = 32 AND token_hash <> convert_to(?, 'UTF8')", e.token).Scan(&stored)
	if stored != 1 {
		t.Fatalf("the token is not stored hashed: %d", stored)
	}
}

// A new primary holder is a change of owner: the former owner's consents
// end at once (as the consent expiry job would end them), and the history
// and the staff page show it.
func TestMasterDataChangeOfOwnerEndsConsents(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "Owner Change Versicherung AG", "ATU13585627")
	var anna string
	e.tt.DB.Raw("SELECT email FROM customer_accounts WHERE id = ?", e.w.AccountID).Scan(&anna)
	state := func() string {
		var s string
		e.tt.DB.Raw("SELECT state FROM consents WHERE id = ?", e.w.ConsentID).Scan(&s)
		return s
	}
	if s := state(); s != "granted" {
		t.Fatalf("consent before: %s", s)
	}
	path := "/ingest/v1/vehicles/" + e.w.VIN + "/holders"
	// Adding a secondary user is no change of owner.
	res := e.json(t, "PUT", path, fmt.Sprintf(`{"primary":{"email":%q},"secondary":[{"email":"kid@example.com","name":"Kid"}]}`, anna))
	if res.Status != 200 || !strings.Contains(res.Body, `"ownerChanged":false`) || state() != "granted" {
		t.Fatalf("secondary added: %d %s, consent %s", res.Status, res.Body, state())
	}
	res = e.json(t, "PUT", path, `{"primary":{"email":"buyer@example.com","name":"Bert Buyer"}}`)
	var out struct {
		Result        string
		OwnerChanged  bool
		FormerPrimary string
		ConsentsEnded int
		Holders       []ingest.HolderOut
	}
	res.JSON(t, &out)
	if res.Status != 200 || !out.OwnerChanged || out.FormerPrimary != anna || out.ConsentsEnded < 1 || len(out.Holders) != 1 ||
		out.Holders[0].Email != "buyer@example.com" {
		t.Fatalf("change of owner: %d %s", res.Status, res.Body)
	}
	if s := state(); s != "revoked" {
		t.Fatalf("the former owner's consent is %s, want revoked", s)
	}
	var note string
	e.tt.DB.Raw("SELECT note FROM consent_changes WHERE consent_id = ? ORDER BY id DESC LIMIT 1", e.w.ConsentID).Scan(&note)
	if !strings.Contains(note, "no longer holds the vehicle") {
		t.Fatalf("consent change note %q", note)
	}
	// Repeating it changes nothing.
	res = e.json(t, "PUT", path, `{"primary":{"email":"buyer@example.com"}}`)
	if res.Status != 200 || !strings.Contains(res.Body, `"result":"unchanged"`) || !strings.Contains(res.Body, `"consentsEnded":0`) {
		t.Fatalf("repeat: %d %s", res.Status, res.Body)
	}
	found := false
	for _, h := range mdHistory(t, e.tt, e.w.VIN) {
		if h.Action == "holders.change_of_owner" && strings.Contains(h.Summary, anna) && strings.Contains(h.Summary, "buyer@example.com") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no change of owner in the history: %+v", mdHistory(t, e.tt, e.w.VIN))
	}
	// Staff see it on the vehicle page.
	e.tt.MustCreateStaff(t, "pm-owner@cardata.example", policies.RolePartnerManager)
	page := e.tt.LoginStaff(t, "pm-owner@cardata.example").Get("/admin/vehicles/" + e.w.VIN)
	if page.Status != 200 || !strings.Contains(page.Body, "change of owner: "+anna) || !strings.Contains(page.Body, "master-data API (oem-vehicle-systems)") {
		t.Fatalf("staff page: %d %.3000s", page.Status, page.Body)
	}
}

// The bulk endpoint applies each line on its own: a bad line is reported
// and never blocks the others; the same request again changes nothing.
func TestMasterDataBulkNDJSON(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "Bulk Versicherung AG", "ATU13585627")
	v1, v2 := apiTestVIN(), apiTestVIN()
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	lines := []string{
		`{"id":"a","op":"vehicle.upsert","vin":"` + v1 + `","brand":"BMW","model":"i5","drivetrain":"bev","market":"AT","telematicsCapable":true,"simActive":true}`,
		`{"id":"b","op":"vehicle.upsert","vin":"` + v2 + `","brand":"AUDI","model":"A4","drivetrain":"combustion","market":"AT","telematicsCapable":true,"simActive":true}`,
		``,
		`{"id":"c","op":"holders.set","vin":"` + v1 + `","primary":{"email":"bulk.owner@example.com","name":"Bulk Owner"}}`,
		`{"id":"d","op":"subscription.book","vin":"` + v1 + `","ref":"B-1","service":"cd_basic","startsAt":"` + start + `"}`,
		`{"id":"e","op":"vehicle.upsert","vin":`,
		`{"id":"f","op":"vehicle.paint","vin":"` + v1 + `"}`,
		`{"id":"g","op":"subscription.book","vin":"` + v1 + `","ref":"B-2","service":"remote_services","startsAt":"` + start + `"}`,
		`{"id":"h","op":"subscription.end","vin":"` + v1 + `","subscription":"B-2"}`,
		`{"id":"i","op":"holders.set","vin":"` + v2 + `","primary":{"email":"x@example.com","name":"X"}}`,
	}
	body := strings.Join(lines, "\n") + "\n"
	var first ingest.BulkResult
	res := e.send(t, e.md, "POST", "/ingest/v1/master-data", "application/x-ndjson", body)
	if res.Status != 200 {
		t.Fatalf("bulk: %d %s", res.Status, res.Body)
	}
	res.JSON(t, &first)
	if first.Received != 9 || first.Applied != 5 || first.Failed != 4 || len(first.Results) != 9 {
		t.Fatalf("bulk counts: %s", res.Body)
	}
	// By line: the id of the malformed line cannot be read.
	want := map[int]struct {
		id, result, code string
	}{
		1: {"a", "created", ""}, 2: {"b", "error", "validation_failed"}, 4: {"c", "updated", ""}, 5: {"d", "created", ""},
		6: {"", "error", "malformed_body"}, 7: {"f", "error", "validation_failed"}, 8: {"g", "created", ""}, 9: {"h", "updated", ""},
		10: {"i", "error", "vehicle_not_found"},
	}
	for _, r := range first.Results {
		w, ok := want[r.Line]
		if !ok || r.ID != w.id || r.Result != w.result || (w.code != "" && (r.Error == nil || r.Error.Code != w.code)) {
			t.Errorf("line %d (%s): %+v %+v, want %+v", r.Line, r.ID, r, r.Error, w)
		}
	}
	if _, c := e.caps(t, v1); !c.Eligible || len(c.Services) != 1 || c.Services[0].Code != "cd_basic" {
		t.Fatalf("after bulk: %+v %+v", c.Reasons, c.Services)
	}
	count := func(q string, args ...any) int64 {
		var n int64
		e.tt.DB.Raw(q, args...).Scan(&n)
		return n
	}
	subs := count("SELECT count(*) FROM service_subscriptions WHERE vehicle_id = (SELECT id FROM vehicles WHERE vin = ?)", v1)
	hist := len(mdHistory(t, e.tt, v1))
	accounts := count("SELECT count(*) FROM customer_accounts")

	// The same request again: nothing applied, nothing duplicated.
	var again ingest.BulkResult
	res = e.send(t, e.md, "POST", "/ingest/v1/master-data", "application/x-ndjson", body)
	res.JSON(t, &again)
	if again.Received != 9 || again.Applied != 0 || again.Unchanged != 5 || again.Failed != 4 {
		t.Fatalf("repeat: %s", res.Body)
	}
	if n := count("SELECT count(*) FROM service_subscriptions WHERE vehicle_id = (SELECT id FROM vehicles WHERE vin = ?)", v1); n != subs || n != 2 {
		t.Fatalf("subscriptions %d -> %d", subs, n)
	}
	if n := len(mdHistory(t, e.tt, v1)); n != hist {
		t.Fatalf("history %d -> %d", hist, n)
	}
	if n := count("SELECT count(*) FROM customer_accounts"); n != accounts {
		t.Fatalf("accounts %d -> %d", accounts, n)
	}
	if n := count("SELECT count(*) FROM vehicles WHERE vin = ?", v2); n != 0 {
		t.Fatal("the invalid vehicle was registered")
	}
}

// The OpenAPI document is served, valid, and documents every master-data
// route the app mounts (and no other), each with a policy line.
func TestMasterDataOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	mdOpenAPIValidator(t)
	res := tt.Client(t).Get("/ingest/v1/openapi.json")
	if res.Status != 200 || res.Body != string(ingest.MasterDataOpenAPI) {
		t.Fatalf("GET /ingest/v1/openapi.json: %d", res.Status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(ingest.MasterDataOpenAPI, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("document: %v %s", err, doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m != "parameters" {
				documented[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	mounted := map[string]bool{}
	for _, r := range tt.App.Fiber.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/ingest/v1/") || r.Path == "/ingest/v1/signals" || r.Method == fiber.MethodHead {
			continue
		}
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") {
				segs[i] = "{" + s[1:] + "}"
			}
		}
		key := r.Method + " " + strings.Join(segs, "/")
		mounted[key] = true
		if !documented[key] {
			t.Errorf("%s %s is mounted but not documented", r.Method, r.Path)
		}
		if r.Path != "/ingest/v1/openapi.json" && !tt.App.Enforcer.Allowed([]string{vehicles.RoleMasterData}, r.Path, r.Method) {
			t.Errorf("%s %s: the master-data role is not allowed", r.Method, r.Path)
		}
		if tt.App.Enforcer.Allowed([]string{"ingest_gateway"}, r.Path, r.Method) {
			t.Errorf("%s %s: a telemetry gateway is allowed", r.Method, r.Path)
		}
	}
	for k := range documented {
		if !mounted[k] {
			t.Errorf("%s is documented but not mounted", k)
		}
	}
	if len(mounted) != len(ingest.MasterDataRoutes)+1 {
		t.Errorf("mounted %d master-data routes, want %d", len(mounted), len(ingest.MasterDataRoutes)+1)
	}
}

// Staff see the history; partner managers cannot change master data by
// hand; administrators can (field errors keep what was typed; the change is
// audited and in the history as theirs).
func TestVehicleMasterDataByHand(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "By Hand Versicherung AG", "ATU13585627")
	vin := e.w.VIN
	page := "/admin/vehicles/" + vin
	e.tt.MustCreateStaff(t, "pm-hand@cardata.example", policies.RolePartnerManager)
	e.tt.MustCreateStaff(t, "admin-hand@cardata.example", policies.RoleAdmin)
	pm := e.tt.LoginStaff(t, "pm-hand@cardata.example")
	admin := e.tt.LoginStaff(t, "admin-hand@cardata.example")

	e.json(t, "PUT", "/ingest/v1/vehicles/"+vin, `{"brand":"BMW","model":"320d Touring","drivetrain":"combustion","market":"AT","telematicsCapable":true,"simActive":true}`)
	res := pm.Get(page)
	if res.Status != 200 || !strings.Contains(res.Body, `id="history"`) || !strings.Contains(res.Body, "model 320d → 320d Touring") {
		t.Fatalf("partner manager page: %d %.2000s", res.Status, res.Body)
	}
	if strings.Contains(res.Body, `action="/admin/vehicles/`+vin+`/master-data"`) {
		t.Fatal("the partner manager is offered the master-data form")
	}
	form := url.Values{"brand": {"BMW"}, "model": {"320d Touring"}, "drivetrain": {"combustion"}, "market": {"AT"}, "telematics_capable": {"true"}}
	for _, p := range []string{page + "/master-data", page + "/holders", page + "/subscriptions", fmt.Sprintf("%s/subscriptions/%d/end", page, 1)} {
		if r := pm.PostForm(p, form); r.Status != http.StatusForbidden {
			t.Fatalf("partner manager POST %s: %d", p, r.Status)
		}
	}
	if _, c := e.caps(t, vin); !c.SIMActive {
		t.Fatal("the partner manager changed the SIM state")
	}

	// A field error re-renders the page with what was typed.
	bad := url.Values{"brand": {"BMW"}, "model": {"320d Typo Touring"}, "drivetrain": {"combustion"}, "market": {"Austria"}}
	res = admin.PostForm(page+"/master-data", bad)
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `value="Austria"`) || !strings.Contains(res.Body, `value="320d Typo Touring"`) ||
		!strings.Contains(res.Body, "two-letter country code") {
		t.Fatalf("invalid form: %d %.3000s", res.Status, res.Body)
	}
	// The SIM off by hand (checkbox unticked): capabilities follow at once.
	res = admin.PostForm(page+"/master-data", form)
	if res.Status != http.StatusSeeOther {
		t.Fatalf("admin save: %d %.2000s", res.Status, res.Body)
	}
	if _, c := e.caps(t, vin); c.Eligible || !slices.Contains(c.Reasons, vehicles.ReasonSIMInactive) {
		t.Fatalf("SIM off by hand: %+v", c.Reasons)
	}
	var entries int64
	e.tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action = 'vehicle.vehicle_updated' AND object_id = ? AND actor_label = ? AND summary LIKE '%SIM active → SIM inactive%'",
		vin, "admin-hand@cardata.example").Scan(&entries)
	if entries != 1 {
		t.Fatalf("audit entries of the change by hand: %d", entries)
	}
	h := mdHistory(t, e.tt, vin)
	last := h[len(h)-1]
	if last.SourceKind != vehicles.SourceStaff || last.SourceLabel != "admin-hand@cardata.example" {
		t.Fatalf("history source: %+v", last)
	}
	if r := pm.Get(page); !strings.Contains(r.Body, "by hand (admin-hand@cardata.example)") {
		t.Fatal("the page does not show the change by hand")
	}
	// The history in German: the recorded changes said in the reader's language.
	pm.PostForm("/lang", url.Values{"lang": {"de"}, "back": {page}})
	if r := pm.Get(page); !strings.Contains(r.Body, "Modell 320d → 320d Touring") || strings.Contains(r.Body, "model 320d → 320d Touring") {
		t.Fatalf("the master-data history is not German: %.3000s", r.Body[strings.Index(r.Body, `id="history"`):])
	}
	pm.PostForm("/lang", url.Values{"lang": {"en"}, "back": {page}})

	// Holders by hand: an unknown account without a name is a field error that keeps the input.
	res = admin.PostForm(page+"/holders", url.Values{"primary_email": {"stranger@example.com"}, "secondary": {"not-an-email"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `value="stranger@example.com"`) || !strings.Contains(res.Body, "not-an-email") {
		t.Fatalf("invalid holders: %d %.3000s", res.Status, res.Body)
	}
	res = admin.PostForm(page+"/holders", url.Values{"primary_email": {"second.owner@example.com"}, "primary_name": {"Second Owner"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("holders by hand: %d %.2000s", res.Status, res.Body)
	}
	var st string
	e.tt.DB.Raw("SELECT state FROM consents WHERE id = ?", e.w.ConsentID).Scan(&st)
	if st != "revoked" {
		t.Fatalf("consent after a change of owner by hand: %s", st)
	}

	// Book and end a subscription by hand.
	res = admin.PostForm(page+"/subscriptions", url.Values{"service": {"teleservices"}, "starts_at": {"not a time"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `value="not a time"`) {
		t.Fatalf("invalid booking: %d", res.Status)
	}
	from := time.Now().Add(-time.Hour).In(e.tt.App.View.Location).Format("2006-01-02T15:04")
	if res = admin.PostForm(page+"/subscriptions", url.Values{"service": {"teleservices"}, "starts_at": {from}}); res.Status != http.StatusSeeOther {
		t.Fatalf("book by hand: %d %.2000s", res.Status, res.Body)
	}
	var subID int64
	e.tt.DB.Raw("SELECT id FROM service_subscriptions WHERE vehicle_id = ? AND service = 'teleservices'", e.w.VehicleID).Scan(&subID)
	if res = admin.PostForm(fmt.Sprintf("%s/subscriptions/%d/end", page, subID), nil); res.Status != http.StatusSeeOther {
		t.Fatalf("end by hand: %d", res.Status)
	}
	var ended bool
	e.tt.DB.Raw("SELECT ends_at IS NOT NULL FROM service_subscriptions WHERE id = ?", subID).Scan(&ended)
	if !ended {
		t.Fatal("the subscription did not end")
	}
	var actions []string
	for _, c := range mdHistory(t, e.tt, vin) {
		if c.SourceKind == vehicles.SourceStaff {
			actions = append(actions, c.Action)
		}
	}
	if !slices.Equal(actions, []string{"vehicle.updated", "holders.change_of_owner", "subscription.booked", "subscription.ended"}) {
		t.Fatalf("staff history: %v", actions)
	}
}

// The CLI creates a master-data client (token shown once, stored hashed,
// audited) and disables it.
func TestMasterDataCLI(t *testing.T) {
	gdb, _ := cliDatabase(t)
	code, out, errOut := runCLI(t, "", "ingest", "masterdata", "add", "--name", "vehicle-master")
	if code != 0 || !strings.Contains(out, "cdm_") {
		t.Fatalf("masterdata add: %d %s %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])
	sum := sha256.Sum256([]byte(token))
	var n int64
	gdb.Raw("SELECT count(*) FROM master_data_clients WHERE name = 'vehicle-master' AND token_hash = ? AND active", sum[:]).Scan(&n)
	if n != 1 {
		t.Fatalf("client with the hash of %q: %d", token, n)
	}
	gdb.Raw("SELECT count(*) FROM audit_entries WHERE action = 'master_data_client.create' AND actor_label = 'cli'").Scan(&n)
	if n != 1 {
		t.Fatalf("audit entries: %d", n)
	}
	if code, _, errOut := runCLI(t, "", "ingest", "masterdata", "add", "--name", "vehicle-master"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "ingest", "masterdata", "disable", "--name", "vehicle-master"); code != 0 {
		t.Fatalf("disable: %d %s", code, errOut)
	}
	gdb.Raw("SELECT count(*) FROM master_data_clients WHERE name = 'vehicle-master' AND NOT active").Scan(&n)
	if n != 1 {
		t.Fatal("the client is still active")
	}
	if code, _, errOut := runCLI(t, "", "ingest", "masterdata", "disable", "--name", "nobody"); code != 1 || !strings.Contains(errOut, "no master-data client") {
		t.Fatalf("unknown client: %d %s", code, errOut)
	}
}

// Concurrent calls for the same new vehicle and the same new account
// register each once; none fails.
func TestMasterDataConcurrentUpserts(t *testing.T) {
	t.Parallel()
	e := newMDEnv(t, "Concurrent Versicherung AG", "ATU13585627")
	vin := apiTestVIN()
	const n = 6
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.tt.Client(t)
			c.Header.Set("Authorization", "Bearer "+e.token)
			req := httptest.NewRequest("PUT", "/ingest/v1/vehicles/"+vin, strings.NewReader(vehicleJSON("AT", true)))
			req.Header.Set("Content-Type", "application/json")
			statuses[i] = c.Do(req).Status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("statuses %v", statuses)
		}
	}
	if created != 1 {
		t.Fatalf("created %d times: %v", created, statuses)
	}
	// Other vehicles, all held by one new account at once.
	vins := make([]string, n)
	for i := range vins {
		vins[i] = apiTestVIN()
		e.json(t, "PUT", "/ingest/v1/vehicles/"+vins[i], vehicleJSON("AT", true))
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.tt.Client(t)
			c.Header.Set("Authorization", "Bearer "+e.token)
			req := httptest.NewRequest("PUT", "/ingest/v1/vehicles/"+vins[i]+"/holders",
				strings.NewReader(`{"primary":{"email":"fleet.manager@example.com","name":"Fleet Manager"}}`))
			req.Header.Set("Content-Type", "application/json")
			statuses[i] = c.Do(req).Status
		}()
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("holders statuses %v", statuses)
		}
	}
	var accounts, held int64
	e.tt.DB.Raw("SELECT count(*) FROM customer_accounts WHERE lower(email) = 'fleet.manager@example.com'").Scan(&accounts)
	e.tt.DB.Raw("SELECT count(*) FROM vehicle_holders h JOIN customer_accounts a ON a.id = h.account_id WHERE lower(a.email) = 'fleet.manager@example.com' AND h.role = 'primary'").Scan(&held)
	if accounts != 1 || held != n {
		t.Fatalf("accounts %d, vehicles held %d", accounts, held)
	}
}
