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
	"sync/atomic"
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
	"cardata/app/providerapi/client"
	"cardata/billing"
	"cardata/onboarding/webhooks"
	"cardata/policies"
)

const apiBase = "http://cardata.test"

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
	ctx := t.Context()

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

	api := apiGen(t, tt, w)
	read := &client.GetTelematicDataParams{ContainerId: int(w.ContainerID)}

	// Nothing received yet: every key null, 200, not billed.
	res := call(api.GetTelematicDataWithResponse(ctx, w.VIN, read)).must(t)
	if res.JSON200 == nil {
		t.Fatalf("empty read: %d %s", res.StatusCode(), res.Body)
	}
	if d := res.JSON200.TelematicData; len(d) != 3 || d[apiKeyMileage] != nil || res.HTTPResponse.Header.Get(providerapi.DeliveryHeader) != "" {
		t.Fatalf("empty read body: %s", res.Body)
	}
	if n := len(apiLedgerRows(t, tt, w.Provider.Provider.ID)); n != 0 {
		t.Fatalf("an empty response was billed: %d records", n)
	}
	if h := res.Headers200; h == nil || h.RateLimitLimit == nil || h.RateLimitRemaining == nil || h.RateLimitReset == nil {
		t.Errorf("rate limit headers missing: %v", res.HTTPResponse.Header)
	}

	readAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	apiIngest(t, tt, w.VIN, apiKeyMileage, "12345", readAt)

	var sent []string
	for i := 0; i < 3; i++ {
		res = call(api.GetTelematicDataWithResponse(ctx, w.VIN, read)).must(t)
		if res.JSON200 == nil {
			t.Fatalf("read: %d %s", res.StatusCode(), res.Body)
		}
		if res.Headers200 == nil || res.Headers200.CarDataDeliveryId == nil {
			t.Fatalf("no delivery id on a response with data: %s", res.Body)
		}
		sent = append(sent, *res.Headers200.CarDataDeliveryId)
		mileage := res.JSON200.TelematicData[apiKeyMileage]
		if mileage == nil || fmt.Sprint(mileage.Value) != "12345" || mileage.Unit == nil || *mileage.Unit != "km" || !mileage.Timestamp.Equal(readAt) {
			t.Fatalf("mileage: %s", res.Body)
		}
		if v, ok := res.JSON200.TelematicData[apiKeyMoving]; !ok || v != nil {
			t.Fatalf("a never-received key must be null: %s", res.Body)
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

	// The provider reads its own ledger and usage, newest first by default.
	page := call(api.ListDeliveriesWithResponse(ctx, &client.ListDeliveriesParams{Limit: ptr(2)})).must(t)
	if p := page.JSON200; p == nil || len(p.Deliveries) != 2 || p.NextCursor == nil || p.Deliveries[0].DeliveryId != sent[2] ||
		p.Deliveries[1].DeliveryId != sent[1] {
		t.Fatalf("deliveries page 1: %d %s", page.StatusCode(), page.Body)
	}
	page = call(api.ListDeliveriesWithResponse(ctx, &client.ListDeliveriesParams{Limit: ptr(2), Cursor: page.JSON200.NextCursor})).must(t)
	if p := page.JSON200; p == nil || len(p.Deliveries) != 1 || p.NextCursor != nil || p.Deliveries[0].DeliveryId != sent[0] {
		t.Fatalf("deliveries page 2: %s", page.Body)
	}
	// sort=oldest follows the ledger in recording order; its cursor is its own.
	page = call(api.ListDeliveriesWithResponse(ctx, &client.ListDeliveriesParams{Sort: ptr(client.Oldest), Limit: ptr(2)})).must(t)
	if p := page.JSON200; p == nil || len(p.Deliveries) != 2 || p.Deliveries[0].DeliveryId != sent[0] || p.NextCursor == nil {
		t.Fatalf("oldest first: %d %s", page.StatusCode(), page.Body)
	}
	other := call(api.ListDeliveriesWithResponse(ctx, &client.ListDeliveriesParams{Cursor: page.JSON200.NextCursor})).must(t)
	if other.StatusCode() != http.StatusBadRequest || other.ApplicationproblemJSON400 == nil || other.ApplicationproblemJSON400.Code != "cursor_invalid" {
		t.Fatalf("a cursor of the other order: %d %s", other.StatusCode(), other.Body)
	}
	// Undocumented parameters are refused with a stable code, also on the
	// read path (sent raw: the generated client cannot send them).
	c := apiClient(t, tt, w)
	for _, u := range []string{"/api/v1/deliveries?page=2", "/api/v1/deliveries?offset=1",
		fmt.Sprintf("/api/v1/vehicles/%s/telematicData?containerId=%d&fields=all", w.VIN, w.ContainerID)} {
		res, body := apiGet(t, c, apiBase+u)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":"unknown_parameter"`) {
			t.Errorf("%s: %d %s", u, res.StatusCode, body)
		}
	}
	if n := len(apiLedgerRows(t, tt, w.Provider.Provider.ID)); n != 3 {
		t.Fatalf("a refused read was billed: %d records", n)
	}
	usage := call(api.GetUsageWithResponse(ctx, nil)).must(t)
	if u := usage.JSON200; u == nil || len(u.Items) != 2 || u.Items[0].Count != 3 || u.Items[1].Count != 0 {
		t.Fatalf("usage: %d %s", usage.StatusCode(), usage.Body)
	}
	for _, bad := range []string{"/api/v1/usage?period=2026-13", "/api/v1/deliveries?from=yesterday", "/api/v1/deliveries?from=2026-10-01", "/api/v1/deliveries?cursor=%%%",
		"/api/v1/vehicles/" + w.VIN + "/telematicData", "/api/v1/vehicles/" + w.VIN + "/telematicData?containerId=abc"} {
		res, body := apiGet(t, c, apiBase+bad)
		if res.StatusCode >= 500 || res.StatusCode < 400 || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s", bad, res.StatusCode, body)
		}
	}

	// Capabilities: for any VIN, not billed.
	caps := call(api.GetCapabilitiesWithResponse(ctx, w.VIN)).must(t)
	if caps.JSON200 == nil || !caps.JSON200.Eligible || caps.JSON200.Vin != w.VIN {
		t.Fatalf("capabilities: %d %s", caps.StatusCode(), caps.Body)
	}
	if n := len(apiLedgerRows(t, tt, w.Provider.Provider.ID)); n != 3 {
		t.Fatalf("capabilities were billed: %d", n)
	}
	doc := call(apiGenOver(t, apiInProcessClient(t, tt)).OpenapiWithResponse(ctx)).must(t)
	if doc.StatusCode() != 200 || !strings.Contains(string(doc.Body), `"openapi": "3.1.0"`) {
		t.Fatalf("openapi: %d", doc.StatusCode())
	}
}

func TestProviderAPIRevocationStopsReadsAndQueuedPushes(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	apiIngest(t, tt, w.VIN, apiKeyMileage, "100", time.Now().Add(-time.Minute))
	api, ctx := apiGen(t, tt, w), t.Context()
	read := &client.GetTelematicDataParams{ContainerId: int(w.ContainerID)}
	if res := call(api.GetTelematicDataWithResponse(ctx, w.VIN, read)).must(t); res.JSON200 == nil {
		t.Fatalf("read: %d %s", res.StatusCode(), res.Body)
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
	res := call(api.GetTelematicDataWithResponse(ctx, w.VIN, read)).must(t)
	if res.StatusCode() != 403 || res.ApplicationproblemJSON403 == nil || res.ApplicationproblemJSON403.Code != "consent_revoked" {
		t.Fatalf("read after revocation: %d %s", res.StatusCode(), res.Body)
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

	// Revoking the API client stops its token at once, on both token paths:
	// the general one and a telematicData read's one statement.
	var clientPK int64
	tt.DB.Raw("SELECT id FROM api_clients WHERE client_id = ?", w.ClientID).Scan(&clientPK)
	if err := onboardingFor(tt).RevokeAPIClient(tt.Ctx, w.Provider.Provider.ID, clientPK); err != nil {
		t.Fatal(err)
	}
	list := call(api.ListDeliveriesWithResponse(ctx, nil)).must(t)
	res = call(api.GetTelematicDataWithResponse(ctx, w.VIN, read)).must(t)
	for _, r := range []struct {
		status int
		body   []byte
		header http.Header
	}{{list.StatusCode(), list.Body, list.HTTPResponse.Header}, {res.StatusCode(), res.Body, res.HTTPResponse.Header}} {
		if r.status != 401 || apiProblem(r.body) != "invalid_token" || !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("revoked client's token: %d %s", r.status, r.body)
		}
	}
}

func TestProviderAPISuspensionStopsTokens(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	api, ctx := apiGen(t, tt, w), t.Context()
	if res := call(api.ListWebhooksWithResponse(ctx, nil)).must(t); res.JSON200 == nil {
		t.Fatalf("list: %d %s", res.StatusCode(), res.Body)
	}
	if _, err := onboardingFor(tt).Review(tt.Ctx, w.Provider.Provider.ID, "suspend", "unpaid invoices"); err != nil {
		t.Fatal(err)
	}
	if res := call(api.ListWebhooksWithResponse(ctx, nil)).must(t); res.StatusCode() != 401 {
		t.Fatalf("suspended provider's token on webhooks: %d %s", res.StatusCode(), res.Body)
	}
	read := &client.GetTelematicDataParams{ContainerId: int(w.ContainerID)}
	if res := call(api.GetTelematicDataWithResponse(ctx, w.VIN, read)).must(t); res.StatusCode() != 401 {
		t.Fatalf("suspended provider's token on telematicData: %d %s", res.StatusCode(), res.Body)
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
	api, ctx := apiGen(t, tt, a), t.Context()

	// A with B's vehicle and A's container, and an unknown VIN: both say
	// only "no" without telling why about B.
	var bodies []string
	for _, vin := range []string{b.VIN, apiTestVIN()} {
		res := call(api.GetTelematicDataWithResponse(ctx, vin, &client.GetTelematicDataParams{ContainerId: int(a.ContainerID)})).must(t)
		if res.StatusCode() != 403 || res.ApplicationproblemJSON403 == nil || res.ApplicationproblemJSON403.Code != "no_consent" ||
			strings.Contains(withoutInstance(string(res.Body)), "777") {
			t.Fatalf("%s: %d %s", vin, res.StatusCode(), res.Body)
		}
		bodies = append(bodies, withoutInstance(string(res.Body)))
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("a foreign vehicle and an unknown VIN answer differently:\n%s\n%s", bodies[0], bodies[1])
	}
	// A with B's container and B's vehicle.
	res := call(api.GetTelematicDataWithResponse(ctx, b.VIN, &client.GetTelematicDataParams{ContainerId: int(b.ContainerID)})).must(t)
	if res.StatusCode() != 403 || strings.Contains(withoutInstance(string(res.Body)), "777") {
		t.Fatalf("B's container: %d %s", res.StatusCode(), res.Body)
	}
	if n := len(apiLedgerRows(t, tt, a.Provider.Provider.ID)); n != 0 {
		t.Fatalf("denials were billed: %d", n)
	}
	// A sees none of B's webhooks or ledger.
	list := call(api.ListDeliveriesWithResponse(ctx, nil)).must(t)
	if list.JSON200 == nil || strings.Contains(string(list.Body), b.VIN) {
		t.Fatalf("deliveries: %s", list.Body)
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
	api := apiGen(t, tt, w)
	real := tt.App.API.Ledger
	tt.App.API.Ledger = apiFailingLedger{}
	res := call(api.GetTelematicDataWithResponse(t.Context(), w.VIN, &client.GetTelematicDataParams{ContainerId: int(w.ContainerID)})).must(t)
	tt.App.API.Ledger = real
	if res.StatusCode() != 503 || strings.Contains(withoutInstance(string(res.Body)), "4242") || res.ApplicationproblemJSON503 == nil ||
		res.ApplicationproblemJSON503.Code != "ledger_unavailable" {
		t.Fatalf("ledger down: %d %s", res.StatusCode(), res.Body)
	}
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) { c.APIRateLimit, c.APIRateBurst = 1, 3 })
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	api := apiGen(t, tt, w)
	var last *client.ListWebhooksResponse
	for i := 0; i < 4; i++ {
		last = call(api.ListWebhooksWithResponse(t.Context(), nil)).must(t)
		if i < 3 {
			if h := last.Headers200; last.StatusCode() != 200 || h == nil || h.RateLimitLimit == nil || *h.RateLimitLimit != 3 ||
				h.RateLimitRemaining == nil || *h.RateLimitRemaining != 2-i {
				t.Fatalf("request %d: %d %v", i, last.StatusCode(), last.HTTPResponse.Header)
			}
		}
	}
	if h := last.Headers429; last.StatusCode() != 429 || h == nil || h.RetryAfter == nil || h.RateLimitRemaining == nil || *h.RateLimitRemaining != 0 ||
		last.ApplicationproblemJSON429 == nil || last.ApplicationproblemJSON429.Code != "rate_limited" {
		t.Fatalf("4th request: %d %v %s", last.StatusCode(), last.HTTPResponse.Header, last.Body)
	}
}

func TestIdempotencyKeyReplaysAndRefusesADifferentBody(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	api, ctx := apiGen(t, tt, w), t.Context()
	body := client.NewWebhookEndpoint{Url: "https://hooks.example.com/cardata", EventTypes: []client.EventType{client.VehiclePositionUpdated}}
	key := &client.CreateWebhookParams{IdempotencyKey: ptr("create-1")}
	r1 := call(api.CreateWebhookWithResponse(ctx, key, body)).must(t)
	if r1.JSON201 == nil {
		t.Fatalf("create: %d %s", r1.StatusCode(), r1.Body)
	}
	r2 := call(api.CreateWebhookWithResponse(ctx, key, body)).must(t)
	if r2.StatusCode() != 201 || !bytes.Equal(r2.Body, r1.Body) || r2.HTTPResponse.Header.Get("Idempotency-Replayed") != "true" ||
		r2.HTTPResponse.Header.Get("Location") != r1.HTTPResponse.Header.Get("Location") {
		t.Fatalf("replay: %d %s", r2.StatusCode(), r2.Body)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM webhook_endpoints WHERE provider_id = ?", w.Provider.Provider.ID).Scan(&n)
	if n != 1 {
		t.Fatalf("%d endpoints after a replay", n)
	}
	body.Url = "https://hooks.example.com/other"
	r3 := call(api.CreateWebhookWithResponse(ctx, key, body)).must(t)
	if r3.StatusCode() != 422 || apiProblem(r3.Body) != "idempotency_key_reused" {
		t.Fatalf("different body: %d %s", r3.StatusCode(), r3.Body)
	}
	// Bad input never gives a 500 (sent raw: the generated client would not send it).
	c := apiClient(t, tt, w)
	for _, bad := range []string{`{`, `{"url":"http://example.com/x","eventTypes":["vehicle.positionUpdated"]}`, `{"url":"https://a.example","eventTypes":["nope"]}`, `[]`} {
		r, b := apiSend(t, c, "POST", apiBase+"/api/v1/webhooks", bad, nil)
		if r.StatusCode != 400 && r.StatusCode != 422 {
			t.Errorf("%s: %d %s", bad, r.StatusCode, b)
		}
	}
}

// apiFlakyReceiver fails the first n deliveries, then accepts; it verifies
// every request with the Standard Webhooks library and with the client
// package's VerifyWebhook.
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
	if err == nil {
		var msg *client.WebhookMessage
		if msg, err = client.VerifyWebhook(f.secret, r.Header, body, time.Now()); err == nil && msg.ID != r.Header.Get("webhook-id") {
			err = fmt.Errorf("VerifyWebhook: id %s", msg.ID)
		}
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
	api, ctx := apiGen(t, tt, w), t.Context()
	hooks := tt.App.Webhooks
	hooks.Opt.BaseBackoff = time.Millisecond // retries come at once in the test

	recv := &apiFlakyReceiver{failures: 3}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	created := call(api.CreateWebhookWithResponse(ctx, nil, client.NewWebhookEndpoint{Url: srv.URL + "/hooks",
		EventTypes: []client.EventType{client.VehicleServiceCall, client.TelematicsUpdated}})).must(t)
	if created.JSON201 == nil {
		t.Fatalf("create endpoint: %d %s", created.StatusCode(), created.Body)
	}
	ep := created.JSON201
	recv.mu.Lock()
	recv.secret = ep.Secret
	recv.mu.Unlock()

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
	// A tampered body fails verification with the same library and with VerifyWebhook.
	wh, _ := standardwebhooks.NewWebhook(ep.Secret)
	hdr := http.Header{}
	sig, _ := webhooks.Sign(ep.Secret, ids[0], time.Now(), bodies[0])
	hdr.Set("webhook-id", ids[0])
	hdr.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	hdr.Set("webhook-signature", sig)
	tampered := bytes.Replace(bodies[0], []byte("oil"), []byte("gas"), 1)
	if err := wh.Verify(append([]byte(nil), tampered...), hdr); err == nil {
		t.Fatal("a tampered body verified")
	}
	if _, err := client.VerifyWebhook(ep.Secret, hdr, tampered, time.Now()); !errors.Is(err, client.ErrWebhookSignature) {
		t.Fatalf("a tampered body: VerifyWebhook %v", err)
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
	dl := call(api.ListWebhookDeliveriesWithResponse(ctx, ep.Id, nil)).must(t)
	if dl.JSON200 == nil || len(dl.JSON200.Deliveries) != 1 || dl.JSON200.Deliveries[0].Status != "succeeded" ||
		len(dl.JSON200.Deliveries[0].AttemptLog) != 4 {
		t.Fatalf("attempts: %s", dl.Body)
	}
	re := call(api.RedeliverWithResponse(ctx, ep.Id, dl.JSON200.Deliveries[0].Id, nil)).must(t)
	if re.StatusCode() != 202 {
		t.Fatalf("redeliver: %d %s", re.StatusCode(), re.Body)
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
	if res := call(api.TestWebhookWithResponse(ctx, ep.Id, nil)).must(t); res.StatusCode() != 202 {
		t.Fatalf("test event: %d %s", res.StatusCode(), res.Body)
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

// apiDocumentIsValidAndStrict checks that the document is valid OpenAPI and
// that the validator every test exchange goes through
// (apptest.CheckAPIExchange) can fail: it refuses an answer without its
// required members, and a request with an undocumented parameter that was
// answered 200.
func apiDocumentIsValidAndStrict(t *testing.T) {
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
	for name, c := range map[string]struct{ query, body string }{
		"an answer without its required members": {"containerId=1", `{"vin":"WBA00000000000001","telematicData":{"k":{"value":1}}}`},
		"an undocumented parameter answered 200": {"containerId=1&fields=all",
			`{"vin":"WBA00000000000001","containerId":1,"telematicData":{}}`},
	} {
		rec := &apiFailureRecorder{TB: t}
		req := httptest.NewRequest("GET", "/api/v1/vehicles/WBA00000000000001/telematicData?"+c.query, nil)
		res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
		apptest.CheckAPIExchange(rec, req, nil, res, []byte(c.body))
		if !rec.failed {
			t.Errorf("the exchange validator accepted %s", name)
		}
	}
}

// apiFailureRecorder notes a check's failure instead of failing the test.
type apiFailureRecorder struct {
	testing.TB
	failed bool
}

func (r *apiFailureRecorder) Errorf(string, ...any) { r.failed = true }
func (r *apiFailureRecorder) Helper()               {}

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
	apiDocumentIsValidAndStrict(t)
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
	read := call(apiGen(t, tt, w).GetTelematicDataWithResponse(t.Context(), w.VIN, &client.GetTelematicDataParams{ContainerId: int(w.ContainerID)})).must(t)
	if read.JSON200 == nil {
		t.Fatalf("read: %d %s", read.StatusCode(), read.Body)
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
	ca, cb := apiGen(t, tt, a), apiGen(t, tt, b)
	bad := apiGenOver(t, &http.Client{Transport: fixedBearer{token: "not-a-token", next: apiInProcessClient(t, tt).Transport}})
	type try struct {
		c           *client.ClientWithResponses
		vin         string
		containerID int64
		status      int
		want        string
	}
	tries := []try{
		{ca, a.VIN, a.ContainerID, 200, `"value":111`},
		{cb, b.VIN, b.ContainerID, 200, `"value":222`},
		{ca, b.VIN, a.ContainerID, 403, `"code":"no_consent"`},
		{bad, a.VIN, a.ContainerID, 401, `invalid_token`},
	}
	const rounds = 15
	var wg sync.WaitGroup
	failures := make(chan string, rounds*len(tries))
	for r := 0; r < rounds; r++ {
		for _, tr := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := tr.c.GetTelematicDataWithResponse(context.Background(), tr.vin, &client.GetTelematicDataParams{ContainerId: int(tr.containerID)})
				if err != nil {
					failures <- err.Error()
					return
				}
				if res.StatusCode() != tr.status || !strings.Contains(string(res.Body), tr.want) {
					failures <- fmt.Sprintf("%s/%d: %d %s, want %d with %s", tr.vin, tr.containerID, res.StatusCode(), res.Body, tr.status, tr.want)
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
	// One client in front of both replicas, as behind a load balancer.
	rr := &apiRoundRobin{replicas: []*app.App{tt.App, second}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: apptest.ValidatingTransport(t, rr)})
	api := apiGenOver(t, apiTokenConfig(apiBase, w, oauth2.AuthStyleInHeader).Client(ctx))
	start := time.Now()
	allowed := 0
	var remaining []string
	var elapsed []time.Duration // since start, at each answer
	for i := 0; i < 12; i++ {
		res := call(api.ListWebhooksWithResponse(ctx, nil)).must(t)
		if res.StatusCode() == 200 {
			allowed++
		} else if res.StatusCode() != 429 {
			t.Fatalf("request %d: %d", i, res.StatusCode())
		}
		remaining = append(remaining, res.HTTPResponse.Header.Get("RateLimit-Remaining"))
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

// apiRoundRobin serves each API request with the next replica in turn (in
// process), as a load balancer would; tokens come from the first.
type apiRoundRobin struct {
	replicas []*app.App
	n        atomic.Int64
}

func (r *apiRoundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	i := 0
	if req.URL.Path != "/oauth/token" {
		i = int(r.n.Add(1)-1) % len(r.replicas)
	}
	return r.replicas[i].Fiber.Test(req, -1)
}
