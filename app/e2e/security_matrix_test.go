package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/web"
	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/consent"
)

// matrixPrincipal is one kind of caller of the route-variant matrix.
type matrixPrincipal struct {
	name   string
	kind   string // "" for anonymous
	roles  []string
	client *apptest.Client
}

// The route-variant security matrix: every registered route, every method,
// every principal kind and many spellings of the path. The canonical path
// answers what the policy allows and nothing more; every other spelling is
// redirected to the canonical path (GET, HEAD) or answered 404, and never
// served. A new route without a policy line fails TestEveryRouteHasAPolicy;
// a new route whose guard is missing fails here.
func TestRouteVariantSecurityMatrix(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) {
		// The matrix sends thousands of API requests; the rate limit has its own tests.
		c.APIRateLimit, c.APIRateBurst = 1_000_000, 1_000_000
		// Its sessions and tokens must outlive the walk on a loaded machine
		// (a principal's subtest may start half an hour after it signed in);
		// expiry has its own tests.
		c.SessionIdleTimeout, c.SessionMaxAge, c.APITokenTTL = 24*time.Hour, 24*time.Hour, 24*time.Hour
	})
	principals := matrixPrincipals(t, tt)

	type route struct{ method, pattern, path string }
	var routes []route
	for _, r := range tt.App.Fiber.GetRoutes(true) {
		switch r.Method {
		case fiber.MethodHead, fiber.MethodConnect, fiber.MethodTrace, fiber.MethodOptions:
			continue // HEAD is sent for every GET below
		}
		routes = append(routes, route{r.Method, r.Path, fillPattern(r.Path)})
	}
	if len(routes) < 100 {
		t.Fatalf("only %d routes walked", len(routes))
	}

	pages := newRouteMatcher(tt.App.Fiber)

	// Methods no route of a path serves are never served.
	registered := map[string]bool{}
	for _, r := range routes {
		registered[r.method+" "+r.path] = true
	}

	seen := 0
	for _, p := range principals {
		want, machine := machineReach[p.name]
		if !machine {
			continue
		}
		seen++
		var reach []string
		for _, r := range routes {
			if !tt.App.Access.IsPublic(r.method, r.pattern) && expectAllowed(tt, p, r.method, r.pattern, r.path) {
				reach = append(reach, r.method+" "+r.pattern)
			}
		}
		slices.Sort(reach)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(reach, want) {
			t.Errorf("%s reaches %v, want exactly %v", p.name, reach, want)
		}
	}
	if seen != len(machineReach) {
		t.Fatalf("%d of %d machine principals in the matrix", seen, len(machineReach))
	}

	for _, p := range principals {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range routes {
				for _, m := range []string{fiber.MethodPut, fiber.MethodDelete, fiber.MethodPatch} {
					if registered[m+" "+r.path] {
						continue
					}
					switch res := send(t, p, m, r.path); res.Status {
					case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized, http.StatusForbidden:
					default: // a bearer check in front of a whole surface may refuse first; nothing may serve it
						t.Errorf("%s %s as %s (no such route): %d, want 404 or 405", m, r.path, p.name, res.Status)
					}
				}
				methods := []string{r.method}
				if r.method == fiber.MethodGet {
					methods = append(methods, fiber.MethodHead)
				}
				status := checkCanonical(t, tt, p, r.method, r.pattern, r.path)
				if r.method == fiber.MethodGet && status != 0 {
					// HEAD answers as GET does, without the body.
					if res := send(t, p, fiber.MethodHead, r.path); res.Status != status {
						t.Errorf("HEAD %s as %s: %d, but GET answered %d", r.path, p.name, res.Status, status)
					}
				}
				for _, m := range methods {
					for _, v := range pathVariants(r.path) {
						checkVariant(t, p, m, r.path, v)
					}
				}
				if r.method == fiber.MethodPost {
					checkFormAddress(t, tt, p, pages, r.path)
				}
			}
		})
	}
}

// matrixPrincipals signs in one caller of every kind.
func matrixPrincipals(t *testing.T, tt *apptest.T) []*matrixPrincipal {
	t.Helper()
	anon := tt.Client(t)
	anon.CSRF() // an anonymous browser has a CSRF cookie too: refusals must come from the guard
	ps := []*matrixPrincipal{{name: "anonymous", client: anon}}
	for _, role := range policies.StaffRoles {
		tt.MustCreateStaff(t, role+"@matrix.local", role)
		ps = append(ps, &matrixPrincipal{name: role, kind: policies.KindStaff, roles: []string{role},
			client: tt.LoginStaff(t, role+"@matrix.local")})
	}
	prov := mustActiveProvider(t, tt, "Variant Matrix AG", "DE", "DE136695976")
	svc := onboardingFor(tt)
	for _, u := range []struct{ email, role string }{
		{"dev@variant.example", onboarding.RoleProviderDeveloper},
		{"fin@variant.example", onboarding.RoleProviderFinance},
	} {
		inv, err := svc.InviteProviderUser(obProviderCtx(prov.Admin), prov.Provider.ID, onboarding.Invite{Email: u.email, Name: u.role, Role: u.role})
		if err != nil {
			t.Fatal(err)
		}
		token := inv.Link[len(tt.App.Cfg.PublicURL+"/portal/invitations/"):]
		if _, err := svc.AcceptInvitation(tt.Ctx, token, providerPassword); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, &matrixPrincipal{name: u.role, kind: policies.KindProvider, roles: []string{u.role},
			client: loginProvider(t, tt, u.email, providerPassword)})
	}
	ps = append(ps, &matrixPrincipal{name: "provider_admin", kind: policies.KindProvider, roles: []string{"provider_admin"},
		client: loginProvider(t, tt, prov.Admin.Email, providerPassword)})
	ps = append(ps, &matrixPrincipal{name: "provider_api", kind: policies.KindProvider, roles: []string{"provider_api"},
		client: apiBearer(t, tt, prov)})

	w := &consentWorld{tt: tt, veh: &vehicles.Service{DB: tt.DB, Catalog: catalog.Default()},
		cs: &consent.Service{DB: tt.DB, IsEU: onboarding.IsEU, BcryptCost: 4}}
	w.customer(t, "owner@variant.example")
	ps = append(ps, &matrixPrincipal{name: "customer", kind: policies.KindCustomer, roles: []string{"customer"},
		client: w.loginCustomer(t, "owner@variant.example")})

	_, token, err := tt.App.Ingest.CreateGateway(tt.Ctx, "variant-gateway", "")
	if err != nil {
		t.Fatal(err)
	}
	gw := tt.Client(t)
	gw.Header.Set("Authorization", "Bearer "+token)
	ps = append(ps, &matrixPrincipal{name: "ingest_gateway", kind: policies.KindGateway, roles: []string{"ingest_gateway"}, client: gw})

	// The manufacturer's master-data client: a machine of the ingest surface
	// too, with a credential (cdm_) and a role of its own.
	_, mdToken, err := tt.App.Ingest.CreateMasterDataClient(tt.Ctx, "variant-master-data")
	if err != nil {
		t.Fatal(err)
	}
	md := tt.Client(t)
	md.Header.Set("Authorization", "Bearer "+mdToken)
	ps = append(ps, &matrixPrincipal{name: vehicles.RoleMasterData, kind: policies.KindGateway, roles: []string{vehicles.RoleMasterData}, client: md})
	return ps
}

// machineReach is everything each machine credential of the ingest surface
// may reach beyond the public routes: the matrix checks the answers against
// the policy, and this pins the policy itself, so a widened line (a gateway
// on the master data, a master-data client posting readings or anywhere
// else) fails even though the answers would follow it.
var machineReach = map[string][]string{
	"ingest_gateway": {"POST /ingest/v1/signals"},
	vehicles.RoleMasterData: {
		"GET /ingest/v1/vehicles/:vin",
		"PUT /ingest/v1/vehicles/:vin",
		"POST /ingest/v1/vehicles/:vin/subscriptions",
		"POST /ingest/v1/vehicles/:vin/subscriptions/:subscription/end",
		"PUT /ingest/v1/vehicles/:vin/holders",
		"POST /ingest/v1/master-data",
	},
}

// fillPattern turns a route pattern into a concrete path naming nothing
// that exists, so an allowed request changes nothing.
func fillPattern(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		switch {
		case s == "*" || s == "+":
			segs[i] = "nothing-here"
		case strings.HasPrefix(s, ":"):
			name := strings.ToLower(strings.TrimSuffix(s[1:], "?"))
			switch {
			case strings.Contains(name, "vin"):
				segs[i] = "WBAZZ000000000000"
			case strings.Contains(name, "token"):
				segs[i] = "no-such-token"
			case strings.Contains(name, "code") || strings.Contains(name, "market"):
				segs[i] = "ZZ"
			case strings.Contains(name, "name") || strings.Contains(name, "job"):
				segs[i] = "no.such.job"
			default:
				segs[i] = "999999999"
			}
		}
	}
	return strings.Join(segs, "/")
}

// pathVariants are other spellings of p that must never be served as p.
func pathVariants(p string) []string {
	if p == "/" {
		return []string{"/./", "/x/..", "/%2F", "/%2e/", "/\\"}
	}
	first, rest, _ := strings.Cut(p[1:], "/")
	if rest != "" {
		rest = "/" + rest
	}
	out := []string{
		p + "/",                      // a trailing slash
		"/" + first + "/" + rest,     // a doubled slash
		"/" + first + "/." + rest,    // a dot segment
		"/" + first + "/x/.." + rest, // a dot-dot segment
		p + "/.",                     // a trailing dot segment
		"/%" + fmt.Sprintf("%02X", first[0]) + p[2:], // a percent-encoded letter
		p + "%2F", p + "/%2e", "/\\" + p[1:], // encoded separators and a backslash
	}
	if i := strings.LastIndex(p, "/"); i > 0 {
		out = append(out, p[:i]+"%2F"+p[i+1:], p[:i]+"%2f"+p[i+1:])
	}
	if swapped := swapCase(first); swapped != first {
		out = append(out, "/"+swapped+rest)
	}
	if upper := strings.ToUpper(p); upper != p {
		out = append(out, upper)
	}
	return out
}

func swapCase(s string) string {
	r := []rune(s)
	for i, c := range r {
		if unicode.IsLetter(c) {
			if unicode.IsUpper(c) {
				r[i] = unicode.ToLower(c)
			} else {
				r[i] = unicode.ToUpper(c)
			}
			break
		}
	}
	return string(r)
}

// send issues one request as p; unsafe requests carry p's CSRF token like a browser.
func send(t *testing.T, p *matrixPrincipal, method, target string) *apptest.Response {
	t.Helper()
	var req *http.Request
	if method == fiber.MethodGet || method == fiber.MethodHead {
		req = httptest.NewRequest(method, "http://cardata.test/", nil)
	} else {
		form := url.Values{"_csrf": {p.client.Cookie("cardata_csrf")}}
		req = httptest.NewRequest(method, "http://cardata.test/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-CSRF-Token", p.client.Cookie("cardata_csrf"))
	}
	// The raw target, exactly as spelt: net/url would clean nothing, but
	// setting it through Opaque keeps every byte on the request line.
	req.URL = &url.URL{Scheme: "http", Host: "cardata.test", Opaque: target}
	req.RequestURI = target
	return p.client.Do(req)
}

// guardRefused tells a refusal by the route guard or a surface's second line
// from a handler's own answer: 401 (or a sign-in redirect) where the caller
// has no principal the surface knows (a session on the API, a bearer token on
// a page), 403 where its principal is not allowed.
func guardRefused(res *apptest.Response) bool {
	switch res.Status {
	case http.StatusUnauthorized:
		return true
	case http.StatusSeeOther:
		return strings.Contains(res.Header.Get("Location"), "/login?next=")
	case http.StatusForbidden:
		return strings.Contains(res.Body, `"code":"forbidden"`) || strings.Contains(res.Body, "Your roles do not include access") ||
			strings.Contains(res.Body, "csrf_invalid")
	}
	return false
}

// expectAllowed is the policy's answer for p on the route.
func expectAllowed(tt *apptest.T, p *matrixPrincipal, method, pattern, concrete string) bool {
	if method == fiber.MethodHead {
		method = fiber.MethodGet
	}
	if tt.App.Access.IsPublic(method, pattern) {
		return true
	}
	if p.kind == "" || !kindOwns(p.kind, pattern) {
		return false
	}
	return tt.App.Enforcer.Allowed(p.roles, concrete, method)
}

// kindOwns names which kind of principal each surface serves.
func kindOwns(kind, pattern string) bool {
	for prefix, k := range map[string]string{"/admin": policies.KindStaff, "/portal": policies.KindProvider,
		"/api/": policies.KindProvider, "/my": policies.KindCustomer, "/ingest/": policies.KindGateway} {
		if pattern == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(pattern, strings.TrimSuffix(prefix, "/")+"/") {
			return k == kind
		}
	}
	return true
}

var matrixMu sync.Mutex

// checkCanonical sends the route's own spelling and returns the status.
func checkCanonical(t *testing.T, tt *apptest.T, p *matrixPrincipal, method, pattern, concrete string) int {
	t.Helper()
	if strings.HasSuffix(pattern, "/logout") && method != fiber.MethodGet {
		return 0 // signing the matrix's principal out would spoil the rest of its rows
	}
	res := send(t, p, method, concrete)
	if res.Status >= 500 {
		t.Errorf("%s %s as %s: %d (never a server error)", method, concrete, p.name, res.Status)
		return res.Status
	}
	allowed := expectAllowed(tt, p, method, pattern, concrete)
	switch {
	case allowed && guardRefused(res) && !tt.App.Access.IsPublic(method, pattern):
		t.Errorf("%s %s as %s: the policy allows it, got %d", method, concrete, p.name, res.Status)
	case !allowed && !guardRefused(res):
		t.Errorf("%s %s as %s: the policy refuses it, got %d %.200s", method, concrete, p.name, res.Status, res.Body)
	case !allowed && p.kind == "" && res.Status == http.StatusForbidden:
		t.Errorf("%s %s anonymous: want 401 or a sign-in redirect, got 403", method, concrete)
	}
	return res.Status
}

func checkVariant(t *testing.T, p *matrixPrincipal, method, canonical, variant string) {
	t.Helper()
	res := send(t, p, method, variant)
	switch res.Status {
	case http.StatusNotFound:
		return
	case http.StatusPermanentRedirect:
		loc, _, _ := strings.Cut(res.Header.Get("Location"), "?")
		if (method == fiber.MethodGet || method == fiber.MethodHead) && loc == path.Clean(loc) && !strings.ContainsAny(loc, "\\%") {
			return
		}
	case http.StatusForbidden:
		if strings.Contains(res.Body, "csrf_invalid") {
			return // refused before routing; never served
		}
	}
	t.Errorf("%s %q (a spelling of %s) as %s: want 404 or a redirect to the canonical path, got %d %s %.200s",
		method, variant, canonical, p.name, res.Status, res.Header.Get("Location"), res.Body)
}

// Every route runs the route guard first, and every route of a browser
// surface (but its sign-in pages) the surface's principal check next: a
// route mounted outside both fails here before any request is sent.
func TestEveryRouteIsGuardedAndSurfacesCheckTheirPrincipal(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	n := 0
	sealed := map[string]bool{}
	for _, r := range tt.App.Access.Routes() {
		n++
		sealed[r.Method+" "+r.Path] = true
		if !tt.App.Access.Sealed(r) {
			t.Errorf("%s %s: the route guard is not its first handler", r.Method, r.Path)
			continue
		}
		surface := strings.HasPrefix(r.Path, "/admin") || strings.HasPrefix(r.Path, "/portal") || strings.HasPrefix(r.Path, "/my")
		if !surface || tt.App.Access.IsPublic(r.Method, r.Path) {
			continue
		}
		if len(r.Handlers) < 3 || !web.IsKindCheck(r.Handlers[1]) {
			t.Errorf("%s %s: no principal check of its surface behind the guard", r.Method, r.Path)
		}
	}
	for _, r := range tt.App.Fiber.GetRoutes(true) {
		if !sealed[r.Method+" "+r.Path] {
			t.Errorf("%s %s: registered but never guarded", r.Method, r.Path)
		}
	}
	if n < 100 {
		t.Fatalf("only %d routes walked", n)
	}
}

// The reported bypasses, replayed: another case, a doubled or trailing
// slash never reaches a handler, with or without a session, and a
// state-changing form without its CSRF token is refused under any spelling.
func TestReportedBypassesStayClosed(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "root@bypass.local", policies.RoleAdmin)
	users := func() int64 {
		var n int64
		tt.DB.Table("staff_users").Count(&n)
		return n
	}
	before := users()
	form := url.Values{"email": {"x@example.org"}, "name": {"X"}, "roles": {"admin"}, "password": {"a-long-password-1"}}
	anon := tt.Client(t)
	for _, p := range []string{"/Admin/users", "/ADMIN/USERS", "/admin/Users", "/admin/users/", "/admin/users//", "/admin//users",
		"/admin/./users", "/admin/x/../users", "/%61dmin/users", "/admin%2Fusers"} {
		// No session and no CSRF token, as in the report.
		if res := anon.PostRawForm(p, form); res.Status != http.StatusNotFound && res.Status != http.StatusForbidden {
			t.Errorf("anonymous POST %s: %d, want 404 (or 403 for a missing CSRF token)", p, res.Status)
		}
		// With a CSRF token but still no session.
		if res := anon.PostForm(p, form); res.Status != http.StatusNotFound {
			t.Errorf("anonymous POST %s with a CSRF token: %d, want 404", p, res.Status)
		}
	}
	for _, p := range []string{"/Admin/users", "/Admin/audit", "/Admin/outbox/1", "/Admin/customers/1", "/Admin/billing/export.csv"} {
		if res := anon.Get(p); res.Status != http.StatusNotFound {
			t.Errorf("anonymous GET %s: %d, want 404", p, res.Status)
		}
	}
	if n := users(); n != before {
		t.Fatalf("%d staff users created anonymously", n-before)
	}

	// Signed in, a form without the CSRF token is refused whatever the spelling.
	c := tt.LoginStaff(t, "root@bypass.local")
	for _, p := range []string{"/admin/users", "/admin/users/", "/admin/users//", "/Admin/users", "/portal/clients//", "/my/reports//"} {
		res := c.PostRawForm(p, form)
		refused := res.Status == http.StatusNotFound || (res.Status == http.StatusForbidden && strings.Contains(res.Body, "expired"))
		if !refused {
			t.Errorf("POST %s without a CSRF token: %d, want 403 csrf_invalid or 404", p, res.Status)
		}
	}
	if n := users(); n != before {
		t.Fatalf("%d staff users created without a CSRF token", n-before)
	}
	// GET spellings of a page lead to the page itself.
	res := c.Get("/admin/users/")
	if res.Status != http.StatusPermanentRedirect || res.Header.Get("Location") != "/admin/users" {
		t.Errorf("GET /admin/users/: %d %s, want 308 to /admin/users", res.Status, res.Header.Get("Location"))
	}
	res = c.Get("/admin//audit?page=2")
	if res.Status != http.StatusPermanentRedirect || res.Header.Get("Location") != "/admin/audit?page=2" {
		t.Errorf("GET /admin//audit: %d %s, want 308 to /admin/audit?page=2", res.Status, res.Header.Get("Location"))
	}
}

// checkFormAddress sends GET to the address of a POST route that no GET
// route serves (a confirmation page's address, reloaded). A browser surface
// sends it on (303) to the address with segments removed, or the surface's
// home, never to another surface and with no query; an anonymous caller
// following that redirect ends at a sign-in page, a refusal or a 404, unless
// the page is public anyway. Every other path keeps its 405.
func checkFormAddress(t *testing.T, tt *apptest.T, p *matrixPrincipal, pages *routeMatcher, concrete string) {
	t.Helper()
	if pages.pattern(concrete) != "" {
		return // a GET route serves this path
	}
	res := send(t, p, fiber.MethodGet, concrete)
	browser := false
	for _, s := range []string{"/admin", "/portal", "/my", "/register"} {
		browser = browser || concrete == s || strings.HasPrefix(concrete, s+"/")
	}
	loc := res.Header.Get("Location")
	switch {
	case !browser:
		if res.Status != http.StatusMethodNotAllowed && !guardRefused(res) && res.Status != http.StatusNotFound {
			t.Errorf("GET %s as %s (a form's address off the browser surfaces): %d %s, want 405", concrete, p.name, res.Status, loc)
		}
		return
	case res.Status != http.StatusSeeOther || len(loc) < 2 || !strings.HasPrefix(concrete, loc+"/") || strings.ContainsAny(loc, "?#"):
		t.Errorf("GET %s as %s (a form's address): %d %q, want 303 to the address shortened", concrete, p.name, res.Status, loc)
		return
	}
	next := send(t, p, fiber.MethodGet, loc)
	if next.Status >= 500 {
		t.Errorf("GET %s as %s, sent on from %s: %d", loc, p.name, concrete, next.Status)
	}
	if p.kind != "" {
		return
	}
	public := tt.App.Access.IsPublic(fiber.MethodGet, pages.pattern(loc))
	if !guardRefused(next) && next.Status != http.StatusNotFound && !(public && next.Status < 400) {
		t.Errorf("anonymous GET %s, sent on from %s: %d %q, want a sign-in redirect or a refusal", loc, concrete, next.Status, next.Header.Get("Location"))
	}
}
