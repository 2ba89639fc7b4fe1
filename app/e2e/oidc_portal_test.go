package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/devidp"
	"cardata/onboarding"
	policyidentity "cardata/policies/identity"
)

// portalIdPWorld is the app with two companies' own OpenID providers
// running in the test (app/devidp: real OPs issuing RS256-signed tokens),
// one for each of two providers, and SECRETS_KEY set so client secrets
// are sealed at rest.
type portalIdPWorld struct {
	tt         *apptest.T
	idpA, idpB *devidp.Provider
	a, b       *onboarding.Registered
	adminA     *apptest.Client
	adminB     *apptest.Client
}

const (
	portalClientA = "cardata-alpen"
	portalSecretA = "alpen-client-secret-4711"
	portalClientB = "cardata-bravo"
	portalSecretB = "bravo-client-secret-0815"
)

func newPortalIdPWorld(t *testing.T, people []devidp.Identity, opts ...func(*config.Config)) *portalIdPWorld {
	t.Helper()
	idpA, err := devidp.Start("127.0.0.1:0", "Alpen company identity (test)", portalClientA, portalSecretA, people)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idpA.Close)
	idpB, err := devidp.Start("127.0.0.1:0", "Bravo company identity (test)", portalClientB, portalSecretB, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idpB.Close)
	opts = append([]func(*config.Config){func(c *config.Config) {
		c.SecretsKey = []byte("0123456789abcdef0123456789abcdef")
	}}, opts...)
	tt := apptest.New(t, opts...)
	w := &portalIdPWorld{tt: tt, idpA: idpA, idpB: idpB,
		a: mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU12345675"),
		b: mustActiveProvider(t, tt, "Bravo Flotten GmbH", "DE", "DE136695976")}
	w.adminA = loginProvider(t, tt, w.a.Admin.Email, providerPassword)
	w.adminB = loginProvider(t, tt, w.b.Admin.Email, providerPassword)
	return w
}

// invite adds a user to reg's provider; accepted users set a password
// (which proves the provider receives mail at the address's domain).
func (w *portalIdPWorld) invite(t *testing.T, reg *onboarding.Registered, email, role string, accept bool) *onboarding.ProviderUser {
	t.Helper()
	svc := onboardingFor(w.tt)
	inv, err := svc.InviteProviderUser(obProviderCtx(reg.Admin), reg.Provider.ID, onboarding.Invite{Email: email, Name: email, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	if !accept {
		return inv.User
	}
	token := inv.Link[strings.LastIndex(inv.Link, "/")+1:]
	u, err := svc.AcceptInvitation(w.tt.Ctx, token, providerPassword)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// configure saves a company sign-in through the portal form.
func configure(t *testing.T, c *apptest.Client, issuer, clientID, secret, domains string) *apptest.Response {
	t.Helper()
	return c.PostForm("/portal/company-sign-in", url.Values{"issuer": {issuer}, "client_id": {clientID},
		"client_secret": {secret}, "domains": {domains}})
}

// start posts the company sign-in form for email and returns where the
// page leads the browser (its Refresh header, also its link).
func startCompany(t *testing.T, c *apptest.Client, email string) string {
	t.Helper()
	res := c.PostForm("/portal/oidc/login", url.Values{"email": {email}})
	if res.Status != http.StatusOK {
		t.Fatalf("company sign-in for %s: %d %s", email, res.Status, res.Body)
	}
	refresh := res.Header.Get("Refresh")
	if !strings.HasPrefix(refresh, "0; url=") {
		t.Fatalf("no Refresh to the company's provider: %q", refresh)
	}
	target := strings.TrimPrefix(refresh, "0; url=")
	mustContain(t, "continue page", res.Body, `id="continue" href="`+target+`"`, "You are being taken to the sign-in of your company.")
	return target
}

// companyFlow signs id in at the company's provider p for the sign-in
// that startCompany led to and returns the callback path.
func companyFlow(t *testing.T, p *devidp.Provider, target string, id devidp.Identity) string {
	t.Helper()
	if !strings.HasPrefix(target, p.Issuer()+"/authorize?") {
		t.Fatalf("sign-in goes to %q, not the company's provider %s", target, p.Issuer())
	}
	for _, want := range []string{"code_challenge_method=S256", "code_challenge=", "nonce=", "state=", "login_hint="} {
		if !strings.Contains(target, want) {
			t.Fatalf("authorization request %q lacks %s", target, want)
		}
	}
	p.Queue(id)
	pr, err := noFollow.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusFound {
		t.Fatalf("provider answered %d", pr.StatusCode)
	}
	cb, err := url.Parse(pr.Header.Get("Location"))
	if err != nil || cb.Path != "/portal/oidc/callback" {
		t.Fatalf("provider redirects to %q", pr.Header.Get("Location"))
	}
	return cb.RequestURI()
}

func person(subject, email string) devidp.Identity {
	return devidp.Identity{Subject: subject, Email: email, Name: email}
}

// A provider's administrator connects the company's identity provider in
// the portal; an invited user then signs in with the company account
// through the real redirect flow and gets the same session as a password
// sign-in, and a user with a password keeps signing in with it.
func TestPortalCompanySignIn(t *testing.T) {
	t.Parallel()
	w := newPortalIdPWorld(t, nil)
	tt := w.tt
	eva := w.invite(t, w.a, "eva@alpen.example", onboarding.RoleProviderDeveloper, true)
	maxU := w.invite(t, w.a, "max@alpen.example", onboarding.RoleProviderFinance, false) // invited, never set a password

	page := w.adminA.Get("/portal/company-sign-in")
	if page.Status != http.StatusOK {
		t.Fatalf("settings page: %d %s", page.Status, page.Body)
	}
	mustContain(t, "settings page", page.Body, tt.App.Cfg.PublicURL+"/portal/oidc/callback", "Connect your identity provider")

	// An issuer whose discovery document cannot be read: a field error,
	// the input kept, the secret not.
	res := configure(t, w.adminA, "http://127.0.0.1:1/oidc", portalClientA, portalSecretA, "alpen.example")
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unreachable issuer: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refused form", res.Body, "no OpenID Connect discovery document could be read at this issuer",
		`value="http://127.0.0.1:1/oidc"`, `value="`+portalClientA+`"`, `value="alpen.example"`, `id="retype-secret"`)
	if strings.Contains(res.Body, portalSecretA) {
		t.Fatal("the refused form echoes the client secret")
	}
	// A domain none of the provider's users has an address at.
	res = configure(t, w.adminA, w.idpA.Issuer(), portalClientA, portalSecretA, "alpen.example, elsewhere.example")
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unproven domain: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refused form", res.Body, "none of your active users has an address at elsewhere.example")

	res = configure(t, w.adminA, w.idpA.Issuer(), portalClientA, portalSecretA, "Alpen.example")
	if res.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", res.Status, res.Body)
	}
	page = w.adminA.Get("/portal/company-sign-in")
	mustContain(t, "settings page", page.Body, w.idpA.Issuer(), "set (never shown again)", "<code>alpen.example</code>", "enabled")
	if strings.Contains(page.Body, portalSecretA) {
		t.Fatal("the settings page shows the client secret")
	}
	var stored string
	tt.DB.Raw("SELECT client_secret FROM provider_sign_in_configs WHERE provider_id = ?", w.a.Provider.ID).Scan(&stored)
	if !strings.HasPrefix(stored, "enc1:") || strings.Contains(stored, portalSecretA) {
		t.Fatalf("the client secret is not sealed at rest: %q", stored)
	}
	configured := strings.Join(auditSummaries(t, tt, "provider.sign_in_configure"), "\n")
	mustContain(t, "audit", configured, "company sign-in configured: issuer "+w.idpA.Issuer()+", client id cardata-alpen, domains alpen.example; client secret set")
	if strings.Contains(configured, portalSecretA) {
		t.Fatal("the audit trail holds the client secret")
	}
	// A change without a secret keeps the stored one.
	if res := configure(t, w.adminA, w.idpA.Issuer(), portalClientA, "", "alpen.example"); res.Status != http.StatusSeeOther {
		t.Fatalf("save keeping the secret: %d %s", res.Status, res.Body)
	}

	// The invited user signs in with the company account.
	c := tt.Client(t)
	mustContain(t, "sign-in page", c.Get("/portal/login").Body, "Sign in with your company account")
	target := startCompany(t, c, "Max@Alpen.example")
	if !strings.Contains(target, "login_hint=max%40alpen.example") {
		t.Fatalf("login_hint missing: %s", target)
	}
	cb := companyFlow(t, w.idpA, target, person("alpen-max", "max@alpen.example"))
	res = c.Get(cb)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("callback: %d %s %s", res.Status, res.Header.Get("Location"), res.Body)
	}
	if home := c.Get("/portal"); home.Status != http.StatusOK || !strings.Contains(home.Body, "Alpen Versicherung AG") {
		t.Fatalf("portal after company sign-in: %d", home.Status)
	}
	var sess struct{ IdentityProvider, IdentitySubject string }
	tt.DB.Raw("SELECT identity_provider, identity_subject FROM sessions WHERE subject_kind = 'provider' AND subject_id = ?", maxU.ID).Scan(&sess)
	if sess.IdentityProvider != fmt.Sprintf("provider-%d", w.a.Provider.ID) || sess.IdentitySubject != "alpen-max" {
		t.Fatalf("session: %+v", sess)
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "provider_user.identity_link"), "\n"),
		"max@alpen.example now signs in through the company identity provider "+w.idpA.Issuer()+" as subject alpen-max (invitation accepted)")
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "provider_user.sign_in"), "\n"),
		"max@alpen.example signed in through the company identity provider "+w.idpA.Issuer()+" (subject alpen-max)")
	// The users page no longer shows Max as invited.
	users := w.adminA.Get("/portal/users").Body
	if i := strings.Index(users, "max@alpen.example"); i < 0 || strings.Contains(users[i:min(len(users), i+300)], ">invited<") {
		t.Fatalf("max still invited on the users page: %s", users)
	}

	// Eva has a password and signs in either way.
	loginProvider(t, tt, eva.Email, providerPassword)
	c2 := tt.Client(t)
	if res := c2.Get(companyFlow(t, w.idpA, startCompany(t, c2, eva.Email), person("alpen-eva", eva.Email))); res.Status != http.StatusSeeOther {
		t.Fatalf("eva's company sign-in: %d %s", res.Status, res.Body)
	}

	// A later sign-in as another person at the company with Max's address
	// (the address reassigned) is refused: the account is Max's subject's.
	c3 := tt.Client(t)
	res = c3.Get(companyFlow(t, w.idpA, startCompany(t, c3, "max@alpen.example"), person("alpen-someone-else", "max@alpen.example")))
	if res.Status != http.StatusForbidden {
		t.Fatalf("reassigned address: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refusal", res.Body, "linked to another person at your company's identity provider")

	// Only the provider's administrator configures it.
	dev := loginProvider(t, tt, eva.Email, providerPassword)
	if res := dev.Get("/portal/company-sign-in"); res.Status != http.StatusForbidden {
		t.Fatalf("developer reads the company sign-in: %d", res.Status)
	}
	if res := configure(t, dev, w.idpA.Issuer(), "x", "y", "alpen.example"); res.Status != http.StatusForbidden {
		t.Fatalf("developer changes the company sign-in: %d", res.Status)
	}

	// Disabling asks first, then signs out everyone signed in through it;
	// password sessions stay.
	res = w.adminA.PostForm("/portal/company-sign-in/disable", url.Values{"_confirm": {"ask"}})
	if res.Status != http.StatusOK {
		t.Fatalf("disable asks: %d %s", res.Status, res.Body)
	}
	mustContain(t, "confirmation", res.Body, "Disable the company sign-in?", w.idpA.Issuer())
	if res := w.adminA.PostForm("/portal/company-sign-in/disable", url.Values{}); res.Status != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", res.Status, res.Body)
	}
	if res := c.Get("/portal"); res.Status == http.StatusOK {
		t.Fatal("a session started through the company sign-in outlived its disabling")
	}
	if res := dev.Get("/portal"); res.Status != http.StatusOK {
		t.Fatalf("a password session ended with the company sign-in: %d", res.Status)
	}
	// Disabled: the address selects nothing any more.
	if target := startCompany(t, tt.Client(t), "max@alpen.example"); target != "/portal/login?company=unavailable" {
		t.Fatalf("disabled sign-in still leads to %s", target)
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "provider.sign_in_disable"), "\n"), "company sign-in disabled; 2 sessions started through it ended")
	// Enabled again, then removed (asked first).
	if res := w.adminA.PostForm("/portal/company-sign-in/enable", url.Values{}); res.Status != http.StatusSeeOther {
		t.Fatalf("enable: %d %s", res.Status, res.Body)
	}
	res = w.adminA.PostForm("/portal/company-sign-in/remove", url.Values{"_confirm": {"ask"}})
	mustContain(t, "confirmation", res.Body, "Remove the company sign-in?", "alpen.example")
	if res := w.adminA.PostForm("/portal/company-sign-in/remove", url.Values{}); res.Status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", res.Status, res.Body)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM provider_sign_in_configs WHERE provider_id = ?", w.a.Provider.ID).Scan(&n)
	if n != 0 {
		t.Fatal("the configuration survived its removal")
	}
	mustContain(t, "settings page", w.adminA.Get("/portal/company-sign-in").Body, "Connect your identity provider")
}

// Every sign-in that is not exactly an invited person of the provider
// whose provider signed them in is refused, audited, and starts no
// session; an address no provider allows gets the same answer as one a
// provider does, and a provider's administrator sees and changes only
// the provider's own configuration.
func TestPortalCompanySignInRefusals(t *testing.T) {
	t.Parallel()
	w := newPortalIdPWorld(t, nil)
	tt := w.tt
	w.invite(t, w.a, "eva@alpen.example", onboarding.RoleProviderDeveloper, true)
	w.invite(t, w.a, "max@alpen.example", onboarding.RoleProviderDeveloper, false)
	w.invite(t, w.b, "ben@bravo.example", onboarding.RoleProviderDeveloper, true)
	// A user of A with an address at B's domain.
	w.invite(t, w.a, "anna@bravo.example", onboarding.RoleProviderDeveloper, false)
	if res := configure(t, w.adminA, w.idpA.Issuer(), portalClientA, portalSecretA, "alpen.example"); res.Status != http.StatusSeeOther {
		t.Fatalf("A's configuration: %d %s", res.Status, res.Body)
	}
	if res := configure(t, w.adminB, w.idpB.Issuer(), portalClientB, portalSecretB, "bravo.example"); res.Status != http.StatusSeeOther {
		t.Fatalf("B's configuration: %d %s", res.Status, res.Body)
	}

	// B's administrator sees only B's configuration, cannot take A's
	// domain, and removing removes B's.
	page := w.adminB.Get("/portal/company-sign-in").Body
	if strings.Contains(page, w.idpA.Issuer()) || strings.Contains(page, "alpen.example") || strings.Contains(page, portalSecretB) {
		t.Fatalf("B's page shows A's configuration or B's secret:\n%s", page)
	}
	res := configure(t, w.adminB, w.idpB.Issuer(), portalClientB, "", "bravo.example, alpen.example")
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("B claims A's domain: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refused form", res.Body, "alpen.example")
	if res := w.adminB.PostForm("/portal/company-sign-in/remove", url.Values{}); res.Status != http.StatusSeeOther {
		t.Fatalf("B removes: %d %s", res.Status, res.Body)
	}
	cfgA, err := tt.App.Onboarding.FindSignInConfig(tt.Ctx, w.a.Provider.ID)
	if err != nil || cfgA == nil || !cfgA.Enabled || cfgA.Issuer != w.idpA.Issuer() || strings.Join(cfgA.Domains, ",") != "alpen.example" {
		t.Fatalf("A's configuration after B's changes: %+v %v", cfgA, err)
	}
	if res := configure(t, w.adminB, w.idpB.Issuer(), portalClientB, portalSecretB, "bravo.example"); res.Status != http.StatusSeeOther {
		t.Fatalf("B's configuration again: %d %s", res.Status, res.Body)
	}

	// No provider allows the domain: the same answer as one that does,
	// only leading back to the sign-in page with one message.
	c := tt.Client(t)
	target := startCompany(t, c, "someone@nowhere.example")
	if target != "/portal/login?company=unavailable" {
		t.Fatalf("unknown domain leads to %s", target)
	}
	mustContain(t, "sign-in page", c.Get(target).Body, "Signing in with a company account is not possible for this address at the moment.")

	refused := func(name string, c *apptest.Client, cb string, status int, want string) {
		t.Helper()
		res := c.Get(cb)
		if res.Status != status {
			t.Fatalf("%s: %d %s", name, res.Status, res.Body)
		}
		mustContain(t, name, res.Body, want)
		if res := c.Get("/portal"); res.Status == http.StatusOK {
			t.Fatalf("%s: a session started", name)
		}
	}
	// A token for another client (audience).
	spoilt := person("alpen-eva", "eva@alpen.example")
	spoilt.Spoil = func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"another-client"} }
	c = tt.Client(t)
	refused("wrong audience", c, companyFlow(t, w.idpA, startCompany(t, c, "eva@alpen.example"), spoilt), http.StatusUnauthorized, "could not be verified")
	// The company signs in someone else than the address entered.
	c = tt.Client(t)
	refused("other address", c, companyFlow(t, w.idpA, startCompany(t, c, "eva@alpen.example"), person("alpen-max", "max@alpen.example")),
		http.StatusForbidden, "another address than the one you entered")
	// Allowed domain, but nobody invited: no account is created.
	c = tt.Client(t)
	refused("not invited", c, companyFlow(t, w.idpA, startCompany(t, c, "new@alpen.example"), person("alpen-new", "new@alpen.example")),
		http.StatusForbidden, "There is no partner portal account for your address")
	var created int64
	tt.DB.Raw("SELECT count(*) FROM provider_users WHERE email = 'new@alpen.example'").Scan(&created)
	if created != 0 {
		t.Fatal("a company sign-in created an account")
	}
	// A user of A at B's domain, signed in by B's provider: B has no such
	// user, so it is refused like a stranger and never lands in B (or A).
	c = tt.Client(t)
	refused("user of another provider", c, companyFlow(t, w.idpB, startCompany(t, c, "anna@bravo.example"), person("bravo-anna", "anna@bravo.example")),
		http.StatusForbidden, "There is no partner portal account for your address")
	// A domain the configuration does not allow, should the token carry one.
	if _, err := tt.App.Onboarding.SignInCompany(tt.Ctx, w.a.Provider.ID, onboarding.CompanyIdentity{Issuer: w.idpA.Issuer(),
		Subject: "alpen-x", Email: "ben@bravo.example", Entered: "ben@bravo.example"}); err == nil || !strings.Contains(err.Error(), "oidc_domain_not_allowed") {
		t.Fatalf("domain not allowed: %v", err)
	}
	// email_verified false.
	no := false
	if _, err := tt.App.Onboarding.SignInCompany(tt.Ctx, w.a.Provider.ID, onboarding.CompanyIdentity{Issuer: w.idpA.Issuer(),
		Subject: "alpen-eva", Email: "eva@alpen.example", EmailVerified: &no, Entered: "eva@alpen.example"}); err == nil || !strings.Contains(err.Error(), "oidc_email_unverified") {
		t.Fatalf("unverified address: %v", err)
	}

	// A replayed state: the callback of a finished sign-in again, with the
	// browser's cookie.
	c = tt.Client(t)
	cb := companyFlow(t, w.idpA, startCompany(t, c, "eva@alpen.example"), person("alpen-eva", "eva@alpen.example"))
	cookieName := policyidentity.CookieName(fmt.Sprintf("provider-%d", w.a.Provider.ID))
	cookie := c.Cookie(cookieName)
	if cookie == "" {
		t.Fatalf("no sign-in cookie %s", cookieName)
	}
	if res := c.Get(cb); res.Status != http.StatusSeeOther {
		t.Fatalf("good sign-in: %d %s", res.Status, res.Body)
	}
	replay := tt.Client(t)
	replay.SetCookie(cookieName, cookie)
	refused("replayed state", replay, cb, http.StatusUnauthorized, "expired, was already used or was started in another browser")
	// The callback in another browser (no cookie).
	c = tt.Client(t)
	cb = companyFlow(t, w.idpA, startCompany(t, c, "eva@alpen.example"), person("alpen-eva", "eva@alpen.example"))
	refused("another browser", tt.Client(t), cb, http.StatusUnauthorized, "started in another browser")

	summaries := strings.Join(auditSummaries(t, tt, "provider_user.sign_in_refused"), "\n")
	for _, code := range []string{"oidc_token_invalid", "oidc_email_mismatch", "oidc_not_invited", "oidc_domain_not_allowed", "oidc_email_unverified"} {
		mustContain(t, "audit of refusals", summaries, "company sign-in refused ("+code+")")
	}
}

// In a real browser, through the real redirects: the provider's
// administrator connects the company's identity provider on the portal
// page, and an invited user signs in with the company account from the
// portal's sign-in page (its e-mail address choosing the provider, the
// company's page choosing the person) and lands in the portal.
func TestBrowserPortalCompanySignIn(t *testing.T) {
	t.Parallel()
	ln := apptest.Listen(t)
	w := newPortalIdPWorld(t, []devidp.Identity{{Subject: "alpen-max", Email: "max@alpen.example", Name: "Max Muster"}},
		func(c *config.Config) { c.PublicURL = "http://" + ln.Addr().String() })
	w.invite(t, w.a, "eva@alpen.example", onboarding.RoleProviderDeveloper, true)
	w.tt.DB.Exec("UPDATE provider_users SET name = 'Max Muster' WHERE id = ?",
		w.invite(t, w.a, "max@alpen.example", onboarding.RoleProviderDeveloper, false).ID)
	base := w.tt.ServeOn(t, ln)
	ctx := apptest.Browser(t)

	var shown, who, nav string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/portal/login"),
		chromedp.WaitVisible(`#f-password`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, w.a.Admin.Email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, providerPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#logout") !== null`),
		chromedp.Navigate(base+"/portal/company-sign-in"),
		chromedp.WaitVisible(`#f-issuer`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-issuer`, w.idpA.Issuer(), chromedp.ByQuery),
		chromedp.SendKeys(`#f-client-id`, portalClientA, chromedp.ByQuery),
		chromedp.SendKeys(`#f-client-secret`, portalSecretA, chromedp.ByQuery),
		chromedp.SendKeys(`#f-domains`, "alpen.example", chromedp.ByQuery),
		chromedp.Click(`#save-sign-in`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#secret-state") !== null`),
		chromedp.Text(`#current`, &shown, chromedp.ByQuery),
		chromedp.Text(`nav.sidenav`, &nav, chromedp.ByQuery),
		chromedp.Click(`#logout`, chromedp.ByQuery),
		apptest.WaitJS(`location.pathname === "/portal/login" && document.querySelector("#f-company-email") !== null`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown, w.idpA.Issuer()) || !strings.Contains(shown, "set (never shown again)") || strings.Contains(shown, portalSecretA) {
		t.Fatalf("configuration shown: %q", shown)
	}
	if !strings.Contains(nav, "Company sign-in") {
		t.Fatalf("the administrator's navigation lacks the company sign-in: %q", nav)
	}

	maxBtn := `button[data-subject="alpen-max"]`
	err = chromedp.Run(ctx,
		chromedp.SendKeys(`#f-company-email`, "max@alpen.example", chromedp.ByQuery),
		chromedp.Click(`#signin-company`, chromedp.ByQuery),
		chromedp.WaitVisible(maxBtn, chromedp.ByQuery),
		chromedp.Click(maxBtn, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#logout") !== null`),
		chromedp.Text(`.who`, &who, chromedp.ByQuery),
		chromedp.Text(`nav.sidenav`, &nav, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(who, "Max Muster") {
		t.Fatalf("signed in as %q", who)
	}
	if strings.Contains(nav, "Company sign-in") {
		t.Fatalf("a developer's navigation offers the company sign-in: %q", nav)
	}
}
