package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/signin"
)

// signinSurface is one of the three password sign-ins with a known account.
type signinSurface struct {
	name, path, table string
	email, password   string
	hashQuery         string // the account's stored bcrypt hash
}

// signinSurfaces creates an account on each sign-in surface, its password
// hashed at the app's BCRYPT_COST as the app itself would.
func signinSurfaces(t *testing.T, tt *apptest.T) []signinSurface {
	t.Helper()
	cost := tt.App.Cfg.BcryptCost
	staffUser := tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)

	ob := &onboarding.Service{DB: tt.DB, BcryptCost: cost, PublicURL: tt.App.Cfg.PublicURL}
	reg, err := ob.Register(tt.Ctx, onboarding.Registration{
		LegalName: "Burst Versicherung AG", LegalForm: "AG", Street: "Ring 1", PostalCode: "1010", City: "Wien", Country: "AT",
		VATID: "ATU13585627", RegisterNumber: "FN 1", ContactName: "Bea Burst", ContactEmail: "bea@provider.example",
		BillingEmail: "billing@provider.example", IntendedServices: "Usage-based insurance from mileage.",
		TermsVersion: "2025-01", AcceptTerms: true, AdminPassword: providerPassword, ClientAddr: "192.0.2.9",
		Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: obPDF}}})
	if err != nil {
		t.Fatal(err)
	}

	veh := &vehicles.Service{DB: tt.DB, Catalog: catalog.Default()}
	acct, err := veh.CreateAccount(tt.Ctx, vehicles.NewAccount{Email: "cora@test.local", Name: "Cora"})
	if err != nil {
		t.Fatal(err)
	}
	cs := &consent.Service{DB: tt.DB, IsEU: onboarding.IsEU, BcryptCost: cost}
	if err := cs.SetCustomerPassword(tt.Ctx, acct.ID, csPassword); err != nil {
		t.Fatal(err)
	}
	return []signinSurface{
		{"staff", "/admin/login", "login_attempts", staffUser.Email, apptest.Password,
			"SELECT password_hash FROM staff_users WHERE email = 'otto@test.local'"},
		{"portal", "/portal/login", "provider_login_attempts", reg.Admin.Email, providerPassword,
			"SELECT password_hash FROM provider_users WHERE email = 'bea@provider.example'"},
		{"customer", "/my/login", "customer_login_attempts", "cora@test.local", csPassword,
			"SELECT password_hash FROM customer_credentials"},
	}
}

// signinBurst sends n sign-ins with a wrong password for email at once and
// returns the statuses and Retry-After headers.
func signinBurst(t *testing.T, tt *apptest.T, path, email string, n int) ([]int, []string) {
	t.Helper()
	c := tt.Client(t)
	csrf := c.CSRF()
	body := url.Values{"email": {email}, "password": {"wrong-password-123"}, "_csrf": {csrf}}.Encode()
	statuses, retry := make([]int, n), make([]string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "cardata_csrf", Value: csrf})
			<-start
			res, err := tt.App.Fiber.Test(req, -1)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			res.Body.Close()
			statuses[i], retry[i] = res.StatusCode, res.Header.Get("Retry-After")
		}()
	}
	close(start)
	wg.Wait()
	return statuses, retry
}

// 150 parallel wrong passwords for one account: each attempt reserves its
// slot in PostgreSQL before its password is checked, so exactly
// LOGIN_MAX_FAILURES_ACCOUNT of them reach bcrypt (and answer 401) and the
// rest answer 429 with Retry-After, on all three sign-ins.
func TestSignInBurstIsThrottledAtomically(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	limit := tt.App.Cfg.LoginMaxFailuresPerAccount
	for _, s := range signinSurfaces(t, tt) {
		statuses, retry := signinBurst(t, tt, s.path, s.email, 150)
		var checked, throttled int
		for i, st := range statuses {
			switch st {
			case http.StatusUnauthorized:
				checked++
			case http.StatusTooManyRequests:
				throttled++
				if retry[i] == "" {
					t.Errorf("%s: a 429 without Retry-After", s.name)
				}
			default:
				t.Errorf("%s: status %d", s.name, st)
			}
		}
		if checked != limit || throttled != 150-limit {
			t.Errorf("%s: %d passwords checked and %d throttled, want %d and %d", s.name, checked, throttled, limit, 150-limit)
		}
		var failures int64
		tt.DB.Raw("SELECT count(*) FROM "+s.table+" WHERE lower(email) = ? AND NOT succeeded", s.email).Scan(&failures)
		if failures != int64(limit) {
			t.Errorf("%s: %d failed attempts recorded, want %d", s.name, failures, limit)
		}
		// The account stays throttled for the window, even for the right password.
		c := tt.Client(t)
		res := c.PostForm(s.path, url.Values{"email": {s.email}, "password": {s.password}})
		if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s: right password after the burst: %d", s.name, res.Status)
		}
	}
}

// A successful sign-in releases the account's slots: failures below the
// limit do not add up across a success.
func TestSignInSuccessClearsTheAccountsFailures(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	limit := tt.App.Cfg.LoginMaxFailuresPerAccount
	for _, s := range signinSurfaces(t, tt) {
		c := tt.Client(t)
		for round := range 2 {
			for range limit - 1 {
				if res := c.PostForm(s.path, url.Values{"email": {s.email}, "password": {"wrong-password-123"}}); res.Status != http.StatusUnauthorized {
					t.Fatalf("%s round %d: wrong password: %d", s.name, round, res.Status)
				}
			}
			if res := c.PostForm(s.path, url.Values{"email": {s.email}, "password": {s.password}}); res.Status != http.StatusSeeOther {
				t.Fatalf("%s round %d: right password: %d %s", s.name, round, res.Status, res.Body)
			}
			c = tt.Client(t)
		}
	}
}

// An unknown e-mail is checked against a dummy hash of BCRYPT_COST, the
// cost of the real hashes, on all three sign-ins; the test reads the costs
// (bcrypt.Cost), never the clock. This app alone runs at cost 5, so the
// dummy-check count for cost 5 is this test's.
func TestUnknownEmailPaysTheConfiguredBcryptCost(t *testing.T) {
	t.Parallel()
	const cost = 5
	tt := apptest.New(t, func(c *config.Config) { c.BcryptCost = cost })
	for _, s := range signinSurfaces(t, tt) {
		var hash string
		tt.DB.Raw(s.hashQuery).Scan(&hash)
		real, err := bcrypt.Cost([]byte(hash))
		if err != nil || real != cost {
			t.Fatalf("%s: the real hash has cost %d (%v), want %d", s.name, real, err, cost)
		}
		if dummy, err := bcrypt.Cost(signin.DummyHash(cost)); err != nil || dummy != real {
			t.Fatalf("%s: dummy hash cost %d (%v), real %d", s.name, dummy, err, real)
		}
		c := tt.Client(t)
		before := signin.DummyChecks(cost)
		if res := c.PostForm(s.path, url.Values{"email": {"nobody-" + s.name + "@test.local"}, "password": {"wrong-password-123"}}); res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: unknown e-mail: %d", s.name, res.Status)
		}
		if got := signin.DummyChecks(cost) - before; got != 1 {
			t.Errorf("%s: the unknown e-mail made %d dummy checks at cost %d, want 1", s.name, got, cost)
		}
		before = signin.DummyChecks(cost)
		if res := c.PostForm(s.path, url.Values{"email": {s.email}, "password": {"wrong-password-123"}}); res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: known e-mail: %d", s.name, res.Status)
		}
		if got := signin.DummyChecks(cost) - before; got != 0 {
			t.Errorf("%s: a known e-mail was checked against the dummy hash", s.name)
		}
	}
}
