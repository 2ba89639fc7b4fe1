package e2e

import (
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/devidp"
	"cardata/policies/audit"
)

// oidcWorld is the app with its two OpenID providers running in the test:
// the company's (staff) and the manufacturer's customer identity (/my),
// both development identity providers (app/devidp, a real OP issuing
// RS256-signed tokens). The app's URL is fixed before it starts, so the
// redirect URLs it registers are the ones a browser follows.
type oidcWorld struct {
	tt       *apptest.T
	staff    *devidp.Provider
	customer *devidp.Provider
	ln       net.Listener
	base     string // the app's URL once served (serve)
}

const oidcTestSecret = "test-client-secret"

func newOIDCWorld(t *testing.T) *oidcWorld {
	t.Helper()
	st, err := devidp.Start("127.0.0.1:0", "Company identity (test)", "cardata-staff", oidcTestSecret, devidp.Staff())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	cu, err := devidp.Start("127.0.0.1:0", "Customer identity (test)", "cardata-customers", oidcTestSecret, devidp.Customers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cu.Close)
	roleMap, err := config.ParseRoleMap(config.DevRoleMap)
	if err != nil {
		t.Fatal(err)
	}
	ln := apptest.Listen(t)
	tt := apptest.New(t, func(c *config.Config) {
		c.PublicURL = "http://" + ln.Addr().String()
		c.StaffOIDC = config.OIDC{Issuer: st.Issuer(), ClientID: "cardata-staff", ClientSecret: oidcTestSecret,
			Scopes: []string{"profile", "email", "groups"}, RoleClaim: "groups", RoleMap: roleMap}
		c.CustomerOIDC = config.OIDC{Issuer: cu.Issuer(), ClientID: "cardata-customers", ClientSecret: oidcTestSecret,
			Scopes: []string{"profile", "email"}}
	})
	return &oidcWorld{tt: tt, staff: st, customer: cu, ln: ln}
}

// serve starts the app on its listener (for browsers) and returns its URL.
func (w *oidcWorld) serve(t *testing.T) string {
	t.Helper()
	if w.base == "" {
		w.base = w.tt.ServeOn(t, w.ln)
	}
	return w.base
}

// noFollow is a client to the provider that shows each redirect.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// flow drives a sign-in on surface (/admin or /my) for id without a
// browser: start, the provider's authorization (id queued, so no page),
// and returns the callback path the provider sends the browser back to.
func (w *oidcWorld) flow(t *testing.T, c *apptest.Client, surface string, id devidp.Identity) string {
	t.Helper()
	p := w.staff
	if surface == "/my" {
		p = w.customer
	}
	res := c.Get(surface + "/oidc/login")
	if res.Status != http.StatusSeeOther {
		t.Fatalf("start sign-in: %d %s", res.Status, res.Body)
	}
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, p.Issuer()+"/authorize?") {
		t.Fatalf("start sign-in goes to %q, not the provider %s", loc, p.Issuer())
	}
	for _, want := range []string{"code_challenge_method=S256", "code_challenge=", "nonce=", "state="} {
		if !strings.Contains(loc, want) {
			t.Fatalf("authorization request %q lacks %s", loc, want)
		}
	}
	p.Queue(id)
	pr, err := noFollow.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusFound {
		t.Fatalf("provider answered %d", pr.StatusCode)
	}
	cb, err := url.Parse(pr.Header.Get("Location"))
	if err != nil || cb.Path != surface+"/oidc/callback" {
		t.Fatalf("provider redirects to %q", pr.Header.Get("Location"))
	}
	return cb.RequestURI()
}

// signIn runs the whole flow and returns the callback's answer.
func (w *oidcWorld) signIn(t *testing.T, c *apptest.Client, surface string, id devidp.Identity) *apptest.Response {
	t.Helper()
	return c.Get(w.flow(t, c, surface, id))
}

// identity returns a demo identity by subject, with other groups when
// groups is not nil.
func identity(t *testing.T, list []devidp.Identity, subject string) devidp.Identity {
	t.Helper()
	for _, id := range list {
		if id.Subject == subject {
			return id
		}
	}
	t.Fatalf("no demo identity %s", subject)
	return devidp.Identity{}
}

// auditActions lists the audit entries' actions and summaries, oldest first.
func auditSummaries(t *testing.T, tt *apptest.T, action string) []string {
	t.Helper()
	entries, _, err := audit.List(tt.Ctx, tt.DB, audit.Filter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Summary)
	}
	return out
}

// mustContain fails unless the page body (HTML-unescaped) holds each text.
func mustContain(t *testing.T, what, body string, texts ...string) {
	t.Helper()
	plain := html.UnescapeString(body)
	for _, s := range texts {
		if !strings.Contains(plain, s) {
			t.Fatalf("%s lacks %q:\n%s", what, s, body)
		}
	}
}
