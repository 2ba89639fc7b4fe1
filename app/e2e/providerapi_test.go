package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"golang.org/x/oauth2"

	"cardata/app"
	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/providerapi"
	"cardata/billing"
	"cardata/onboarding/webhooks"
	"cardata/policies"
)

const apiBase = "http://cardata.test"

type apiTelematicBody struct {
	VIN           string                     `json:"vin"`
	ContainerID   int64                      `json:"containerId"`
	TelematicData map[string]json.RawMessage `json:"telematicData"`
}

// apiOpenAPIChecker validates real responses against the published document.
type apiOpenAPIChecker struct {
	t *testing.T
	v validator.Validator
}

func newAPIOpenAPIChecker(t *testing.T) *apiOpenAPIChecker {
	t.Helper()
	doc, err := libopenapi.NewDocument(providerapi.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("openapi.json: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("openapi.json invalid: %s %s", e.Message, e.Reason)
		}
	}
	// The checker must be able to fail: a telematicData answer without its
	// required members is rejected.
	res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	req := httptest.NewRequest("GET", "/api/v1/vehicles/WBA00000000000001/telematicData?containerId=1", nil)
	res.Body = io.NopCloser(strings.NewReader(`{"vin":"WBA00000000000001","telematicData":{"k":{"value":1}}}`))
	if ok, _ := v.ValidateHttpResponse(req, res); ok {
		t.Fatal("the OpenAPI checker accepted a response that breaks the document")
	}
	return &apiOpenAPIChecker{t: t, v: v}
}

// check validates one exchange (the body is given separately since the
// client already read it).
func (o *apiOpenAPIChecker) check(method, path string, res *http.Response, body string) {
	o.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	r := *res
	r.Body = io.NopCloser(strings.NewReader(body))
	if ok, errs := o.v.ValidateHttpResponse(req, &r); !ok {
		for _, e := range errs {
			o.t.Errorf("%s %s -> %d does not match the OpenAPI document: %s (%s) %v", method, path, res.StatusCode, e.Message, e.Reason, e.SchemaValidationErrors)
		}
	}
}

// apiLedgerRows reads the provider's ledger.
func apiLedgerRows(t *testing.T, tt *apptest.T, providerID int64) []billing.LedgerRecord {
	t.Helper()
	var out []billing.LedgerRecord
	if err := tt.DB.Where("provider_id = ?", providerID).Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProviderAPIReadsConsentedDataAndRecordsEveryDelivery(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	oa := newAPIOpenAPIChecker(t)

	// Both client authentication methods of the real OAuth2 library work.
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, apiInProcessClient(t, tt))
		tok, err := apiTokenConfig(apiBase, w, style).Token(ctx)
		if err != nil {
			t.Fatalf("token (style %d): %v", style, err)
		}
		if tok.AccessToken == "" || tok.TokenType != "Bearer" || time.Until(tok.Expiry) > 16*time.Minute || time.Until(tok.Expiry) < 10*time.Minute {
			t.Fatalf("token: %+v", tok)
		}
	}
	// Only the hash of a token is stored.
	var stored int64
	tt.DB.Raw("SELECT count(*) FROM api_access_tokens WHERE length(token_hash) = 32").Scan(&stored)
	if stored != 2 {
		t.Fatalf("stored tokens: %d", stored)
	}

	c := apiClient(t, tt, w)
	dataURL := fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, w.VIN, w.ContainerID)

	// Nothing received yet: every key null, 200, not billed.
	res, body := apiGet(t, c, dataURL)
	if res.StatusCode != 200 {
		t.Fatalf("empty read: %d %s", res.StatusCode, body)
	}
	oa.check("GET", "/api/v1/vehicles/"+w.VIN+"/telematicData?containerId="+strconv.FormatInt(w.ContainerID, 10), res, body)
	var tb apiTelematicBody
	_ = json.Unmarshal([]byte(body), &tb)
	if len(tb.TelematicData) != 3 || string(tb.TelematicData[apiKeyMileage]) != "null" || res.Header.Get(providerapi.DeliveryHeader) != "" {
		t.Fatalf("empty read body: %s", body)
	}
	if n := len(apiLedgerRows(t, tt, w.Provider.Provider.ID)); n != 0 {
		t.Fatalf("an empty response was billed: %d records", n)
	}
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if res.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}

	readAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	apiIngest(t, tt, w.VIN, apiKeyMileage, "12345", readAt)

	var sent []string
	for i := 0; i < 3; i++ {
		res, body = apiGet(t, c, dataURL)
		if res.StatusCode != 200 {
			t.Fatalf("read: %d %s", res.StatusCode, body)
		}
		oa.check("GET", "/api/v1/vehicles/"+w.VIN+"/telematicData?containerId="+strconv.FormatInt(w.ContainerID, 10), res, body)
		id := res.Header.Get(providerapi.DeliveryHeader)
		if id == "" {
			t.Fatalf("no delivery id on a response with data: %s", body)
		}
		sent = append(sent, id)
		tb = apiTelematicBody{}
		_ = json.Unmarshal([]byte(body), &tb)
		var mileage struct {
			Value     json.RawMessage `json:"value"`
			Unit      *string         `json:"unit"`
			Timestamp time.Time       `json:"timestamp"`
		}
		_ = json.Unmarshal(tb.TelematicData[apiKeyMileage], &mileage)
		if string(mileage.Value) != "12345" || mileage.Unit == nil || *mileage.Unit != "km" || !mileage.Timestamp.Equal(readAt) {
			t.Fatalf("mileage: %s", body)
		}
		if string(tb.TelematicData[apiKeyMoving]) != "null" {
			t.Fatalf("a never-received key must be null: %s", body)
		}
		if int64(len(body)) <= 0 {
			t.Fatal("empty body")
		}
	}
	// Every ledger record matches a response that was sent, one each.
	rows := apiLedgerRows(t, tt, w.Provider.Provider.ID)
	if len(rows) != len(sent) {
		t.Fatalf("ledger has %d records for %d responses", len(rows), len(sent))
	}
	for i, r := range rows {
		if r.RequestID != sent[i] || r.Kind != "pull" || r.KeysDelivered != 1 || r.VIN != w.VIN || r.ContainerID != w.ContainerID ||
			r.ConsentID != w.ConsentID || r.ClientID == nil || r.Bytes <= 0 || r.ContainerVersion != 1 {
			t.Fatalf("ledger record %d: %+v (sent %s)", i, r, sent[i])
		}
	}

	// The provider reads its own ledger and usage.
	res, body = apiGet(t, c, apiBase+"/api/v1/deliveries?limit=2")
	oa.check("GET", "/api/v1/deliveries?limit=2", res, body)
	var page struct {
		Deliveries []struct {
			DeliveryID string `json:"deliveryId"`
		} `json:"deliveries"`
		NextCursor *string `json:"nextCursor"`
	}
	_ = json.Unmarshal([]byte(body), &page)
	// Newest first by default.
	if res.StatusCode != 200 || len(page.Deliveries) != 2 || page.NextCursor == nil || page.Deliveries[0].DeliveryID != sent[2] ||
		page.Deliveries[1].DeliveryID != sent[1] {
		t.Fatalf("deliveries page 1: %d %s", res.StatusCode, body)
	}
	res, body = apiGet(t, c, apiBase+"/api/v1/deliveries?limit=2&cursor="+url.QueryEscape(*page.NextCursor))
	page.Deliveries, page.NextCursor = nil, nil
	_ = json.Unmarshal([]byte(body), &page)
	if len(page.Deliveries) != 1 || page.NextCursor != nil || page.Deliveries[0].DeliveryID != sent[0] {
		t.Fatalf("deliveries page 2: %s", body)
	}
	// sort=oldest follows the ledger in recording order; its cursor is its own.
	res, body = apiGet(t, c, apiBase+"/api/v1/deliveries?sort=oldest&limit=2")
	page.Deliveries, page.NextCursor = nil, nil
	_ = json.Unmarshal([]byte(body), &page)
	if res.StatusCode != 200 || len(page.Deliveries) != 2 || page.Deliveries[0].DeliveryID != sent[0] || page.NextCursor == nil {
		t.Fatalf("oldest first: %d %s", res.StatusCode, body)
	}
	if res, body = apiGet(t, c, apiBase+"/api/v1/deliveries?cursor="+url.QueryEscape(*page.NextCursor)); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a cursor of the other order: %d %s", res.StatusCode, body)
	}
	// Undocumented parameters are refused with a stable code, also on the read path.
	for _, u := range []string{"/api/v1/deliveries?page=2", "/api/v1/deliveries?offset=1",
		fmt.Sprintf("/api/v1/vehicles/%s/telematicData?containerId=%d&fields=all", w.VIN, w.ContainerID)} {
		res, body = apiGet(t, c, apiBase+u)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":"unknown_parameter"`) {
			t.Errorf("%s: %d %s", u, res.StatusCode, body)
		}
	}
	if n := len(apiLedgerRows(t, tt, w.Provider.Provider.ID)); n != 3 {
		t.Fatalf("a refused read was billed: %d records", n)
	}
	res, body = apiGet(t, c, apiBase+"/api/v1/usage")
	oa.check("GET", "/api/v1/usage", res, body)
	var usage billing.Usage
	_ = json.Unmarshal([]byte(body), &usage)
	if res.StatusCode != 200 || len(usage.Items) != 2 || usage.Items[0].Count != 3 || usage.Items[1].Count != 0 {
		t.Fatalf("usage: %d %s", res.StatusCode, body)
	}
	for _, bad := range []string{"/api/v1/usage?period=2026-13", "/api/v1/deliveries?from=yesterday", "/api/v1/deliveries?from=2026-10-01", "/api/v1/deliveries?cursor=%%%",
		"/api/v1/vehicles/" + w.VIN + "/telematicData", "/api/v1/vehicles/" + w.VIN + "/telematicData?containerId=abc"} {
		res, body = apiGet(t, c, apiBase+bad)
		if res.StatusCode >= 500 || res.StatusCode < 400 || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s", bad, res.StatusCode, body)
		}
		oa.check("GET", bad, res, body)
	}

	// Capabilities: for any VIN, not billed.
	res, body = apiGet(t, c, apiBase+"/api/v1/vehicles/"+w.VIN+"/capabilities")
	if res.StatusCode != 200 || !strings.Contains(body, `"eligible":true`) {
		t.Fatalf("capabilities: %d %s", res.StatusCode, body)
	}
	oa.check("GET", "/api/v1/vehicles/"+w.VIN+"/capabilities", res, body)
	if n := len(apiLedgerRows(t, tt, w.Provider.Provider.ID)); n != 3 {
		t.Fatalf("capabilities were billed: %d", n)
	}
	res, body = apiGet(t, apiInProcessClient(t, tt), apiBase+"/api/v1/openapi.json")
	if res.StatusCode != 200 || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Fatalf("openapi: %d", res.StatusCode)
	}
}

func TestProviderAPIRevocationStopsReadsAndQueuedPushes(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	apiIngest(t, tt, w.VIN, apiKeyMileage, "100", time.Now().Add(-time.Minute))
	c := apiClient(t, tt, w)
	dataURL := fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, w.VIN, w.ContainerID)
	if res, body := apiGet(t, c, dataURL); res.StatusCode != 200 {
		t.Fatalf("read: %d %s", res.StatusCode, body)
	}

	// A push is queued for a receiver that is down.
	hooks := tt.App.Webhooks
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	pctx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ProviderID: w.Provider.Provider.ID})
	ep, err := hooks.CreateEndpoint(pctx, w.Provider.Provider.ID, webhooks.NewEndpoint{URL: down.URL, EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"breakdown"}`, time.Now().Add(-time.Second))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	ds, _, _ := hooks.FindDeliveries(tt.Ctx, w.Provider.Provider.ID, webhooks.DeliveryFilter{EndpointID: ep.ID})
	if len(ds) != 1 || ds[0].Status != webhooks.DeliveryPending || ds[0].Attempts != 1 {
		t.Fatalf("queued push: %+v", ds)
	}

	// The customer revokes: the next read is denied with the decision's code.
	custCtx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindCustomer, ID: w.AccountID})
	if err := apiConsents(tt).Revoke(custCtx, w.AccountID, w.ConsentID); err != nil {
		t.Fatal(err)
	}
	res, body := apiGet(t, c, dataURL)
	if res.StatusCode != 403 || !strings.Contains(body, `"code":"consent_revoked"`) {
		t.Fatalf("read after revocation: %d %s", res.StatusCode, body)
	}
	// The queued push is dropped at send time, never sent, never billed.
	tt.DB.Exec("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = ?", ds[0].ID)
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	d, _ := hooks.FindDelivery(tt.Ctx, w.Provider.Provider.ID, ds[0].ID)
	if d.Status != webhooks.DeliveryDropped || d.StatusReason != "consent_revoked" || len(d.Tries) != 1 {
		t.Fatalf("after revocation: %+v", d)
	}
	for _, r := range apiLedgerRows(t, tt, w.Provider.Provider.ID) {
		if r.Kind == "push" {
			t.Fatalf("a failed or dropped push was billed: %+v", r)
		}
	}

	// Revoking the API client stops its token at once.
	var clientPK int64
	tt.DB.Raw("SELECT id FROM api_clients WHERE client_id = ?", w.ClientID).Scan(&clientPK)
	if err := onboardingFor(tt).RevokeAPIClient(tt.Ctx, w.Provider.Provider.ID, clientPK); err != nil {
		t.Fatal(err)
	}
	// Both token paths: the general one and a telematicData read's one statement.
	for _, u := range []string{apiBase + "/api/v1/deliveries", dataURL} {
		res, body = apiGet(t, c, u)
		if res.StatusCode != 401 || !strings.Contains(body, "invalid_token") || !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("revoked client's token on %s: %d %s", u, res.StatusCode, body)
		}
	}
}

func TestProviderAPISuspensionStopsTokens(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	c := apiClient(t, tt, w)
	if res, body := apiGet(t, c, apiBase+"/api/v1/webhooks"); res.StatusCode != 200 {
		t.Fatalf("list: %d %s", res.StatusCode, body)
	}
	if _, err := onboardingFor(tt).Review(tt.Ctx, w.Provider.Provider.ID, "suspend", "unpaid invoices"); err != nil {
		t.Fatal(err)
	}
	dataURL := fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, w.VIN, w.ContainerID)
	for _, u := range []string{apiBase + "/api/v1/webhooks", dataURL} {
		if res, body := apiGet(t, c, u); res.StatusCode != 401 {
			t.Fatalf("suspended provider's token on %s: %d %s", u, res.StatusCode, body)
		}
	}
	res, m := apiPostToken(t, tt, url.Values{"grant_type": {"client_credentials"}}, w.ClientID, w.Secret)
	if res.StatusCode != 400 || m["error"] != "unauthorized_client" {
		t.Fatalf("token for a suspended provider: %d %v", res.StatusCode, m)
	}
}

// apiPostToken posts to /oauth/token in process.
func apiPostToken(t *testing.T, tt *apptest.T, form url.Values, user, pass string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	res, err := tt.App.Fiber.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res, m
}

func TestOAuthTokenErrorsFollowRFC6749(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	cc := url.Values{"grant_type": {"client_credentials"}}
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		code       string
	}{
		{"wrong secret", cc, w.ClientID, "nope-nope-nope-nope", 401, "invalid_client"},
		{"unknown client", cc, "cd_unknown", w.Secret, 401, "invalid_client"},
		{"no credentials", cc, "", "", 401, "invalid_client"},
		{"no grant type", url.Values{}, w.ClientID, w.Secret, 400, "invalid_request"},
		{"password grant", url.Values{"grant_type": {"password"}}, w.ClientID, w.Secret, 400, "unsupported_grant_type"},
		{"two methods", url.Values{"grant_type": {"client_credentials"}, "client_secret": {w.Secret}}, w.ClientID, w.Secret, 400, "invalid_request"},
		{"unknown scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, w.ClientID, w.Secret, 400, "invalid_scope"},
		{"post auth ok", url.Values{"grant_type": {"client_credentials"}, "client_id": {w.ClientID}, "client_secret": {w.Secret}}, "", "", 200, ""},
	}
	for _, c := range cases {
		res, m := apiPostToken(t, tt, c.form, c.user, c.pass)
		if res.StatusCode != c.status || (c.code != "" && m["error"] != c.code) {
			t.Errorf("%s: %d %v", c.name, res.StatusCode, m)
		}
		if c.status == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: no WWW-Authenticate", c.name)
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", c.name, res.Header.Get("Cache-Control"))
		}
	}
	// No token, or a bad one, on the API: problem+json 401 with a Bearer challenge.
	cl := tt.Client(t)
	res := cl.Get("/api/v1/deliveries")
	if res.Status != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %v", res.Status, res.Header)
	}
	cl.Header.Set("Authorization", "Bearer not-a-token")
	for _, p := range []string{"/api/v1/deliveries", fmt.Sprintf("/api/v1/vehicles/%s/telematicData?containerId=%d", w.VIN, w.ContainerID)} {
		if res := cl.Get(p); res.Status != 401 || !strings.Contains(res.Body, `"code":"invalid_token"`) ||
			!strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("bad token on %s: %d %s", p, res.Status, res.Body)
		}
	}
}

// Failed client authentications are throttled per address: after 20 within
// ten minutes even correct credentials from there get 429 with Retry-After.
func TestOAuthTokenThrottlesFailedAuthentication(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	cc := url.Values{"grant_type": {"client_credentials"}}
	if res, _ := apiPostToken(t, tt, cc, w.ClientID, w.Secret); res.StatusCode != 200 {
		t.Fatalf("good credentials: %d", res.StatusCode)
	}
	for i := 0; i < 20; i++ {
		if res, m := apiPostToken(t, tt, cc, w.ClientID, fmt.Sprint("wrong-", i)); res.StatusCode != 401 {
			t.Fatalf("failure %d: %d %v", i, res.StatusCode, m)
		}
	}
	res, m := apiPostToken(t, tt, cc, w.ClientID, w.Secret)
	if res.StatusCode != 429 || m["error"] != "temporarily_unavailable" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("after 20 failures: %d %v %v", res.StatusCode, m, res.Header)
	}
}

// Behind a trusted reverse proxy (TRUSTED_PROXIES) the token throttle
// counts the address the proxy saw, not the proxy's: one client's failures
// do not lock out everyone behind the same proxy, and an X-Forwarded-For
// entry the client wrote itself does not move it to another address.
func TestOAuthThrottleBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) {
		// In-process requests come from 0.0.0.0: it stands for the proxy.
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}
	})
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	post := func(forwardedFor, secret string) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		req.SetBasicAuth(url.QueryEscape(w.ClientID), url.QueryEscape(secret))
		res, err := tt.App.Fiber.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for i := 0; i < 20; i++ {
		if got := post("203.0.113.7", "wrong"); got != 401 {
			t.Fatalf("failure %d: %d", i, got)
		}
	}
	if got := post("203.0.113.7", w.Secret); got != 429 {
		t.Fatalf("the failing client: %d, want 429", got)
	}
	if got := post("198.51.100.1, 203.0.113.7", w.Secret); got != 429 {
		t.Fatalf("a forged left-most entry moved the failing client: %d, want 429", got)
	}
	if got := post("203.0.113.8", w.Secret); got != 200 {
		t.Fatalf("another client behind the same proxy: %d, want 200", got)
	}
}

// withoutInstance is a problem body without its random request id, which
// may contain any run of hex digits, such as a value a test looks for.
func withoutInstance(body string) string {
	var pr map[string]any
	if json.Unmarshal([]byte(body), &pr) != nil {
		return body
	}
	delete(pr, "instance")
	b, _ := json.Marshal(pr)
	return string(b)
}

func TestProviderCannotReadAnotherProvidersVehicle(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := mustAPIWorld(t, tt, "Provider A AG", "AT", "ATU13585627")
	b := mustAPIWorld(t, tt, "Provider B GmbH", "DE", "DE136695976")
	apiIngest(t, tt, b.VIN, apiKeyMileage, "777", time.Now().Add(-time.Minute))
	ca := apiClient(t, tt, a)
	oa := newAPIOpenAPIChecker(t)

	// A with B's container and B's vehicle, A's container with B's vehicle,
	// and an unknown VIN: all say only "no" without telling why about B.
	tries := []string{
		fmt.Sprintf("/api/v1/vehicles/%s/telematicData?containerId=%d", b.VIN, a.ContainerID),
		fmt.Sprintf("/api/v1/vehicles/%s/telematicData?containerId=%d", apiTestVIN(), a.ContainerID),
	}
	var bodies []string
	for _, p := range tries {
		res, body := apiGet(t, ca, apiBase+p)
		if res.StatusCode != 403 || !strings.Contains(body, `"code":"no_consent"`) || strings.Contains(withoutInstance(body), "777") {
			t.Fatalf("%s: %d %s", p, res.StatusCode, body)
		}
		oa.check("GET", p, res, body)
		var pr map[string]any
		_ = json.Unmarshal([]byte(body), &pr)
		delete(pr, "instance")
		bb, _ := json.Marshal(pr)
		bodies = append(bodies, string(bb))
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("a foreign vehicle and an unknown VIN answer differently:\n%s\n%s", bodies[0], bodies[1])
	}
	res, body := apiGet(t, ca, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, b.VIN, b.ContainerID))
	if res.StatusCode != 403 || strings.Contains(withoutInstance(body), "777") {
		t.Fatalf("B's container: %d %s", res.StatusCode, body)
	}
	if n := len(apiLedgerRows(t, tt, a.Provider.Provider.ID)); n != 0 {
		t.Fatalf("denials were billed: %d", n)
	}
	// A sees none of B's webhooks or ledger.
	res, body = apiGet(t, ca, apiBase+"/api/v1/deliveries")
	if res.StatusCode != 200 || strings.Contains(body, b.VIN) {
		t.Fatalf("deliveries: %s", body)
	}
}

// apiFailingLedger is a ledger that cannot commit.
type apiFailingLedger struct{}

func (apiFailingLedger) Write(context.Context, billing.Delivery) error {
	return errors.New("disk full")
}

func TestTelematicDataIsNotSentWhenTheLedgerFails(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	apiIngest(t, tt, w.VIN, apiKeyMileage, "4242", time.Now().Add(-time.Minute))
	c := apiClient(t, tt, w)
	real := tt.App.API.Ledger
	tt.App.API.Ledger = apiFailingLedger{}
	res, body := apiGet(t, c, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, w.VIN, w.ContainerID))
	tt.App.API.Ledger = real
	if res.StatusCode != 503 || strings.Contains(withoutInstance(body), "4242") || !strings.Contains(body, `"code":"ledger_unavailable"`) {
		t.Fatalf("ledger down: %d %s", res.StatusCode, body)
	}
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) { c.APIRateLimit, c.APIRateBurst = 1, 3 })
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	c := apiClient(t, tt, w)
	oa := newAPIOpenAPIChecker(t)
	var last *http.Response
	var lastBody string
	for i := 0; i < 4; i++ {
		last, lastBody = apiGet(t, c, apiBase+"/api/v1/webhooks")
		if i < 3 {
			if last.StatusCode != 200 || last.Header.Get("RateLimit-Limit") != "3" || last.Header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
				t.Fatalf("request %d: %d %v", i, last.StatusCode, last.Header)
			}
		}
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" || last.Header.Get("RateLimit-Remaining") != "0" || !strings.Contains(lastBody, "rate_limited") {
		t.Fatalf("4th request: %d %v %s", last.StatusCode, last.Header, lastBody)
	}
	oa.check("GET", "/api/v1/webhooks", last, lastBody)
}

func TestIdempotencyKeyReplaysAndRefusesADifferentBody(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	c := apiClient(t, tt, w)
	oa := newAPIOpenAPIChecker(t)
	body := `{"url":"https://hooks.example.com/cardata","eventTypes":["vehicle.positionUpdated"]}`
	key := map[string]string{"Idempotency-Key": "create-1"}
	r1, b1 := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks", body, key)
	if r1.StatusCode != 201 {
		t.Fatalf("create: %d %s", r1.StatusCode, b1)
	}
	oa.check("POST", "/api/v1/webhooks", r1, b1)
	r2, b2 := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks", body, key)
	if r2.StatusCode != 201 || b2 != b1 || r2.Header.Get("Idempotency-Replayed") != "true" || r2.Header.Get("Location") != r1.Header.Get("Location") {
		t.Fatalf("replay: %d %s", r2.StatusCode, b2)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM webhook_endpoints WHERE provider_id = ?", w.Provider.Provider.ID).Scan(&n)
	if n != 1 {
		t.Fatalf("%d endpoints after a replay", n)
	}
	r3, b3 := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks", strings.Replace(body, "cardata", "other", 1), key)
	if r3.StatusCode != 422 || !strings.Contains(b3, "idempotency_key_reused") {
		t.Fatalf("different body: %d %s", r3.StatusCode, b3)
	}
	oa.check("POST", "/api/v1/webhooks", r3, b3)
	// Bad input never gives a 500.
	for _, bad := range []string{`{`, `{"url":"http://example.com/x","eventTypes":["vehicle.positionUpdated"]}`, `{"url":"https://a.example","eventTypes":["nope"]}`, `[]`} {
		r, b := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks", bad, nil)
		if r.StatusCode != 400 && r.StatusCode != 422 {
			t.Errorf("%s: %d %s", bad, r.StatusCode, b)
		}
		oa.check("POST", "/api/v1/webhooks", r, b)
	}
}

// apiFlakyReceiver fails the first n deliveries, then accepts; it verifies
// every request with the Standard Webhooks library.
type apiFlakyReceiver struct {
	mu       sync.Mutex
	failures int
	secret   string
	ids      []string
	verified []error
	bodies   [][]byte
}

func (f *apiFlakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	wh, err := standardwebhooks.NewWebhook(f.secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	f.ids = append(f.ids, r.Header.Get("webhook-id"))
	f.verified = append(f.verified, err)
	f.bodies = append(f.bodies, body)
	if f.failures > 0 {
		f.failures--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestPushesAreSignedRetriedWithTheSameIDAndBilledOnce(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	c := apiClient(t, tt, w)
	hooks := tt.App.Webhooks
	hooks.Opt.BaseBackoff = time.Millisecond // retries come at once in the test

	recv := &apiFlakyReceiver{failures: 3}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	res, body := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks",
		fmt.Sprintf(`{"url":%q,"eventTypes":["vehicle.serviceCall","telematics.updated"]}`, srv.URL+"/hooks"), nil)
	if res.StatusCode != 201 {
		t.Fatalf("create endpoint: %d %s", res.StatusCode, body)
	}
	var ep providerapi.WebhookEndpoint
	_ = json.Unmarshal([]byte(body), &ep)
	recv.secret = ep.Secret

	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"oil"}`, time.Now().Add(-time.Second))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 0 {
		t.Fatalf("second fan-out: %d %v", n, err)
	}
	// Each retry falls due a jittered millisecond after the failure; keep
	// delivering until the receiver has had its three failures and a success.
	apptest.WaitFor(t, apptest.Patience, "three failed pushes and a delivered one", func() bool {
		if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
			t.Fatal(err)
		}
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return len(recv.ids) >= 4
	})
	recv.mu.Lock()
	ids, verified, bodies := recv.ids, recv.verified, recv.bodies
	recv.mu.Unlock()
	if len(ids) != 4 {
		t.Fatalf("receiver saw %d requests, want 3 failures and 1 success", len(ids))
	}
	for i := range ids {
		if ids[i] != ids[0] || verified[i] != nil || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("attempt %d: id %s (first %s), verification %v", i, ids[i], ids[0], verified[i])
		}
	}
	var msg webhooks.Message
	_ = json.Unmarshal(bodies[0], &msg)
	if msg.Type != webhooks.TypeServiceCall || !strings.Contains(string(msg.Data), w.VIN) || !strings.Contains(string(msg.Data), `"reason":"oil"`) {
		t.Fatalf("message: %s", bodies[0])
	}
	// A tampered body fails verification with the same library.
	wh, _ := standardwebhooks.NewWebhook(ep.Secret)
	hdr := http.Header{}
	sig, _ := webhooks.Sign(ep.Secret, ids[0], time.Now(), bodies[0])
	hdr.Set("webhook-id", ids[0])
	hdr.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	hdr.Set("webhook-signature", sig)
	if err := wh.Verify(append([]byte(nil), bytes.Replace(bodies[0], []byte("oil"), []byte("gas"), 1)...), hdr); err == nil {
		t.Fatal("a tampered body verified")
	}

	// Only the accepted push is billable, once.
	var pushes []billing.LedgerRecord
	for _, r := range apiLedgerRows(t, tt, w.Provider.Provider.ID) {
		if r.Kind == "push" {
			pushes = append(pushes, r)
		}
	}
	if len(pushes) != 1 || !strings.HasPrefix(pushes[0].RequestID, ids[0]+":") || pushes[0].ConsentID != w.ConsentID || pushes[0].ClientID != nil {
		t.Fatalf("push ledger: %+v", pushes)
	}
	// The attempts are visible; a redelivery by hand is sent again with the
	// same id and not billed twice.
	res, body = apiGet(t, c, fmt.Sprintf("%s/api/v1/webhooks/%d/deliveries", apiBase, ep.ID))
	newAPIOpenAPIChecker(t).check("GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", ep.ID), res, body)
	var dl struct {
		Deliveries []webhooks.Delivery `json:"deliveries"`
	}
	_ = json.Unmarshal([]byte(body), &dl)
	if len(dl.Deliveries) != 1 || dl.Deliveries[0].Status != "succeeded" || len(dl.Deliveries[0].Tries) != 4 {
		t.Fatalf("attempts: %s", body)
	}
	res, body = apiSend(t, c, "POST", fmt.Sprintf("%s/api/v1/webhooks/%d/deliveries/%d/redeliver", apiBase, ep.ID, dl.Deliveries[0].ID), "", nil)
	if res.StatusCode != 202 {
		t.Fatalf("redeliver: %d %s", res.StatusCode, body)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	if len(recv.ids) != 5 || recv.ids[4] != ids[0] {
		t.Fatalf("redelivery: %v", recv.ids)
	}
	recv.mu.Unlock()
	pushes = nil
	for _, r := range apiLedgerRows(t, tt, w.Provider.Provider.ID) {
		if r.Kind == "push" {
			pushes = append(pushes, r)
		}
	}
	if len(pushes) != 1 {
		t.Fatalf("a redelivery was billed again: %d", len(pushes))
	}

	// Test events reach the endpoint and are not billed.
	res, body = apiSend(t, c, "POST", fmt.Sprintf("%s/api/v1/webhooks/%d/test", apiBase, ep.ID), "", nil)
	if res.StatusCode != 202 {
		t.Fatalf("test event: %d %s", res.StatusCode, body)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	if len(recv.ids) != 6 || recv.verified[5] != nil || !strings.Contains(string(recv.bodies[5]), webhooks.TypeTest) {
		t.Fatalf("test event: %v", recv.ids)
	}
	recv.mu.Unlock()
}

func TestFailingEndpointIsDeadLetteredAndDisabled(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	hooks := tt.App.Webhooks
	now := time.Now()
	clock := now
	hooks.Now = func() time.Time { return clock }
	hooks.Opt.DisableMin, hooks.Opt.DisableAfter = 3, time.Hour
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) }))
	defer srv.Close()
	pctx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ProviderID: w.Provider.Provider.ID})
	ep, err := hooks.CreateEndpoint(pctx, w.Provider.Provider.ID, webhooks.NewEndpoint{URL: srv.URL, EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := hooks.SendTest(pctx, w.Provider.Provider.ID, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Attempts go on with growing pauses until three days have passed.
	for step := 0; step < 200; step++ {
		if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
			t.Fatal(err)
		}
		e, _ := hooks.FindEndpoint(tt.Ctx, w.Provider.Provider.ID, ep.ID)
		if e.Status == webhooks.EndpointDisabled {
			break
		}
		clock = clock.Add(10 * time.Minute)
	}
	e, _ := hooks.FindEndpoint(tt.Ctx, w.Provider.Provider.ID, ep.ID)
	if e.Status != webhooks.EndpointDisabled || !strings.Contains(e.StatusReason, "disabled automatically") {
		t.Fatalf("endpoint: %+v", e)
	}
	ds, _, _ := hooks.FindDeliveries(tt.Ctx, w.Provider.Provider.ID, webhooks.DeliveryFilter{EndpointID: ep.ID})
	for _, d := range ds {
		if d.Status != webhooks.DeliveryDead {
			t.Fatalf("delivery after disabling: %+v", d)
		}
	}
	var mails int64
	tt.DB.Raw("SELECT count(*) FROM email_outbox WHERE kind = 'webhook.endpoint_disabled' AND to_addr = ?", w.Provider.Provider.ContactEmail).Scan(&mails)
	if mails != 1 {
		t.Fatalf("provider told %d times", mails)
	}
	// Backoff grows and is jittered.
	o := webhooks.Options{}
	if d := o.Backoff(1); d < 5*time.Second || d > 10*time.Second {
		t.Fatalf("first backoff %s", d)
	}
	if d := o.Backoff(30); d < 3*time.Hour || d > 6*time.Hour {
		t.Fatalf("late backoff %s", d)
	}
	// Dead letters after three days without the endpoint being disabled.
	hooks.Opt.DisableMin = 1000
	if err := hooks.EnableEndpoint(pctx, w.Provider.Provider.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.SendTest(pctx, w.Provider.Provider.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	start := clock
	for clock.Sub(start) < 80*time.Hour {
		if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(30 * time.Minute)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	dead, _, _ := hooks.FindDeliveries(tt.Ctx, w.Provider.Provider.ID, webhooks.DeliveryFilter{EndpointID: ep.ID, Status: webhooks.DeliveryDead, Limit: 1})
	if len(dead) != 1 || !strings.HasPrefix(dead[0].StatusReason, "gave up after") || dead[0].Attempts < 10 {
		t.Fatalf("dead letter: %+v", dead)
	}
}

// TestOpenAPIDocumentsEveryAPIRoute fails when a /api/v1 route (any
// module's) is missing from the OpenAPI document.
func TestOpenAPIDocumentsEveryAPIRoute(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(providerapi.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	newAPIOpenAPIChecker(t)
	for _, r := range tt.App.Fiber.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Method == "HEAD" {
			continue
		}
		p := r.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+strings.TrimSuffix(seg[1:], "?")+"}", 1)
			}
		}
		item, ok := doc.Paths[p]
		if !ok {
			t.Errorf("%s %s is not in app/providerapi/openapi.json", r.Method, p)
			continue
		}
		if _, ok := item[strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s %s: method missing in app/providerapi/openapi.json", r.Method, p)
		}
	}
}

func TestAPIPagesForProvidersAndStaff(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	apiIngest(t, tt, w.VIN, apiKeyMileage, "100", time.Now().Add(-time.Minute))
	c := apiClient(t, tt, w)
	if res, body := apiGet(t, c, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, w.VIN, w.ContainerID)); res.StatusCode != 200 {
		t.Fatalf("read: %d %s", res.StatusCode, body)
	}
	portal := loginProvider(t, tt, w.Provider.Admin.Email, providerPassword)
	res := portal.Get("/portal/deliveries")
	obMustContain(t, res.Body, w.VIN, "Telematics deliveries")
	res = portal.PostForm("/portal/webhooks", url.Values{"url": {"https://hooks.example.com/x"}, "event_types": {"consent.granted", "vehicle.serviceCall"}})
	if res.Status != 201 {
		t.Fatalf("create endpoint in portal: %d %s", res.Status, res.Body)
	}
	obMustContain(t, res.Body, "whsec_", "hooks.example.com")
	res = portal.PostForm("/portal/webhooks", url.Values{"url": {"http://example.com/x"}})
	if res.Status != 422 {
		t.Fatalf("invalid endpoint: %d", res.Status)
	}
	var epID int64
	tt.DB.Raw("SELECT id FROM webhook_endpoints WHERE provider_id = ?", w.Provider.Provider.ID).Scan(&epID)
	res = portal.PostForm(fmt.Sprintf("/portal/webhooks/%d/test", epID), url.Values{})
	if res.Status != 303 {
		t.Fatalf("send test: %d %s", res.Status, res.Body)
	}
	res = portal.Get(fmt.Sprintf("/portal/webhooks/%d", epID))
	obMustContain(t, res.Body, "webhook.test", "whsec_", "Send test event")
	// Another provider's endpoint is not found, and bad ids are not errors.
	other := mustAPIWorld(t, tt, "Provider B GmbH", "DE", "DE136695976")
	otherPortal := loginProvider(t, tt, other.Provider.Admin.Email, providerPassword)
	if res = otherPortal.Get(fmt.Sprintf("/portal/webhooks/%d", epID)); res.Status != 404 {
		t.Fatalf("foreign endpoint: %d", res.Status)
	}
	if res = otherPortal.PostForm(fmt.Sprintf("/portal/webhooks/%d/delete", epID), url.Values{}); res.Status != 404 {
		t.Fatalf("foreign delete: %d", res.Status)
	}
	if res = portal.Get("/portal/webhooks/abc"); res.Status >= 500 {
		t.Fatalf("bad id: %d", res.Status)
	}
	staffUser := tt.MustCreateStaff(t, "finance@cardata.example", policies.RoleFinance)
	_ = staffUser
	sc := tt.LoginStaff(t, "finance@cardata.example")
	res = sc.Get(fmt.Sprintf("/admin/deliveries/%d", w.Provider.Provider.ID))
	if res.Status != 200 {
		t.Fatalf("staff page: %d", res.Status)
	}
	obMustContain(t, res.Body, w.VIN, "hooks.example.com")
	if res = sc.Get(fmt.Sprintf("/admin/deliveries/%d?from=garbage", w.Provider.Provider.ID)); res.Status != 422 {
		t.Fatalf("bad filter: %d", res.Status)
	}
}

// TestTwoReplicasSendEachEventOnce runs two push workers (as two replicas
// would) on the same queue: each event reaches the receiver once.
func TestTwoReplicasSendEachEventOnce(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
		rw.WriteHeader(200)
	}))
	defer srv.Close()
	pid := w.Provider.Provider.ID
	pctx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ProviderID: pid})
	a := tt.App.Webhooks
	ep, err := a.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: srv.URL, EventTypes: []string{webhooks.TypeServiceCall}})
	if err != nil {
		t.Fatal(err)
	}
	const events = 40
	for i := 0; i < events; i++ {
		if _, err := a.SendTest(pctx, pid, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	b := &webhooks.Service{DB: tt.DB, RecordPush: a.RecordPush, ConsentActive: a.ConsentActive}
	var wg sync.WaitGroup
	for _, s := range []*webhooks.Service{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.DeliverDue(tt.Ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != events {
		t.Fatalf("%d distinct events received, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %s sent %d times", id, n)
		}
	}
}

// Concurrent reads share pipelined batches (fastread.go); each request
// still gets its own answer: its provider's value, a denial for a foreign
// vehicle, 401 for a bad token, and one ledger record per data response.
func TestConcurrentReadsGetTheirOwnAnswers(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := mustAPIWorld(t, tt, "Provider A AG", "AT", "ATU13585627")
	b := mustAPIWorld(t, tt, "Provider B GmbH", "DE", "DE136695976")
	apiIngest(t, tt, a.VIN, apiKeyMileage, "111", time.Now().Add(-time.Minute))
	apiIngest(t, tt, b.VIN, apiKeyMileage, "222", time.Now().Add(-time.Minute))
	ca, cb := apiClient(t, tt, a), apiClient(t, tt, b)
	bad := &http.Client{Transport: fixedBearer{token: "not-a-token", next: apiInProcessClient(t, tt).Transport}}
	type try struct {
		c      *http.Client
		url    string
		status int
		want   string
	}
	tries := []try{
		{ca, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, a.VIN, a.ContainerID), 200, `"value":111`},
		{cb, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, b.VIN, b.ContainerID), 200, `"value":222`},
		{ca, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, b.VIN, a.ContainerID), 403, `"code":"no_consent"`},
		{bad, fmt.Sprintf("%s/api/v1/vehicles/%s/telematicData?containerId=%d", apiBase, a.VIN, a.ContainerID), 401, `invalid_token`},
	}
	const rounds = 15
	var wg sync.WaitGroup
	failures := make(chan string, rounds*len(tries))
	for r := 0; r < rounds; r++ {
		for _, tr := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := tr.c.Get(tr.url)
				if err != nil {
					failures <- err.Error()
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != tr.status || !strings.Contains(string(body), tr.want) {
					failures <- fmt.Sprintf("%s: %d %s, want %d with %s", tr.url, res.StatusCode, body, tr.status, tr.want)
				}
			}()
		}
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if n := len(apiLedgerRows(t, tt, a.Provider.Provider.ID)); n != rounds {
		t.Errorf("provider A: %d ledger records, want %d", n, rounds)
	}
	if n := len(apiLedgerRows(t, tt, b.Provider.Provider.ID)); n != rounds {
		t.Errorf("provider B: %d ledger records, want %d", n, rounds)
	}
}

// fixedBearer sends a fixed bearer token.
type fixedBearer struct {
	token string
	next  http.RoundTripper
}

func (a fixedBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+a.token)
	return a.next.RoundTrip(r)
}

// Two replicas on one database share each client's bucket: together they
// allow the configured burst, not twice it, and both show the shared
// remainder in RateLimit-Remaining.
func TestRateLimitIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	limit := func(c *config.Config) { c.APIRateLimit, c.APIRateBurst = 1, 6 }
	tt := apptest.New(t, limit)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	cfg := apptest.Config(t, tt.DBURL)
	limit(&cfg)
	second, err := app.New(cfg, tt.DB, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, tok := apiPostToken(t, tt, url.Values{"grant_type": {"client_credentials"}}, w.ClientID, w.Secret)
	bearer, _ := tok["access_token"].(string)
	start := time.Now()
	allowed := 0
	var remaining []string
	var elapsed []time.Duration // since start, at each answer
	for i := 0; i < 12; i++ {
		replica := tt.App
		if i%2 == 1 {
			replica = second
		}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		res, err := replica.Fiber.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == 200 {
			allowed++
		} else if res.StatusCode != 429 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		remaining = append(remaining, res.Header.Get("RateLimit-Remaining"))
		elapsed = append(elapsed, time.Since(start))
	}
	// One token comes back per second while the test runs, however slowly
	// this machine runs it.
	if most := 6 + int(time.Since(start).Seconds()); allowed < 6 || allowed > most {
		t.Fatalf("two replicas allowed %d requests, want 6 to %d (remaining: %v)", allowed, most, remaining)
	}
	// The i-th request leaves 5-i of the shared burst, plus what came back
	// since the start: both replicas count down the same bucket.
	for i := range 5 {
		want := 5 - i
		if got, _ := strconv.Atoi(remaining[i]); got < want || got > want+int(elapsed[i].Seconds()) {
			t.Fatalf("RateLimit-Remaining across replicas: %v after %v", remaining, elapsed)
		}
	}
}
