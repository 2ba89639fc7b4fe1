package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/onboarding"
)

// portalPasswordStep posts a provider user's password and returns where it leads.
func portalPasswordStep(t *testing.T, c *apptest.Client, email string) string {
	t.Helper()
	res := c.PostForm("/portal/login", url.Values{"email": {email}, "password": {providerPassword}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("portal password of %s: %d %s", email, res.Status, res.Body)
	}
	return res.Header.Get("Location")
}

// A provider's local user sets up an authenticator app on the portal's
// account page like staff do; from then on the portal password leads to
// the code step and no portal page is reachable before it: a wrong code
// and a replayed one are refused, a recovery code works once, new recovery
// codes and removing the app ask first. Everything is audited.
func TestTOTPPortalEnrolSignInReplayAndRecovery(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, secretsKey("0123456789abcdef0123456789abcdef"))
	clock := useTOTPClock(tt)
	prov := mustActiveProvider(t, tt, "Alpen Zweifaktor AG", "AT", "ATU12345675")
	email := prov.Admin.Email
	c := loginProvider(t, tt, email, providerPassword)

	if res := c.Get("/portal/account"); res.Status != http.StatusOK || !strings.Contains(res.Body, `id="setup-totp"`) {
		t.Fatalf("account page offers no set-up: %d", res.Status)
	}
	secret := enrolmentSecret(t, c.Get("/portal/account/totp").Body)
	var stored string
	tt.DB.Raw("SELECT secret FROM second_factors WHERE subject_kind = 'provider' AND subject_id = ?", prov.Admin.ID).Scan(&stored)
	if !strings.HasPrefix(stored, "sealed:") || strings.Contains(stored, secret) {
		t.Fatalf("secret stored unsealed: %q", stored)
	}
	enrolCode := clock.code(t, secret)
	if res := postCode(c, "/portal/account/totp", wrongCode(enrolCode)); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "the code is wrong") {
		t.Fatalf("wrong first code: %d", res.Status)
	}
	res := postCode(c, "/portal/account/totp", enrolCode)
	if res.Status != http.StatusOK {
		t.Fatalf("first code: %d %s", res.Status, res.Body)
	}
	codes := recoveryCodes(t, res.Body)
	if res := c.Get("/portal/account"); !strings.Contains(res.Body, `id="disable-totp"`) {
		t.Fatal("account page does not show the app as set up")
	}
	c.PostForm("/portal/logout", nil)

	// The password now leads to the code, and nowhere else.
	if loc := portalPasswordStep(t, c, email); loc != "/portal/login/code" {
		t.Fatalf("after the password: %s", loc)
	}
	for _, p := range []string{"/portal", "/portal/account", "/portal/users", "/portal/clients"} {
		if res := c.Get(p); !guardRefused(res) {
			t.Fatalf("%s between password and code: %d", p, res.Status)
		}
	}
	if res := c.Get("/portal/login/code"); res.Status != http.StatusOK || !strings.Contains(res.Body, `id="f-code"`) {
		t.Fatalf("code page: %d", res.Status)
	}
	if res := postCode(c, "/portal/login/code", wrongCode(enrolCode)); res.Status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", res.Status)
	}
	if res := postCode(c, "/portal/login/code", enrolCode); res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "used already") {
		t.Fatalf("replayed code: %d %s", res.Status, res.Body)
	}
	code := clock.next(t, secret)
	if res := postCode(c, "/portal/login/code", code); res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("right code: %d %s", res.Status, res.Body)
	}
	if res := c.Get("/portal"); res.Status != http.StatusOK {
		t.Fatalf("portal after the code: %d", res.Status)
	}
	// Without a pending sign-in the code step sends back to the sign-in.
	if res := tt.Client(t).Get("/portal/login/code"); res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/portal/login") {
		t.Fatalf("code step without a password: %d %s", res.Status, res.Header.Get("Location"))
	}
	// The same code again, from another sign-in: refused.
	c2 := tt.Client(t)
	portalPasswordStep(t, c2, email)
	if res := postCode(c2, "/portal/login/code", code); res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "used already") {
		t.Fatalf("code replayed in a second sign-in: %d", res.Status)
	}
	// A recovery code works once.
	if res := postCode(c2, "/portal/login/code", strings.ToUpper(codes[3])); res.Status != http.StatusSeeOther {
		t.Fatalf("recovery code: %d %s", res.Status, res.Body)
	}
	if res := c2.Get("/portal"); res.Status != http.StatusOK || !strings.Contains(res.Body, "recovery code") {
		t.Fatalf("after a recovery code: %d", res.Status)
	}
	c3 := tt.Client(t)
	portalPasswordStep(t, c3, email)
	if res := postCode(c3, "/portal/login/code", codes[3]); res.Status != http.StatusUnauthorized {
		t.Fatalf("recovery code used twice: %d", res.Status)
	}

	// New recovery codes ask first, then replace the old ones.
	if res := c.PostForm("/portal/account/totp/recovery-codes", url.Values{"_confirm": {"ask"}}); res.Status != http.StatusOK ||
		!strings.Contains(res.Body, "Make new recovery codes?") {
		t.Fatalf("new recovery codes did not ask first: %d", res.Status)
	}
	fresh := recoveryCodes(t, c.PostForm("/portal/account/totp/recovery-codes", nil).Body)
	if res := postCode(c3, "/portal/login/code", codes[5]); res.Status != http.StatusUnauthorized {
		t.Fatalf("an old recovery code after new ones: %d", res.Status)
	}
	if res := postCode(c3, "/portal/login/code", fresh[0]); res.Status != http.StatusSeeOther {
		t.Fatalf("a new recovery code: %d", res.Status)
	}

	// Removing the app asks first and needs a current code.
	if res := c.PostForm("/portal/account/totp/disable", url.Values{"_confirm": {"ask"}, "code": {"123456"}}); res.Status != http.StatusOK ||
		!strings.Contains(res.Body, "Remove your authenticator app?") {
		t.Fatalf("removal did not ask first: %d", res.Status)
	}
	if res := c.PostForm("/portal/account/totp/disable", url.Values{"code": {wrongCode(clock.next(t, secret))}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("removal with a wrong code: %d", res.Status)
	}
	if res := c.PostForm("/portal/account/totp/disable", url.Values{"code": {clock.code(t, secret)}}); res.Status != http.StatusSeeOther {
		t.Fatalf("removal: %d %s", res.Status, res.Body)
	}
	if loc := portalPasswordStep(t, tt.Client(t), email); loc != "/portal" {
		t.Fatalf("after removal the password leads to %s", loc)
	}

	for action, min := range map[string]int{"second_factor.enrol": 1, "second_factor.code_refused": 5,
		"second_factor.recovery_code_used": 2, "second_factor.recovery_codes": 1, "second_factor.disable": 1} {
		if got := auditSummaries(t, tt, action); len(got) < min {
			t.Errorf("audit %s: %d entries, want at least %d: %v", action, len(got), min, got)
		}
	}
}

// Wrong codes at the portal's code step are throttled like passwords:
// past the limit even the right code is refused.
func TestTOTPPortalWrongCodesAreThrottled(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) { c.LoginMaxFailuresPerAccount = 3 })
	clock := useTOTPClock(tt)
	prov := mustActiveProvider(t, tt, "Alpen Drossel AG", "AT", "ATU12345675")
	c := loginProvider(t, tt, prov.Admin.Email, providerPassword)
	secret := enrolmentSecret(t, c.Get("/portal/account/totp").Body)
	if res := postCode(c, "/portal/account/totp", clock.code(t, secret)); res.Status != http.StatusOK {
		t.Fatalf("enrol: %d", res.Status)
	}
	s := tt.Client(t)
	portalPasswordStep(t, s, prov.Admin.Email)
	code := clock.next(t, secret)
	for i := 0; i < 3; i++ {
		if res := postCode(s, "/portal/login/code", wrongCode(code)); res.Status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i+1, res.Status)
		}
	}
	res := postCode(s, "/portal/login/code", code)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right code after the limit: %d", res.Status)
	}
	if got := auditSummaries(t, tt, "second_factor.code_refused"); len(got) != 4 || !strings.Contains(got[3], "throttled") {
		t.Fatalf("refusals audited: %v", got)
	}
}

// A company sign-in leaves the second factor to the company's identity
// provider: a user with an authenticator app signs in through it straight
// into the portal, while the same user's password still asks for the code.
func TestTOTPPortalCompanySignInSkipsTheCode(t *testing.T) {
	t.Parallel()
	w := newPortalIdPWorld(t, nil)
	tt := w.tt
	clock := useTOTPClock(tt)
	eva := w.invite(t, w.a, "eva@alpen.example", onboarding.RoleProviderDeveloper, true)
	c := loginProvider(t, tt, eva.Email, providerPassword)
	secret := enrolmentSecret(t, c.Get("/portal/account/totp").Body)
	if res := postCode(c, "/portal/account/totp", clock.code(t, secret)); res.Status != http.StatusOK {
		t.Fatalf("enrol: %d", res.Status)
	}
	if res := configure(t, w.adminA, w.idpA.Issuer(), portalClientA, portalSecretA, "alpen.example"); res.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %s", res.Status, res.Body)
	}
	if loc := portalPasswordStep(t, tt.Client(t), eva.Email); loc != "/portal/login/code" {
		t.Fatalf("password with an app leads to %s", loc)
	}
	c2 := tt.Client(t)
	res := c2.Get(companyFlow(t, w.idpA, startCompany(t, c2, eva.Email), person("alpen-eva", eva.Email)))
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("company sign-in: %d %s", res.Status, res.Header.Get("Location"))
	}
	if res := c2.Get("/portal"); res.Status != http.StatusOK {
		t.Fatalf("portal after the company sign-in: %d", res.Status)
	}
}
