package e2e

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/web"
	"cardata/policies"
)

// badValues are the two spellings of text PostgreSQL refuses: a NUL byte
// and a byte sequence that is not UTF-8.
var badValues = map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xffb"}

// mustRefuseInput asserts a 400 naming field: a problem document with code
// invalid_input on machine surfaces, an error page naming the field on HTML
// surfaces.
func mustRefuseInput(t *testing.T, what string, res *apptest.Response, field string, api bool) {
	t.Helper()
	if res.Status != http.StatusBadRequest {
		t.Errorf("%s: status %d, want 400: %.300s", what, res.Status, res.Body)
		return
	}
	if !api {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") ||
			!strings.Contains(res.Body, "&#34;"+field+"&#34;") {
			t.Errorf("%s: want an HTML error page naming %q, got %s: %.500s", what, field, ct, res.Body)
		}
		return
	}
	var p web.Problem
	res.JSON(t, &p)
	if res.Header.Get("Content-Type") != "application/problem+json" || p.Code != "invalid_input" ||
		len(p.Errors) != 1 || p.Errors[0].Field != field {
		t.Errorf("%s: want invalid_input on %q, got %s %+v", what, field, res.Header.Get("Content-Type"), p)
	}
}

func formRequest(method, path string, form url.Values) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func TestBadInputIsRefusedAtTheEdge(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@bad.test", policies.RoleAdmin)
	staffC := tt.LoginStaff(t, "ada@bad.test")
	prov := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU12345675")
	portalC := loginProvider(t, tt, prov.Admin.Email, providerPassword)
	apiC := apiBearer(t, tt, prov)
	ns, err := onboardingFor(tt).CreateAPIClient(tt.Ctx, prov.Provider.ID, "bad input tests")
	if err != nil {
		t.Fatal(err)
	}

	for label, bad := range badValues {
		q := url.QueryEscape(bad)
		anon := tt.Client(t)

		// Sign-ins on all three surfaces (the e-mail is looked up).
		for _, path := range []string{"/admin/login", "/portal/login", "/my/login"} {
			res := anon.PostForm(path, url.Values{"email": {bad + "@example.org"}, "password": {"whatever-password"}})
			mustRefuseInput(t, label+" "+path, res, "email", false)
		}
		mustRefuseInput(t, label+" login next", anon.Get("/admin/login?next="+q), "next", false)

		// Staff search and filter pages.
		for _, target := range []struct{ path, field string }{
			{"/admin/users?q=" + q, "q"},
			{"/admin/users?role=" + q, "role"},
			{"/admin/providers?q=" + q, "q"},
			{"/admin/providers?country=" + q, "country"},
			{"/admin/vehicles?q=" + q, "q"},
			{"/admin/customers?q=" + q, "q"},
			{"/admin/tickets?q=" + q, "q"},
			{"/admin/tickets?status=" + q, "status"},
			{"/admin/audit?actor=" + q, "actor"},
			{"/admin/vehicles/" + url.PathEscape(bad), "path"},
		} {
			mustRefuseInput(t, label+" "+target.path, staffC.Get(target.path), target.field, false)
		}
		mustRefuseInput(t, label+" staff form", staffC.PostForm("/admin/users",
			url.Values{"name": {bad}, "email": {"x@bad.test"}, "password": {"a-long-password"}, "roles": {"support"}}), "name", false)

		// Portal forms and filters, urlencoded and multipart.
		mustRefuseInput(t, label+" portal client form", portalC.PostForm("/portal/clients", url.Values{"name": {bad}}), "name", false)
		mustRefuseInput(t, label+" portal usage filter", portalC.Get("/portal/deliveries?period="+q), "period", false)
		mustRefuseInput(t, label+" portal upload", postMultipart(t, portalC, "/portal/application/documents",
			part{name: "kind", value: bad}, part{name: "documents", filename: "extract.pdf", data: obPDF}), "kind", false)
		mustRefuseInput(t, label+" registration form", postMultipart(t, anon, "/register",
			part{name: "legal_name", value: bad}, part{name: "documents", filename: "extract.pdf", data: obPDF}), "legal_name", false)

		// OAuth: client_id in the form and in HTTP Basic.
		res := anon.Do(formRequest(http.MethodPost, "/oauth/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {ns.Client.ClientID + bad}, "client_secret": {ns.Secret}}))
		mustRefuseInput(t, label+" token form client_id", res, "client_id", true)
		req := formRequest(http.MethodPost, "/oauth/token", url.Values{"grant_type": {"client_credentials"}})
		req.SetBasicAuth(url.QueryEscape(ns.Client.ClientID+bad), url.QueryEscape(ns.Secret))
		mustRefuseInput(t, label+" token Basic client_id (form-encoded)", anon.Do(req), "client_id", true)
		req = formRequest(http.MethodPost, "/oauth/token", url.Values{"grant_type": {"client_credentials"}})
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(ns.Client.ClientID+bad+":"+ns.Secret)))
		mustRefuseInput(t, label+" token Basic client_id (raw)", anon.Do(req), "client_id", true)

		// Public registration API: the escape and the raw bytes.
		escaped := `{"legalName":"ACME\u0000 AG","contactEmail":"a@b.example"}`
		if label != "NUL" {
			escaped = "{\"legalName\":\"ACME \xff AG\",\"contactEmail\":\"a@b.example\"}"
		}
		mustRefuseInput(t, label+" registration API", anon.SendJSON(http.MethodPost, "/api/v1/registrations", escaped), "legalName", true)
		mustRefuseInput(t, label+" registration API document", anon.SendJSON(http.MethodPost, "/api/v1/registrations",
			`{"legalName":"ACME","documents":[{"filename":"a.pdf"},{"filename":"b`+jsonBad(label)+`.pdf"}]}`), "documents[1].filename", true)

		// Provider API list filters, path parameters and Idempotency-Key.
		for _, target := range []struct{ path, field string }{
			{"/api/v1/invoices?status=" + q, "status"},
			{"/api/v1/invoices?period=" + q, "period"},
			{"/api/v1/deliveries?kind=" + q, "kind"},
			{"/api/v1/deliveries?cursor=" + q, "cursor"},
			{"/api/v1/usage?period=" + q, "period"},
			{"/api/v1/webhooks/1/deliveries?status=" + q, "status"},
			{"/api/v1/vehicles/WBA00000000000001/telematicData?containerId=" + q, "containerId"},
			{"/api/v1/vehicles/" + url.PathEscape(bad) + "/capabilities", "path"},
		} {
			mustRefuseInput(t, label+" "+target.path, apiC.Get(target.path), target.field, true)
		}
		req = httptest.NewRequest(http.MethodPost, "/api/v1/webhooks", strings.NewReader(`{"url":"https://hooks.example/x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "key-"+bad)
		mustRefuseInput(t, label+" Idempotency-Key", apiC.Do(req), "Idempotency-Key", true)
		mustRefuseInput(t, label+" webhook JSON", apiC.SendJSON(http.MethodPost, "/api/v1/webhooks",
			`{"url":"https://hooks.example/`+jsonBad(label)+`"}`), "url", true)
	}

	// Nothing of the above reached the database.
	var n int64
	tt.DB.Raw("SELECT count(*) FROM staff_users WHERE email = 'x@bad.test'").Scan(&n)
	if n != 0 {
		t.Fatal("a refused staff form created a user")
	}
}

// jsonBad spells the bad value inside a JSON string: the \u0000 escape or a
// raw invalid byte.
func jsonBad(label string) string {
	if label == "NUL" {
		return `\u0000`
	}
	return "\xff"
}

var routeParam = regexp.MustCompile(`:[A-Za-z_]+\??|\*|\+`)

// TestEveryGETRouteRefusesBadInput walks every registered GET route as an
// anonymous client with a NUL query parameter, and with a bad path
// parameter where the route has one: never a 500.
func TestEveryGETRouteRefusesBadInput(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	seen := map[string]bool{}
	var paths []string
	for _, r := range tt.App.Fiber.GetRoutes(true) {
		if r.Method != http.MethodGet || seen[r.Path] {
			continue
		}
		seen[r.Path] = true
		paths = append(paths, r.Path)
	}
	sort.Strings(paths)
	if len(paths) < 20 {
		t.Fatalf("only %d GET routes registered?", len(paths))
	}
	c := tt.Client(t)
	for _, p := range paths {
		plain := routeParam.ReplaceAllString(p, "1")
		targets := []string{plain + "?q=a%00b", plain + "?q=a%FFb"}
		if plain != p {
			targets = append(targets, routeParam.ReplaceAllString(p, "a%00b"), routeParam.ReplaceAllString(p, "a%C3"))
		}
		for _, target := range targets {
			res := c.Get(target)
			if res.Status >= 500 {
				t.Errorf("GET %s (route %s): %d %.300s", target, p, res.Status, res.Body)
			} else if res.Status != http.StatusBadRequest {
				t.Errorf("GET %s (route %s): %d, want 400 from the input check", target, p, res.Status)
			}
		}
	}
	t.Logf("walked %d GET routes", len(paths))
}
