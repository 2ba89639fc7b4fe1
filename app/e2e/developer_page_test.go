package e2e

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/onboarding"
	"cardata/policies"
)

// devPageWorld is a provider (admin, developer, finance user) with an API
// client and a revoked one, on an app whose API limits are not the defaults.
type devPageWorld struct {
	tt      *apptest.T
	w       *apiWorld
	revoked string // the revoked client's id
	sandbox string // a sandbox client's id
	dev     string // the developer's e-mail
	fin     string // the finance user's e-mail
}

func newDevPageWorld(t *testing.T) *devPageWorld {
	t.Helper()
	tt := apptest.New(t, func(c *config.Config) { c.APIRateLimit, c.APIRateBurst, c.APITokenTTL = 7, 42, 9*time.Minute })
	d := &devPageWorld{tt: tt, w: mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")}
	pid := d.w.Provider.Provider.ID
	ob := onboardingFor(tt)
	old, err := ob.CreateAPIClient(tt.Ctx, pid, "old backend")
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.RevokeAPIClient(tt.Ctx, pid, old.Client.ID); err != nil {
		t.Fatal(err)
	}
	d.revoked = old.Client.ClientID
	sbx, err := ob.CreateSandboxAPIClient(tt.Ctx, pid, "sandbox")
	if err != nil {
		t.Fatal(err)
	}
	d.sandbox = sbx.Client.ClientID
	n := apiSeq.Add(1)
	d.dev, d.fin = fmt.Sprintf("dev%d@alpen.example", n), fmt.Sprintf("fin%d@alpen.example", n)
	for email, role := range map[string]string{d.dev: onboarding.RoleProviderDeveloper, d.fin: onboarding.RoleProviderFinance} {
		inv, err := ob.InviteProviderUser(obProviderCtx(d.w.Provider.Admin), pid, onboarding.Invite{Email: email, Name: "User", Role: role})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ob.AcceptInvitation(tt.Ctx, inv.Link[len(tt.App.Cfg.PublicURL+"/portal/invitations/"):], providerPassword); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// The developer page, as a provider's administrator and developer see it:
// the URLs, their live client ids (not the revoked one), the limits the API
// applies (this app's configuration, not the defaults), and working links to
// the reference, the document, the changelog and the example.
func TestDeveloperPageShowsTheAPIAsConfigured(t *testing.T) {
	t.Parallel()
	d := newDevPageWorld(t)
	tt, w := d.tt, d.w
	if l := tt.App.API.Limits(); l.RatePerSecond != 7 || l.Burst != 42 || l.TokenTTL != 9*time.Minute {
		t.Fatalf("the API does not apply the configured limits: %+v", l)
	}
	base := tt.App.Cfg.PublicURL
	for who, c := range map[string]*apptest.Client{
		"admin":     loginProvider(t, tt, w.Provider.Admin.Email, providerPassword),
		"developer": loginProvider(t, tt, d.dev, providerPassword),
	} {
		res := c.Get("/portal/developer")
		if res.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", who, res.Status, res.Body)
		}
		body := html.UnescapeString(res.Body)
		obMustContain(t, body,
			`<code id="api-url" class="copyable">`+base+`/api/v1</code>`,
			`<code id="token-url" class="copyable">`+base+`/oauth/token</code>`,
			`class="copyable">`+w.ClientID+`</code> <button type="button" class="copy"`, // selectable text; the button waits for app.js
			`Each API client may send up to 42 requests at once and gets 7 back every second`,
			`An access token lives 9 minutes`,
			`Lists return at most 500 items a page (100 when you give no limit)`,
			`After 20 failed client authentications from one address within 10 minutes`,
			`An Idempotency-Key is remembered for 24 hours`,
			`href="/api/docs"`, `href="/api/v1/openapi.json"`, `href="#changelog"`, `href="/portal/clients"`, `href="/portal/webhooks"`,
			`<h3>Deprecation policy (from 1.0 on)</h3>`,                // the changelog, rendered
			`client.VerifyWebhook(secret, r.Header, body, time.Now())`, // the example's source
			`href="/portal/developer"`)                                 // in the navigation
		if i, j := strings.Index(body, `id="sandbox-clients"`), strings.Index(body, d.sandbox); i < 0 || j < i ||
			strings.Index(body, w.ClientID) > i {
			t.Errorf("%s: the sandbox client is not listed apart from the production one", who)
		}
		if strings.Contains(body, d.revoked) {
			t.Errorf("%s: a revoked client is listed", who)
		}
		if strings.Contains(body, w.Secret) {
			t.Errorf("%s: a secret is shown", who)
		}
	}
	// In German, with the same figures.
	dev := loginProvider(t, tt, d.dev, providerPassword)
	dev.Header.Set("Accept-Language", "de")
	obMustContain(t, html.UnescapeString(dev.Get("/portal/developer").Body),
		"Jeder API-Client darf bis zu 42 Anfragen auf einmal senden und erhält jede Sekunde 7 zurück", "Ein Zugriffstoken gilt 9 Minuten")
	// What it links to works without a session (the reference is public).
	anon := tt.Client(t)
	for _, p := range []string{"/api/docs", "/api/v1/openapi.json"} {
		if res := anon.Get(p); res.Status != http.StatusOK {
			t.Errorf("%s: %d", p, res.Status)
		}
	}
}

// Nobody else sees the page: the provider's finance user, staff, a vehicle
// owner and an anonymous visitor are refused, and their navigation has no
// link to it.
func TestDeveloperPageIsRefusedToOthers(t *testing.T) {
	t.Parallel()
	d := newDevPageWorld(t)
	tt, w := d.tt, d.w
	tt.MustCreateStaff(t, "admin@cardata.example", policies.RoleAdmin)
	tt.MustCreateStaff(t, "pm@cardata.example", policies.RolePartnerManager)
	var email string
	tt.DB.Raw("SELECT email FROM customer_accounts WHERE id = ?", w.AccountID).Scan(&email)
	if err := apiConsents(tt).SetCustomerPassword(tt.Ctx, w.AccountID, csPassword); err != nil {
		t.Fatal(err)
	}
	customer := tt.Client(t)
	if res := customer.PostForm("/my/login", url.Values{"email": {email}, "password": {csPassword}}); res.Status != http.StatusSeeOther {
		t.Fatalf("customer login: %d", res.Status)
	}
	for who, c := range map[string]*apptest.Client{
		"provider finance": loginProvider(t, tt, d.fin, providerPassword),
		"staff admin":      tt.LoginStaff(t, "admin@cardata.example"),
		"partner manager":  tt.LoginStaff(t, "pm@cardata.example"),
		"customer":         customer,
	} {
		res := c.Get("/portal/developer")
		if res.Status != http.StatusForbidden || strings.Contains(res.Body, w.ClientID) {
			t.Errorf("%s: %d", who, res.Status)
		}
		for _, home := range []string{"/portal", "/admin", "/my"} {
			if strings.Contains(c.Get(home).Body, `href="/portal/developer"`) {
				t.Errorf("%s is shown a link to the developer page on %s", who, home)
			}
		}
	}
	res := tt.Client(t).Get("/portal/developer")
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/portal/login") {
		t.Errorf("anonymous: %d %s", res.Status, res.Header.Get("Location"))
	}
}

// In a browser the copy buttons appear (app.js) and copy; the page fits a
// phone's width. With UX_SCREENSHOTS=dir it is saved at 1366 and 390 px.
func TestBrowserDeveloperPage(t *testing.T) {
	t.Parallel()
	d := newDevPageWorld(t)
	base := d.tt.Serve(t)
	ctx := apptest.Browser(t)
	var copied string
	var pageWidth, viewWidth int
	sel := fmt.Sprintf(`button[data-copy="client-%d"]`, mustClientPK(t, d.tt, d.w.ClientID))
	bc := chromedp.FromContext(ctx).BrowserContextID // the user's own browser context (apptest.Browser)
	err := chromedp.Run(ctx,
		browser.SetPermission(&browser.PermissionDescriptor{Name: "clipboard-read"}, browser.PermissionSettingGranted).WithOrigin(base).WithBrowserContextID(bc),
		browser.SetPermission(&browser.PermissionDescriptor{Name: "clipboard-write"}, browser.PermissionSettingGranted).WithOrigin(base).WithBrowserContextID(bc),
		chromedp.Navigate(base+"/portal/login"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, d.dev, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, providerPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#logout") !== null`),
		chromedp.Navigate(base+"/portal/developer"),
		chromedp.WaitVisible(sel, chromedp.ByQuery),
		chromedp.Click(sel, chromedp.ByQuery),
		apptest.WaitJS(fmt.Sprintf(`document.querySelector(%q).textContent === "Copied"`, sel)),
		chromedp.Evaluate(`navigator.clipboard.readText().catch(e => "unreadable: " + e)`, &copied,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
		screenshots(t, "portal-developer"),
		chromedp.EmulateViewport(390, 844),
		chromedp.Click(`#example summary`, chromedp.ByQuery), // the source open too
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &pageWidth),
		chromedp.Evaluate(`document.documentElement.clientWidth`, &viewWidth), // without a scroll bar
	)
	if err != nil {
		t.Fatal(err)
	}
	// What a phone shows first, as it shows it (a full-page capture lays the
	// page out without the scroll bar).
	if dir := os.Getenv("UX_SCREENSHOTS"); dir != "" {
		var png []byte
		if err := chromedp.Run(ctx, chromedp.ScrollIntoView(`#example`, chromedp.ByQuery), chromedp.CaptureScreenshot(&png)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "portal-developer-390-example.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if copied != d.w.ClientID {
		t.Errorf("the clipboard holds %q, want the client id %q", copied, d.w.ClientID)
	}
	if pageWidth > viewWidth {
		t.Errorf("/portal/developer is %d px wide in a %d px viewport", pageWidth, viewWidth)
	}
}

func mustClientPK(t *testing.T, tt *apptest.T, clientID string) int64 {
	t.Helper()
	var id int64
	if err := tt.DB.Raw("SELECT id FROM api_clients WHERE client_id = ?", clientID).Scan(&id).Error; err != nil || id == 0 {
		t.Fatalf("client %s: %v", clientID, err)
	}
	return id
}
