package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/devidp"
	"cardata/policies"
	"cardata/policies/totp"
)

// totpClock is the second factors' clock in a test: codes are computed for
// it and it moves on by whole time steps, so a test never waits for the
// next code.
type totpClock struct {
	mu sync.Mutex
	t  time.Time
}

func useTOTPClock(tt *apptest.T) *totpClock {
	c := &totpClock{t: time.Now().UTC()}
	tt.App.SecondFactors.Now = c.now
	return c
}

func (c *totpClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// next moves to the next time step and returns its code for secret.
func (c *totpClock) next(t *testing.T, secret string) string {
	t.Helper()
	c.mu.Lock()
	c.t = c.t.Add(totp.Period * time.Second)
	c.mu.Unlock()
	return c.code(t, secret)
}

func (c *totpClock) code(t *testing.T, secret string) string {
	t.Helper()
	code, err := totp.Code(secret, c.now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// wrongCode is a code that is not code (nor, but by a one-in-a-million
// chance, any other of the window).
func wrongCode(code string) string {
	b := []byte(code)
	b[len(b)-1] = '0' + (b[len(b)-1]-'0'+1)%10
	return string(b)
}

var (
	secretRe   = regexp.MustCompile(`data-secret="([A-Z2-7]+)"`)
	qrRe       = regexp.MustCompile(`id="totp-qr" src="data:image/png;base64,([^"]+)"`)
	recoveryRe = regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`)
)

// enrolmentSecret reads the secret from an enrolment page and checks that
// the QR code beside it is a PNG made by the server (a data URI).
func enrolmentSecret(t *testing.T, page string) string {
	t.Helper()
	m := secretRe.FindStringSubmatch(page)
	q := qrRe.FindStringSubmatch(page)
	if m == nil || q == nil {
		t.Fatalf("enrolment page without secret or QR code: %s", page)
	}
	raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(q[1]))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("QR code is no PNG: %v", err)
	}
	return m[1]
}

func recoveryCodes(t *testing.T, page string) []string {
	t.Helper()
	var out []string
	for _, m := range recoveryRe.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	if len(out) != totp.RecoveryCodes {
		t.Fatalf("%d recovery codes shown, want %d: %s", len(out), totp.RecoveryCodes, page)
	}
	return out
}

// passwordStep posts the password and returns where it leads.
func passwordStep(t *testing.T, c *apptest.Client, email string) string {
	t.Helper()
	res := c.PostForm("/admin/login", url.Values{"email": {email}, "password": {apptest.Password}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("password of %s: %d %s", email, res.Status, res.Body)
	}
	return res.Header.Get("Location")
}

func postCode(c *apptest.Client, path, code string) *apptest.Response {
	return c.PostForm(path, url.Values{"code": {code}})
}

// A local administrator sets up an authenticator app from the account page
// (QR code and secret, confirmed by a first code; recovery codes shown
// once; the secret sealed under SECRETS_KEY), and from then on the password
// leads to the code: a wrong code and a replayed one are refused, a
// recovery code works once; new recovery codes replace the old; removing
// the app asks first and needs a current code. Everything is audited.
func TestTOTPEnrolSignInReplayAndRecovery(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, secretsKey("0123456789abcdef0123456789abcdef"))
	clock := useTOTPClock(tt)
	u := tt.MustCreateStaff(t, "ada@totp.local", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@totp.local")

	if res := c.Get("/admin/account"); !strings.Contains(res.Body, `id="setup-totp"`) {
		t.Fatalf("account page offers no set-up: %d", res.Status)
	}
	res := c.Get("/admin/account/totp")
	secret := enrolmentSecret(t, res.Body)
	if again := enrolmentSecret(t, c.Get("/admin/account/totp").Body); again != secret {
		t.Fatal("reloading the enrolment page changed the secret")
	}
	var stored string
	tt.DB.Raw("SELECT secret FROM second_factors WHERE subject_kind = 'staff' AND subject_id = ?", u.ID).Scan(&stored)
	if !strings.HasPrefix(stored, "sealed:") || strings.Contains(stored, secret) {
		t.Fatalf("secret stored unsealed: %q", stored)
	}

	enrolCode := clock.code(t, secret)
	if res := postCode(c, "/admin/account/totp", wrongCode(enrolCode)); res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "the code is wrong") {
		t.Fatalf("wrong first code: %d", res.Status)
	}
	res = postCode(c, "/admin/account/totp", enrolCode)
	if res.Status != http.StatusOK {
		t.Fatalf("first code: %d %s", res.Status, res.Body)
	}
	codes := recoveryCodes(t, res.Body)
	var hashes []string
	tt.DB.Raw("SELECT code_hash FROM recovery_codes WHERE subject_id = ?", u.ID).Scan(&hashes)
	if len(hashes) != len(codes) || !strings.HasPrefix(hashes[0], "$2") || strings.Contains(strings.Join(hashes, ","), codes[0]) {
		t.Fatalf("recovery codes not stored as bcrypt hashes: %v", hashes)
	}
	if res := c.Get("/admin/account"); !strings.Contains(res.Body, `id="disable-totp"`) {
		t.Fatal("account page does not show the app as set up")
	}
	c.PostForm("/admin/logout", nil)

	// The password now leads to the code, and nowhere else.
	if loc := passwordStep(t, c, "ada@totp.local"); loc != "/admin/login/code" {
		t.Fatalf("after the password: %s", loc)
	}
	for _, p := range []string{"/admin", "/admin/account", "/admin/users"} {
		if res := c.Get(p); !guardRefused(res) {
			t.Fatalf("%s between password and code: %d", p, res.Status)
		}
	}
	if res := c.Get("/admin/login/code"); res.Status != http.StatusOK || !strings.Contains(res.Body, `id="f-code"`) {
		t.Fatalf("code page: %d", res.Status)
	}
	if res := postCode(c, "/admin/login/code", wrongCode(enrolCode)); res.Status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", res.Status)
	}
	// The code that confirmed the enrolment is still in its window, but used.
	if res := postCode(c, "/admin/login/code", enrolCode); res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "used already") {
		t.Fatalf("replayed code: %d %s", res.Status, res.Body)
	}
	code := clock.next(t, secret)
	if res := postCode(c, "/admin/login/code", code); res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin" {
		t.Fatalf("right code: %d %s", res.Status, res.Body)
	}
	if res := c.Get("/admin"); res.Status != http.StatusOK {
		t.Fatalf("dashboard after the code: %d", res.Status)
	}
	// The same code again, from another sign-in: refused.
	c2 := tt.Client(t)
	passwordStep(t, c2, "ada@totp.local")
	if res := postCode(c2, "/admin/login/code", code); res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "used already") {
		t.Fatalf("code replayed in a second sign-in: %d", res.Status)
	}
	// A recovery code works once.
	if res := postCode(c2, "/admin/login/code", strings.ToUpper(codes[3])); res.Status != http.StatusSeeOther {
		t.Fatalf("recovery code: %d %s", res.Status, res.Body)
	}
	if res := c2.Get("/admin"); res.Status != http.StatusOK || !strings.Contains(res.Body, "recovery code") {
		t.Fatalf("after a recovery code: %d", res.Status)
	}
	c3 := tt.Client(t)
	passwordStep(t, c3, "ada@totp.local")
	if res := postCode(c3, "/admin/login/code", codes[3]); res.Status != http.StatusUnauthorized {
		t.Fatalf("recovery code used twice: %d", res.Status)
	}

	// New recovery codes: a click asks first, then the old codes are gone.
	if res := c.PostForm("/admin/account/totp/recovery-codes", url.Values{"_confirm": {"ask"}}); res.Status != http.StatusOK ||
		!strings.Contains(res.Body, "Make new recovery codes?") {
		t.Fatalf("new recovery codes did not ask first: %d", res.Status)
	}
	fresh := recoveryCodes(t, c.PostForm("/admin/account/totp/recovery-codes", nil).Body)
	if res := postCode(c3, "/admin/login/code", codes[5]); res.Status != http.StatusUnauthorized {
		t.Fatalf("an old recovery code after new ones: %d", res.Status)
	}
	if res := postCode(c3, "/admin/login/code", fresh[0]); res.Status != http.StatusSeeOther {
		t.Fatalf("a new recovery code: %d", res.Status)
	}

	// Removing the app asks first and needs a current code.
	if res := c.PostForm("/admin/account/totp/disable", url.Values{"_confirm": {"ask"}, "code": {"123456"}}); res.Status != http.StatusOK ||
		!strings.Contains(res.Body, "Remove your authenticator app?") {
		t.Fatalf("removal did not ask first: %d", res.Status)
	}
	if res := c.PostForm("/admin/account/totp/disable", url.Values{"code": {wrongCode(clock.next(t, secret))}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("removal with a wrong code: %d", res.Status)
	}
	if res := c.PostForm("/admin/account/totp/disable", url.Values{"code": {clock.code(t, secret)}}); res.Status != http.StatusSeeOther {
		t.Fatalf("removal: %d %s", res.Status, res.Body)
	}
	if loc := passwordStep(t, tt.Client(t), "ada@totp.local"); loc != "/admin" {
		t.Fatalf("after removal the password leads to %s", loc)
	}

	for action, min := range map[string]int{"second_factor.enrol": 1, "second_factor.code_refused": 6,
		"second_factor.recovery_code_used": 2, "second_factor.recovery_codes": 1, "second_factor.disable": 1} {
		if got := auditSummaries(t, tt, action); len(got) < min {
			t.Errorf("audit %s: %d entries, want at least %d: %v", action, len(got), min, got)
		}
	}
}

// Wrong codes are throttled like passwords: after LOGIN_MAX_FAILURES_ACCOUNT
// the right code is refused too, until the window has passed.
func TestTOTPWrongCodesAreThrottled(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) { c.LoginMaxFailuresPerAccount = 3 })
	clock := useTOTPClock(tt)
	tt.MustCreateStaff(t, "bob@totp.local", policies.RoleFinance)
	c := tt.LoginStaff(t, "bob@totp.local")
	secret := enrolmentSecret(t, c.Get("/admin/account/totp").Body)
	postCode(c, "/admin/account/totp", clock.code(t, secret))

	s := tt.Client(t)
	passwordStep(t, s, "bob@totp.local")
	code := clock.next(t, secret)
	for i := 0; i < 3; i++ {
		if res := postCode(s, "/admin/login/code", wrongCode(code)); res.Status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i+1, res.Status)
		}
	}
	res := postCode(s, "/admin/login/code", code)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right code after the limit: %d", res.Status)
	}
	if got := auditSummaries(t, tt, "second_factor.code_refused"); len(got) != 4 || !strings.Contains(got[3], "throttled") {
		t.Fatalf("refusals audited: %v", got)
	}
}

// With STAFF_TOTP_REQUIRED_ROLES=admin an administrator without an
// authenticator app is sent to set one up right after the password and
// reaches no other page, not one, until it is done; other roles sign in as
// before.
func TestTOTPRequiredRoleMustEnrol(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) { c.StaffTOTPRequiredRoles = []string{policies.RoleAdmin} })
	clock := useTOTPClock(tt)
	tt.MustCreateStaff(t, "root@totp.local", policies.RoleAdmin)
	tt.MustCreateStaff(t, "fin@totp.local", policies.RoleFinance)
	if loc := passwordStep(t, tt.Client(t), "fin@totp.local"); loc != "/admin" {
		t.Fatalf("finance (not required) goes to %s", loc)
	}

	c := tt.Client(t)
	if loc := passwordStep(t, c, "root@totp.local"); loc != "/admin/login/enrol" {
		t.Fatalf("admin without an app goes to %s", loc)
	}
	// Every staff page but the enrolment refuses the half-signed-in browser.
	for _, r := range tt.App.Access.Routes() {
		if r.Method != fiber.MethodGet || !strings.HasPrefix(r.Path, "/admin") || tt.App.Access.IsPublic(r.Method, r.Path) {
			continue
		}
		if res := c.Get(fillPattern(r.Path)); !guardRefused(res) {
			t.Errorf("GET %s before enrolment: %d", r.Path, res.Status)
		}
	}
	if res := c.PostForm("/admin/account/totp", url.Values{"code": {"123456"}}); !guardRefused(res) {
		t.Fatalf("account enrolment without a session: %d", res.Status)
	}
	// The code step is not a way around the enrolment.
	if res := c.Get("/admin/login/code"); res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/admin/login") {
		t.Fatalf("code step while enrolment is due: %d %s", res.Status, res.Header.Get("Location"))
	}
	res := c.Get("/admin/login/enrol")
	if !strings.Contains(res.Body, `id="totp-required"`) {
		t.Fatalf("enrolment page does not say it is required: %d", res.Status)
	}
	secret := enrolmentSecret(t, res.Body)
	res = postCode(c, "/admin/login/enrol", clock.code(t, secret))
	if res.Status != http.StatusOK {
		t.Fatalf("enrolment: %d %s", res.Status, res.Body)
	}
	recoveryCodes(t, res.Body)
	if res := c.Get("/admin/users"); res.Status != http.StatusOK {
		t.Fatalf("after enrolment: %d", res.Status)
	}
	// Next time: the code.
	if loc := passwordStep(t, tt.Client(t), "root@totp.local"); loc != "/admin/login/code" {
		t.Fatalf("enrolled admin goes to %s", loc)
	}
}

// LOCAL_STAFF_SIGNIN=off: the sign-in page offers only the company's
// identity provider, and a posted password is refused although it is right.
func TestLocalStaffSignInOffRefusesPasswords(t *testing.T) {
	t.Parallel()
	st, err := devidp.Start("127.0.0.1:0", "Company identity (test)", "cardata-staff", oidcTestSecret, devidp.Staff())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	roleMap, err := config.ParseRoleMap(config.DevRoleMap)
	if err != nil {
		t.Fatal(err)
	}
	ln := apptest.Listen(t)
	tt := apptest.New(t, func(c *config.Config) {
		c.PublicURL = "http://" + ln.Addr().String()
		c.StaffOIDC = config.OIDC{Issuer: st.Issuer(), ClientID: "cardata-staff", ClientSecret: oidcTestSecret,
			Scopes: []string{"profile", "email", "groups"}, RoleClaim: "groups", RoleMap: roleMap}
		c.LocalStaffSignIn = false
	})
	tt.MustCreateStaff(t, "local@totp.local", policies.RoleAdmin)
	c := tt.Client(t)
	page := c.Get("/admin/login").Body
	if strings.Contains(page, `id="f-password"`) || !strings.Contains(page, `id="signin-oidc"`) {
		t.Fatal("the sign-in page still offers the password form, or not the company account")
	}
	res := c.PostForm("/admin/login", url.Values{"email": {"local@totp.local"}, "password": {apptest.Password}})
	if res.Status != http.StatusForbidden || c.Cookie("cardata_session") != "" {
		t.Fatalf("password sign-in with LOCAL_STAFF_SIGNIN=off: %d", res.Status)
	}
	// The company account still signs in.
	w := &oidcWorld{tt: tt, staff: st, ln: ln}
	if res := w.signIn(t, c, "/admin", identity(t, devidp.Staff(), "dev-finance")); res.Status != http.StatusSeeOther {
		t.Fatalf("company sign-in: %d %s", res.Status, res.Body)
	}
	if res := c.Get("/admin"); res.Status != http.StatusOK {
		t.Fatalf("dashboard after the company sign-in: %d", res.Status)
	}
}

// An administrator removes the authenticator app of someone who lost it
// and their recovery codes (asked first, audited); their next password
// sign-in needs no code. Nobody removes their own this way, and an auditor
// does not at all.
func TestTOTPAdministratorRemovesAnothersApp(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	clock := useTOTPClock(tt)
	ada := tt.MustCreateStaff(t, "ada@totp.local", policies.RoleSupport)
	bea := tt.MustCreateStaff(t, "bea@totp.local", policies.RoleAdmin)
	tt.MustCreateStaff(t, "otto@totp.local", policies.RoleAuditor)
	c := tt.LoginStaff(t, "ada@totp.local")
	secret := enrolmentSecret(t, c.Get("/admin/account/totp").Body)
	if res := postCode(c, "/admin/account/totp", clock.code(t, secret)); res.Status != http.StatusOK {
		t.Fatalf("enrolment: %d", res.Status)
	}
	reset := fmt.Sprintf("/admin/users/%d/second-factor/reset", ada.ID)

	auditor := tt.LoginStaff(t, "otto@totp.local")
	if res := auditor.Get(fmt.Sprintf("/admin/users/%d", ada.ID)); res.Status != http.StatusOK || strings.Contains(res.Body, `id="reset-totp"`) {
		t.Fatalf("the auditor is offered the removal: %d", res.Status)
	}
	if res := auditor.PostForm(reset, nil); res.Status != http.StatusForbidden {
		t.Fatalf("auditor removes: %d", res.Status)
	}
	admin := tt.LoginStaff(t, "bea@totp.local")
	if res := admin.PostForm(fmt.Sprintf("/admin/users/%d/second-factor/reset", bea.ID), nil); res.Status != http.StatusConflict {
		t.Fatalf("own removal through the users page: %d", res.Status)
	}
	if res := admin.Get(fmt.Sprintf("/admin/users/%d", ada.ID)); !strings.Contains(res.Body, `id="reset-totp"`) {
		t.Fatalf("the administrator is not offered the removal: %d", res.Status)
	}
	if res := admin.PostForm(reset, url.Values{"_confirm": {"ask"}}); res.Status != http.StatusOK || !strings.Contains(res.Body, "Remove the authenticator app of ada?") {
		t.Fatalf("removal did not ask first: %d", res.Status)
	}
	if res := admin.PostForm(reset, nil); res.Status != http.StatusSeeOther {
		t.Fatalf("removal: %d %s", res.Status, res.Body)
	}
	if loc := passwordStep(t, tt.Client(t), "ada@totp.local"); loc != "/admin" {
		t.Fatalf("after the removal the password leads to %s", loc)
	}
	if got := auditSummaries(t, tt, "second_factor.reset"); len(got) != 1 || !strings.Contains(got[0], "ada@totp.local") {
		t.Fatalf("removal audited: %v", got)
	}
}

// Break-glass: `cardata user reset-second-factor` removes a staff user's
// authenticator app and recovery codes when nobody can sign in to do it.
func TestCLIUserResetSecondFactor(t *testing.T) {
	gdb, _ := cliDatabase(t)
	if code, _, errOut := runCLI(t, "cardata-demo-pass\n", "user", "add", "--email", "root@cli.local", "--name", "Root",
		"--role", "admin", "--password-stdin"); code != 0 {
		t.Fatalf("user add: %d %s", code, errOut)
	}
	var id int64
	gdb.Raw("SELECT id FROM staff_users WHERE email = 'root@cli.local'").Scan(&id)
	store := &totp.Store{DB: gdb, BcryptCost: 4}
	sub := totp.Subject{Kind: policies.KindStaff, ID: id, Account: "root@cli.local"}
	e, err := store.BeginEnrolment(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.Code(e.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ConfirmEnrolment(context.Background(), sub, code, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "user", "reset-second-factor", "--email", "nobody@cli.local"); code != 1 || errOut == "" {
		t.Fatalf("unknown user: %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, "", "user", "reset-second-factor", "--email", "root@cli.local"); code != 0 || !strings.Contains(out, "root@cli.local") {
		t.Fatalf("reset: %d %s %s", code, out, errOut)
	}
	if on, err := store.Enabled(context.Background(), sub); err != nil || on {
		t.Fatalf("after the reset: enabled %v %v", on, err)
	}
	var n int64
	gdb.Raw("SELECT count(*) FROM audit_entries WHERE action = 'second_factor.reset'").Scan(&n)
	if n != 1 {
		t.Fatalf("%d reset entries audited", n)
	}
}
