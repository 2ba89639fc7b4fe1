// Package apptest boots the real application (app.New) on a fresh test
// database and gives tests an HTTP client with a cookie jar that fills in
// CSRF tokens the way a browser form would. Seed data through the real
// services with the MustCreateX helpers.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/peterldowns/pgtestdb"
	"gorm.io/gorm"

	"cardata/admin/staff"
	"cardata/app"
	"cardata/app/config"
	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/policies"
)

// T is a booted application on its own database.
type T struct {
	App   *app.App
	DB    *gorm.DB
	DBURL string
	Ctx   context.Context // carries a system principal, for seeding
}

// Config returns the test configuration for a database URL.
func Config(t testing.TB, dbURL string) config.Config {
	t.Helper()
	cfg, err := ConfigFor(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ConfigFor is Config for code that has no test at hand (a template
// database's migrator).
func ConfigFor(dbURL string) (config.Config, error) {
	// A shutdown that outlasts the drain on a loaded machine is a failure
	// of the test, not of the server: the bound only catches a real hang.
	env := map[string]string{"DATABASE_URL": dbURL, "BCRYPT_COST": "4", "LISTEN_ADDR": "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": ShutdownTimeout.String(),
		// port 0: parallel tests each serve metrics and must not share the default port
		"METRICS_ADDR": "127.0.0.1:0",
		// Tests sign administrators in with a password alone; the tests of
		// the second factor set the roles that require one.
		"STAFF_TOTP_REQUIRED_ROLES": "none"}
	return config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// New boots the app on a fresh database. Options may adjust the config.
func New(t testing.TB, opts ...func(*config.Config)) *T {
	t.Helper()
	return NewOn(t, dbtest.URL(t), opts...)
}

// NewMigratedBy boots the app on a fresh database cloned from a template
// that m prepared (e.g. migrated and loaded with the demo data once per
// test binary instead of once per test).
func NewMigratedBy(t testing.TB, m pgtestdb.Migrator, opts ...func(*config.Config)) *T {
	t.Helper()
	return NewOn(t, dbtest.URLMigratedBy(t, m), opts...)
}

// NewOn boots the app on the database at u.
func NewOn(t testing.TB, u string, opts ...func(*config.Config)) *T {
	t.Helper()
	cfg := Config(t, u)
	for _, o := range opts {
		o(&cfg)
	}
	gdb, err := db.Open(u, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(gdb) })
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := app.New(cfg, gdb, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close) // what New started (the ledger writer, runs), before the database closes
	ctx := policies.WithPrincipal(context.Background(), policies.System("test"))
	return &T{App: a, DB: gdb, DBURL: u, Ctx: ctx}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Password is the password MustCreateStaff gives everyone.
const Password = "test-password-123"

// MustCreateStaff creates an active staff user with roles.
func (tt *T) MustCreateStaff(t testing.TB, email string, roles ...string) *staff.User {
	t.Helper()
	u, err := tt.App.Staff.Create(tt.Ctx, staff.NewUser{Email: email, Name: strings.Split(email, "@")[0], Roles: roles, Password: Password})
	if err != nil {
		t.Fatalf("create staff %s: %v", email, err)
	}
	return u
}

// Serve runs the app on a loopback port until the test ends and returns
// the base URL once the server answers /healthz.
func (tt *T) Serve(t testing.TB) string {
	t.Helper()
	return tt.ServeOn(t, Listen(t))
}

// Listen binds a loopback port for ServeOn, so a test knows the app's URL
// before New (PUBLIC_URL, the identity providers' redirect URLs).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// ServeOn is Serve on a listener from Listen.
func (tt *T) ServeOn(t testing.TB, ln net.Listener) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tt.App.ServeListener(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(ShutdownTimeout + time.Minute):
			t.Error("server did not shut down")
		}
	})
	base := "http://" + ln.Addr().String()
	WaitServing(t, base)
	return base
}

// ShutdownTimeout is SHUTDOWN_TIMEOUT in tests: far above any drain a
// loaded machine needs, so that only a hang reaches it.
const ShutdownTimeout = 2 * time.Minute

// Patience bounds waits in tests. It is no estimate of how long anything
// takes: only a hang reaches it.
const Patience = 2 * time.Minute

// WaitFor polls cond until it holds and fails the test if it still does not
// after limit. Tests wait on the condition itself this way instead of
// sleeping for a time that a slow machine may exceed.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(limit, cond) {
		t.Fatalf("still waiting for %s after %s", what, limit)
	}
}

// Eventually polls cond until it holds or limit has passed and reports
// whether it held, for a caller that reports the failure itself.
func Eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
	return true
}

// WaitServing waits until the server at base answers GET /healthz with 200.
func WaitServing(t testing.TB, base string) {
	t.Helper()
	// no keep-alive: an idle connection left behind is no business of the test's server
	client := &http.Client{Timeout: Patience, Transport: &http.Transport{DisableKeepAlives: true}}
	WaitFor(t, Patience, base+" to serve", func() bool {
		res, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// Client is an in-process HTTP client with cookies.
type Client struct {
	t       testing.TB
	tt      *T
	cookies map[string]string
	Header  http.Header // sent with every request
}

// Client returns an anonymous client.
func (tt *T) Client(t testing.TB) *Client {
	return &Client{t: t, tt: tt, cookies: map[string]string{}, Header: http.Header{}}
}

// Response is a finished response with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// Do sends req through the app.
func (c *Client) Do(req *http.Request) *Response {
	c.t.Helper()
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	c.tt.App.Access.Seal(c.tt.App.Fiber) // routes a test added are guarded like the others
	var reqBody []byte
	if req.Body != nil && IsAPIPath(req.URL.Path) {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	res, err := c.tt.App.Fiber.Test(req, -1)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	CheckAPIExchange(c.t, req, reqBody, res, body)
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: string(body)}
}

// Get requests path.
func (c *Client) Get(path string) *Response {
	c.t.Helper()
	return c.Do(httptest.NewRequest(http.MethodGet, path, nil))
}

// CSRF returns the client's CSRF token, fetching a page to obtain one first.
func (c *Client) CSRF() string {
	if _, ok := c.cookies["cardata_csrf"]; !ok {
		c.Get("/admin/login")
	}
	return c.cookies["cardata_csrf"]
}

// PostForm posts a form with the CSRF token filled in, like a browser.
func (c *Client) PostForm(path string, form url.Values) *Response {
	c.t.Helper()
	copied := url.Values{}
	for k, v := range form {
		copied[k] = v
	}
	form = copied
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", c.CSRF())
	}
	return c.PostRawForm(path, form)
}

// PostRawForm posts a form exactly as given (no CSRF token added).
func (c *Client) PostRawForm(path string, form url.Values) *Response {
	c.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

// SendJSON sends a JSON body with method to path.
func (c *Client) SendJSON(method, path string, body any) *Response {
	c.t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = strings.NewReader(s)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return c.Do(req)
}

// LoginStaff signs in through the real login form and returns the client.
func (tt *T) LoginStaff(t testing.TB, email string) *Client {
	t.Helper()
	c := tt.Client(t)
	res := c.PostForm("/admin/login", url.Values{"email": {email}, "password": {Password}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("login %s: status %d: %s", email, res.Status, res.Body)
	}
	return c
}

// Cookie returns a cookie value held by the client.
func (c *Client) Cookie(name string) string { return c.cookies[name] }

// SetCookie sets a cookie on the client.
func (c *Client) SetCookie(name, value string) { c.cookies[name] = value }
