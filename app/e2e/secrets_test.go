package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"cardata/app"
	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/onboarding"
)

// secretsKey sets SECRETS_KEY.
func secretsKey(k string) func(*config.Config) {
	return func(c *config.Config) { c.SecretsKey = []byte(k) }
}

// secretsProvider is an active provider with one API client.
func secretsProvider(t *testing.T, tt *apptest.T, name, country, vat string) (*onboarding.Registered, *onboarding.NewSecret) {
	t.Helper()
	p := mustActiveProvider(t, tt, name, country, vat)
	ns, err := onboardingFor(tt).CreateAPIClient(tt.Ctx, p.Provider.ID, "backend")
	if err != nil {
		t.Fatal(err)
	}
	return p, ns
}

// replica is a second app on the test's database, as another replica (or
// the same one after a restart) would be.
func replica(t *testing.T, tt *apptest.T, opts ...func(*config.Config)) *apptest.T {
	t.Helper()
	cfg := apptest.Config(t, tt.DBURL)
	for _, o := range opts {
		o(&cfg)
	}
	a, err := app.New(cfg, tt.DB, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &apptest.T{App: a, DB: tt.DB, DBURL: tt.DBURL, Ctx: tt.Ctx}
}

// bearerToken gets an access token with client_secret_post.
func bearerToken(t *testing.T, tt *apptest.T, clientID, secret string) (string, int, map[string]any) {
	t.Helper()
	c := tt.Client(t)
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"},
		"client_id": {clientID}, "client_secret": {secret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res := c.Do(req)
	var m map[string]any
	_ = json.Unmarshal([]byte(res.Body), &m)
	tok, _ := m["access_token"].(string)
	return tok, res.Status, m
}

// bearerDo sends an API request with a bearer token.
func bearerDo(t *testing.T, tt *apptest.T, tok, method, path, body string, hdr map[string]string) *apptest.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return tt.Client(t).Do(req)
}

// closedPort is a loopback port nobody listens on: a receiver that refuses.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// storedAnswer is the response body kept for an Idempotency-Key, as
// PostgreSQL has it.
func storedAnswer(t *testing.T, tt *apptest.T, clientID int64, key string) []byte {
	t.Helper()
	var body []byte
	if err := tt.DB.Raw(`SELECT response_body FROM api_idempotency_keys WHERE client_id = ? AND key = ?`, clientID, key).Row().Scan(&body); err != nil {
		t.Fatal(err)
	}
	return body
}

func assertNoSecret(t *testing.T, stored []byte, secret string) {
	t.Helper()
	key := strings.TrimPrefix(secret, "whsec_")
	if len(stored) == 0 || bytes.Contains(stored, []byte(secret)) || bytes.Contains(stored, []byte(key)) || bytes.Contains(stored, []byte("whsec_")) {
		t.Fatalf("the stored answer keeps the signing secret in clear: %q", stored)
	}
}

// Without SECRETS_KEY (development, and these tests) the answer to a
// webhook creation is kept sealed under a key of the process: the same
// process replays it whole, a restarted one (another key) cannot open it
// and points at the endpoint instead. What providers see of a failed push
// is a category, never the address we dialled.
func TestIdempotentWebhookAnswerKeepsNoSecretInClear(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	_, ns := secretsProvider(t, tt, "Geheim Versicherung AG", "AT", "ATU13585627")
	tok, status, m := bearerToken(t, tt, ns.Client.ClientID, ns.Secret)
	if status != 200 {
		t.Fatalf("token: %d %v", status, m)
	}
	port := closedPort(t)
	body := fmt.Sprintf(`{"url":"http://127.0.0.1:%d/hook","eventTypes":["consent.granted"]}`, port)
	key := map[string]string{"Idempotency-Key": "create-hook-1"}
	first := bearerDo(t, tt, tok, "POST", "/api/v1/webhooks", body, key)
	var ep struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	first.JSON(t, &ep)
	if first.Status != 201 || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("create: %d %s", first.Status, first.Body)
	}
	stored := storedAnswer(t, tt, ns.Client.ID, "create-hook-1")
	assertNoSecret(t, stored, ep.Secret)
	if !bytes.HasPrefix(stored, []byte("mem1:")) {
		t.Fatalf("stored answer not sealed under the process key: %q", stored[:min(len(stored), 16)])
	}

	again := bearerDo(t, tt, tok, "POST", "/api/v1/webhooks", body, key)
	if again.Status != 201 || again.Body != first.Body || again.Header.Get("Idempotency-Replayed") != "true" ||
		again.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("replay: %d %v %s", again.Status, again.Header, again.Body)
	}

	restarted := replica(t, tt)
	res := bearerDo(t, restarted, tok, "POST", "/api/v1/webhooks", body, key)
	if res.Status != 409 || !strings.Contains(res.Body, "idempotency_answer_unavailable") ||
		res.Header.Get("Location") != fmt.Sprintf("/api/v1/webhooks/%d", ep.ID) || strings.Contains(res.Body, "whsec_") {
		t.Fatalf("replay after a restart: %d %v %s", res.Status, res.Header, res.Body)
	}
	var n int64
	tt.DB.Raw(`SELECT count(*) FROM webhook_endpoints WHERE provider_id = ?`, ns.Client.ProviderID).Scan(&n)
	if n != 1 {
		t.Fatalf("%d endpoints: a replay ran the request again", n)
	}
	// The endpoint (and its secret) is where Location says.
	if res := bearerDo(t, restarted, tok, "GET", res.Header.Get("Location"), "", nil); res.Status != 200 || !strings.Contains(res.Body, ep.Secret) {
		t.Fatalf("GET Location: %d %s", res.Status, res.Body)
	}

	// A push to the refusing receiver: the provider sees the category.
	if res := bearerDo(t, tt, tok, "POST", fmt.Sprintf("/api/v1/webhooks/%d/test", ep.ID), "", nil); res.Status != 202 {
		t.Fatalf("test event: %d %s", res.Status, res.Body)
	}
	if n, err := tt.App.Webhooks.DeliverDue(tt.Ctx); err != nil || n != 1 {
		t.Fatalf("deliver: %d %v", n, err)
	}
	res = bearerDo(t, tt, tok, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries", ep.ID), "", nil)
	if res.Status != 200 || !strings.Contains(res.Body, `"lastError":"connection refused"`) || !strings.Contains(res.Body, `"error":"connection refused"`) {
		t.Fatalf("deliveries: %d %s", res.Status, res.Body)
	}
	for _, leak := range []string{"127.0.0.1", "dial tcp", "connect:"} {
		if strings.Contains(res.Body, leak) {
			t.Fatalf("deliveries show %q: %s", leak, res.Body)
		}
	}
}

// With SECRETS_KEY the answer is sealed under it, so every replica with
// the key replays it whole; after the key changed it cannot be opened.
func TestIdempotentWebhookAnswerSealedUnderSecretsKey(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, secretsKey("0123456789abcdef0123456789abcdef"))
	_, ns := secretsProvider(t, tt, "Geheim Versicherung AG", "AT", "ATU13585627")
	tok, _, _ := bearerToken(t, tt, ns.Client.ClientID, ns.Secret)
	body := `{"url":"https://hooks.example.com/cardata","eventTypes":["consent.granted"]}`
	hdr := map[string]string{"Idempotency-Key": "create-hook-2"}
	first := bearerDo(t, tt, tok, "POST", "/api/v1/webhooks", body, hdr)
	var ep struct{ Secret string }
	first.JSON(t, &ep)
	if first.Status != 201 || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("create: %d %s", first.Status, first.Body)
	}
	stored := storedAnswer(t, tt, ns.Client.ID, "create-hook-2")
	assertNoSecret(t, stored, ep.Secret)
	if !bytes.HasPrefix(stored, []byte("enc1:")) {
		t.Fatalf("stored answer not sealed under SECRETS_KEY: %q", stored[:min(len(stored), 16)])
	}
	other := replica(t, tt, secretsKey("0123456789abcdef0123456789abcdef"))
	if res := bearerDo(t, other, tok, "POST", "/api/v1/webhooks", body, hdr); res.Status != 201 || res.Body != first.Body {
		t.Fatalf("replay on another replica: %d %s", res.Status, res.Body)
	}
	rekeyed := replica(t, tt, secretsKey("another key of thirty-two bytes!"))
	if res := bearerDo(t, rekeyed, tok, "POST", "/api/v1/webhooks", body, hdr); res.Status != 409 || strings.Contains(res.Body, "whsec_") {
		t.Fatalf("replay under another key: %d %s", res.Status, res.Body)
	}
}

// Rotating a client secret without overlap ends the tokens bought with the
// old one at once, on every replica; with an overlap they (and tokens the
// old secret still buys) end when the overlap does.
func TestRotatedSecretEndsItsTokens(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Hour // longer than the overlap, so the overlap is what ends the old tokens
	withTTL := func(c *config.Config) { c.APITokenTTL = ttl }
	tt := apptest.New(t, withTTL)
	other := replica(t, tt, withTTL)
	p, ns := secretsProvider(t, tt, "Rotation Versicherung AG", "AT", "ATU13585627")
	ob := onboardingFor(tt)
	works := func(at *apptest.T, tok string) bool {
		t.Helper()
		res := bearerDo(t, at, tok, "GET", "/api/v1/webhooks", "", nil)
		switch {
		case res.Status == 200:
			return true
		case res.Status == 401 && strings.Contains(res.Body, "invalid_token") && strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token"):
			return false
		}
		t.Fatalf("GET /api/v1/webhooks: %d %s", res.Status, res.Body)
		return false
	}

	// No overlap.
	old, _, _ := bearerToken(t, tt, ns.Client.ClientID, ns.Secret)
	if !works(tt, old) || !works(other, old) {
		t.Fatal("a fresh token is refused")
	}
	rot, err := ob.RotateAPIClientSecret(tt.Ctx, p.Provider.ID, ns.Client.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if works(tt, old) || works(other, old) {
		t.Fatal("a token of the replaced secret still works")
	}
	if _, status, m := bearerToken(t, other, ns.Client.ClientID, ns.Secret); status != 401 || m["error"] != "invalid_client" {
		t.Fatalf("the replaced secret bought a token: %d %v", status, m)
	}
	current, _, _ := bearerToken(t, other, ns.Client.ClientID, rot.Secret)
	if !works(tt, current) {
		t.Fatal("the new secret's token is refused")
	}

	// One hour of overlap.
	rot2, err := ob.RotateAPIClientSecret(tt.Ctx, p.Provider.ID, ns.Client.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	during, _, m := bearerToken(t, tt, ns.Client.ClientID, rot.Secret) // the old secret, during the overlap
	if exp, _ := m["expires_in"].(float64); during == "" || exp > time.Hour.Seconds() || exp < time.Hour.Seconds()-300 {
		t.Fatalf("token of the previous secret during the overlap: %v", m)
	}
	fresh, _, m := bearerToken(t, tt, ns.Client.ClientID, rot2.Secret)
	if exp, _ := m["expires_in"].(float64); exp != ttl.Seconds() {
		t.Fatalf("token of the new secret: %v", m)
	}
	if !works(tt, current) || !works(other, current) || !works(other, during) {
		t.Fatal("old tokens stopped before the overlap ended")
	}
	// An hour and a minute later (the token clocks of both replicas).
	later := func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	tt.App.API.Tokens.Now, other.App.API.Tokens.Now = later, later
	if works(tt, current) || works(other, during) {
		t.Fatal("tokens of the previous secret outlived the overlap")
	}
	if !works(tt, fresh) || !works(other, fresh) {
		t.Fatal("the new secret's token ended with the overlap")
	}
}
