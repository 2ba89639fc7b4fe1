package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/apptest"
	"cardata/app/web"
	"cardata/policies"
	"cardata/policies/audit"
)

// Every non-public route must have at least one policy line; a route that
// nobody thought about fails the build.
func TestEveryRouteHasAPolicy(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := tt.App
	n := 0
	for _, r := range a.Fiber.GetRoutes(true) {
		if r.Method == fiber.MethodHead || r.Method == fiber.MethodConnect || r.Method == fiber.MethodTrace {
			continue
		}
		n++
		path := r.Path
		if len(path) > 1 {
			path = strings.TrimRight(path, "/")
		}
		if a.Access.IsPublic(r.Method, path) {
			continue
		}
		if !a.Enforcer.Covered(path, r.Method) {
			t.Errorf("route %s %s has no policy in policies/rules and is not declared public", r.Method, r.Path)
		}
	}
	if n < 10 {
		t.Fatalf("only %d routes walked", n)
	}
}

// The role-by-route matrix: the allowed roles get through, every other role gets 403.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	clients := map[string]*apptest.Client{}
	for _, role := range policies.StaffRoles {
		tt.MustCreateStaff(t, role+"@test.local", role)
		clients[role] = tt.LoginStaff(t, role+"@test.local")
	}
	target := tt.MustCreateStaff(t, "target@test.local", policies.RoleSupport)
	id := itoa(target.ID)
	matrix := []struct {
		method, path string
		form         url.Values
		allowed      []string
	}{
		{"GET", "/admin", nil, policies.StaffRoles},
		{"GET", "/admin/account", nil, policies.StaffRoles},
		{"GET", "/admin/users", nil, []string{"admin", "auditor"}},
		{"GET", "/admin/users/" + id, nil, []string{"admin", "auditor"}},
		{"GET", "/admin/users/new", nil, []string{"admin", "auditor"}},
		{"POST", "/admin/users/" + id, url.Values{"name": {"Target"}, "roles": {"support"}, "active": {"true"}}, []string{"admin"}},
		{"POST", "/admin/users", url.Values{"name": {"X"}}, []string{"admin"}},
		{"GET", "/admin/audit", nil, []string{"admin", "auditor"}},
	}
	for _, m := range matrix {
		for _, role := range policies.StaffRoles {
			c := clients[role]
			var res *apptest.Response
			if m.method == "GET" {
				res = c.Get(m.path)
			} else {
				res = c.PostForm(m.path, m.form)
			}
			allowed := false
			for _, r := range m.allowed {
				allowed = allowed || r == role
			}
			if allowed && (res.Status == http.StatusForbidden || res.Status >= 500 || res.Status == http.StatusUnauthorized) {
				t.Errorf("%s %s as %s: want access, got %d", m.method, m.path, role, res.Status)
			}
			if !allowed && res.Status != http.StatusForbidden {
				t.Errorf("%s %s as %s: want 403, got %d", m.method, m.path, role, res.Status)
			}
		}
	}
}

func itoa(n int64) string {
	return strings.TrimSpace(strings.Replace(json.Number(jsonInt(n)).String(), "\"", "", -1))
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestLoginLogoutAndSessionCookie(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "maria@test.local", policies.RolePartnerManager)
	c := tt.Client(t)
	if res := c.Get("/admin"); res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/admin/login") {
		t.Fatalf("anonymous /admin: %d %s", res.Status, res.Header.Get("Location"))
	}
	res := c.PostForm("/admin/login", url.Values{"email": {"maria@test.local"}, "password": {"wrong-password-1"}})
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "wrong") {
		t.Fatalf("bad password: %d", res.Status)
	}
	res = c.PostForm("/admin/login", url.Values{"email": {"MARIA@test.local"}, "password": {apptest.Password}, "next": {"/admin/account"}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin/account" {
		t.Fatalf("login: %d %s", res.Status, res.Header.Get("Location"))
	}
	setCookie := strings.Join(res.Header.Values("Set-Cookie"), "\n")
	if !strings.Contains(setCookie, "cardata_session=") || !strings.Contains(strings.ToLower(setCookie), "httponly") ||
		!strings.Contains(strings.ToLower(setCookie), "samesite=lax") {
		t.Fatalf("session cookie attributes: %s", setCookie)
	}
	var stored int64
	tt.DB.Raw("SELECT count(*) FROM sessions WHERE token_hash = sha256(?::bytea)", c.Cookie("cardata_session")).Scan(&stored)
	if stored != 1 {
		t.Fatalf("session must be stored hashed, found %d", stored)
	}
	if res := c.Get("/admin"); res.Status != 200 || !strings.Contains(res.Body, "Partner manager") {
		t.Fatalf("dashboard: %d", res.Status)
	}
	// Open redirects are refused.
	c2 := tt.Client(t)
	res = c2.PostForm("/admin/login", url.Values{"email": {"maria@test.local"}, "password": {apptest.Password}, "next": {"//evil.example/x"}})
	if res.Header.Get("Location") != "/admin" {
		t.Fatalf("open redirect: %s", res.Header.Get("Location"))
	}
	res = c.PostForm("/admin/logout", nil)
	if res.Status != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.Status)
	}
	if res := c.Get("/admin"); res.Status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", res.Status)
	}
	tt.DB.Raw("SELECT count(*) FROM sessions").Scan(&stored)
	if stored != 1 { // c2's session remains, c's is gone
		t.Fatalf("sessions left: %d", stored)
	}
}

func TestCSRFRequiredOnForms(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@test.local")
	res := c.PostRawForm("/admin/users", url.Values{"name": {"Eve"}, "email": {"eve@test.local"}, "roles": {"admin"}, "password": {"long-enough-password"}})
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "expired") {
		t.Fatalf("POST without token: %d", res.Status)
	}
	res = c.PostRawForm("/admin/users", url.Values{"_csrf": {"forged-token-forged-token-forged-token"}, "name": {"Eve"}})
	if res.Status != http.StatusForbidden {
		t.Fatalf("POST with wrong token: %d", res.Status)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM staff_users WHERE email = 'eve@test.local'").Scan(&n)
	if n != 0 {
		t.Fatal("user created despite CSRF failure")
	}
	// Login itself is protected too.
	anon := tt.Client(t)
	if res := anon.PostRawForm("/admin/login", url.Values{"email": {"ada@test.local"}, "password": {apptest.Password}}); res.Status != http.StatusForbidden {
		t.Fatalf("login without token: %d", res.Status)
	}
}

func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	c := tt.Client(t)
	for i := 0; i < 5; i++ {
		c.PostForm("/admin/login", url.Values{"email": {"otto@test.local"}, "password": {"nope-nope-nope"}})
	}
	res := c.PostForm("/admin/login", url.Values{"email": {"otto@test.local"}, "password": {apptest.Password}})
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled account: %d", res.Status)
	}
}

func TestStaffAdminCreatesUserAndChangeIsAudited(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@test.local")
	// invalid input re-renders with field errors, never a 500
	res := c.PostForm("/admin/users", url.Values{"name": {""}, "email": {"not-an-email"}, "password": {"short"}, "roles": {"wizard"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "valid e-mail") || !strings.Contains(res.Body, "12 characters") ||
		!strings.Contains(res.Body, "unknown role") {
		t.Fatalf("invalid form: %d %s", res.Status, res.Body)
	}
	res = c.PostForm("/admin/users", url.Values{"name": {"Fiona"}, "email": {"fiona@test.local"}, "password": {"a-long-password"}, "roles": {"finance", "support"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	loc := res.Header.Get("Location")
	res = c.PostForm(loc, url.Values{"name": {"Fiona F."}, "roles": {"finance"}, "active": {"true"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("update: %d %s", res.Status, res.Body)
	}
	page := c.Get(loc)
	if !strings.Contains(page.Body, "roles [finance, support] -&gt; [finance]") {
		t.Fatalf("timeline missing change: %s", page.Body)
	}
	entries, _, err := audit.List(tt.Ctx, tt.DB, audit.Filter{Action: "staff_user"})
	if err != nil || len(entries) < 2 || entries[0].ActorLabel != "ada@test.local" || entries[0].RequestID == "" || entries[0].ClientAddr == "" {
		t.Fatalf("audit entries: %+v %v", entries, err)
	}
	// The new user signs in with their roles.
	fc := tt.Client(t)
	if r := fc.PostForm("/admin/login", url.Values{"email": {"fiona@test.local"}, "password": {"a-long-password"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("fiona login: %d", r.Status)
	}
	// An admin cannot lock themselves out.
	var adaID int64
	tt.DB.Raw("SELECT id FROM staff_users WHERE email = 'ada@test.local'").Scan(&adaID)
	res = c.PostForm("/admin/users/"+itoa(adaID), url.Values{"name": {"Ada"}, "roles": {"auditor"}, "active": {"true"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "own administrator role") {
		t.Fatalf("self-demotion: %d", res.Status)
	}
}

func TestDeactivationEndsSessions(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	sam := tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	admin := tt.LoginStaff(t, "ada@test.local")
	samc := tt.LoginStaff(t, "sam@test.local")
	if r := samc.Get("/admin"); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := admin.PostForm("/admin/users/"+itoa(sam.ID), url.Values{"name": {"sam"}, "roles": {"support"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("deactivate: %d", r.Status)
	}
	if r := samc.Get("/admin"); r.Status != http.StatusSeeOther {
		t.Fatalf("deactivated user still in: %d", r.Status)
	}
	if r := samc.PostForm("/admin/login", url.Values{"email": {"sam@test.local"}, "password": {apptest.Password}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("deactivated login: %d", r.Status)
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@test.local")
	tt.DB.Exec("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
	if r := c.Get("/admin"); r.Status != http.StatusSeeOther {
		t.Fatalf("idle session accepted: %d", r.Status)
	}
	c = tt.LoginStaff(t, "ada@test.local")
	tt.DB.Exec("UPDATE sessions SET expires_at = now() - interval '1 second'")
	if r := c.Get("/admin"); r.Status != http.StatusSeeOther {
		t.Fatalf("expired session accepted: %d", r.Status)
	}
}

func TestProblemJSONForUnknownAPIPathsAndMethods(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	c := tt.Client(t)
	res := c.Get("/api/v1/does-not-exist")
	var p web.Problem
	res.JSON(t, &p)
	if res.Status != 404 || res.Header.Get("Content-Type") != "application/problem+json" || p.Code != "not_found" || p.Status != 404 || p.Instance == "" {
		t.Fatalf("404: %d %s %s", res.Status, res.Header.Get("Content-Type"), res.Body)
	}
	res = c.Do(httptest.NewRequest(http.MethodDelete, "/healthz", nil))
	if res.Status != http.StatusMethodNotAllowed {
		t.Fatalf("405: %d %s", res.Status, res.Body)
	}
	// HTML gets an error page, never a stack trace.
	res = c.Get("/admin/nope")
	if res.Status != 404 || !strings.Contains(res.Body, "<!doctype html>") {
		t.Fatalf("html 404: %d", res.Status)
	}
	// A request id is echoed, and a caller's sane id is kept.
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	if res := c.Do(req); res.Header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("request id: %q", res.Header.Get("X-Request-Id"))
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	c := tt.Client(t)
	if r := c.Get("/healthz"); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := c.Get("/readyz"); r.Status != 200 || !strings.Contains(r.Body, "ready") {
		t.Fatal(r.Status, r.Body)
	}
	c.Get("/admin/login")
	// Metrics are served on METRICS_ADDR only (see security_headers_test.go).
	rec := httptest.NewRecorder()
	tt.App.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{`cardata_http_requests_total{method="GET",route="/admin/login",status="200"}`,
		"cardata_http_request_duration_seconds_bucket", "go_sql_open_connections"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if r := c.Get("/metrics"); r.Status != http.StatusNotFound {
		t.Errorf("/metrics on the public listener: %d", r.Status)
	}
	// readyz reports an outdated schema.
	tt.DB.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (1, false)")
	tt.DB.Exec("DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)")
	if r := c.Get("/readyz"); r.Status != 503 || !strings.Contains(r.Body, "schema_outdated") {
		t.Fatalf("outdated schema: %d %s", r.Status, r.Body)
	}
}

func TestPanicBecomesProblemNotCrash(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.App.Fiber.Get("/api/v1/test-panic", func(c *fiber.Ctx) error { panic("boom") })
	tt.App.Access.Public("GET", "/api/v1/test-panic")
	res := tt.Client(t).Get("/api/v1/test-panic")
	if res.Status != 500 || strings.Contains(res.Body, "boom") || !strings.Contains(res.Body, `"code":"internal"`) {
		t.Fatalf("panic: %d %s", res.Status, res.Body)
	}
	_ = time.Second
}
