package e2e

import (
	"context"
	"io"
	"io/fs"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/policies"
	"cardata/templates"
)

// metricsPatience only catches a hang; nothing here takes long.
const metricsPatience = 2 * time.Minute

// checkSecurityHeaders asserts the browser security headers of one response.
func checkSecurityHeaders(t *testing.T, what string, h http.Header, hsts bool) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 {
			directives[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for name, want := range map[string]string{
		"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
		"object-src": "'none'", "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("%s: CSP %s is %q, want %q (CSP %q)", what, name, directives[name], want, csp)
		}
	}
	if strings.Contains(directives["script-src"], "unsafe") || strings.Contains(directives["default-src"], "unsafe") {
		t.Errorf("%s: CSP allows unsafe scripts: %q", what, csp)
	}
	for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s is %q, want %q", what, name, got, want)
		}
	}
	if rp := h.Get("Referrer-Policy"); rp != "same-origin" && rp != "strict-origin-when-cross-origin" {
		t.Errorf("%s: Referrer-Policy %q", what, rp)
	}
	sts := h.Get("Strict-Transport-Security")
	if !hsts {
		if sts != "" {
			t.Errorf("%s: HSTS %q without COOKIE_SECURE", what, sts)
		}
		return
	}
	age, _, _ := strings.Cut(strings.TrimPrefix(sts, "max-age="), ";")
	if n, err := strconv.Atoi(age); !strings.HasPrefix(sts, "max-age=") || err != nil || n < 180*24*3600 {
		t.Errorf("%s: HSTS %q, want max-age of at least 180 days", what, sts)
	}
}

func setCookie(res *apptest.Response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Every page (sign-ins, registration, error pages) carries the security
// headers, and so, harmlessly, do JSON answers and static files.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "sue@test.local", policies.RoleSupport)
	c := tt.Client(t)
	sue := tt.LoginStaff(t, "sue@test.local")
	for _, page := range []struct {
		c      *apptest.Client
		path   string
		status int
	}{
		{c, "/admin/login", 200}, {c, "/portal/login", 200}, {c, "/my/login", 200}, {c, "/register", 200},
		{sue, "/admin", 200}, {sue, "/admin/no-such-page", 404}, {sue, "/admin/audit", 403},
	} {
		req, _ := http.NewRequest(http.MethodGet, page.path, nil)
		req.Header.Set("Accept", "text/html")
		res := page.c.Do(req)
		if res.Status != page.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(res.Body, "<!doctype html>") {
			t.Errorf("%s: %d %s, want an HTML page with %d", page.path, res.Status, res.Header.Get("Content-Type"), page.status)
		}
		checkSecurityHeaders(t, page.path, res.Header, false)
	}
	// A redirect (here to the sign-in) carries them too.
	checkSecurityHeaders(t, "redirect", c.Get("/admin").Header, false)
	for _, path := range []string{"/healthz", "/static/app.js", "/static/app.css", "/api/v1/no-such-thing"} {
		checkSecurityHeaders(t, path, c.Get(path).Header, false)
	}
	// nosniff requires a script's media type to be JavaScript, or the browser refuses it.
	if ct := c.Get("/static/app.js").Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("app.js served as %q", ct)
	}
}

// With COOKIE_SECURE (TLS deployments) every response carries HSTS and
// every cookie, the flash message included, is Secure; without it neither.
func TestHSTSAndSecureFlashCookieFollowCookieSecure(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run("secure="+strconv.FormatBool(secure), func(t *testing.T) {
			t.Parallel()
			tt := apptest.New(t, func(c *config.Config) { c.CookieSecure = secure })
			tt.MustCreateStaff(t, "sid@test.local", policies.RoleSupport)
			c := tt.Client(t)
			res := c.Get("/admin/login")
			checkSecurityHeaders(t, "/admin/login", res.Header, secure)
			c = tt.LoginStaff(t, "sid@test.local")
			res = c.PostForm("/admin/logout", nil)
			checkSecurityHeaders(t, "POST /admin/logout", res.Header, secure)
			flash := setCookie(res, "cardata_flash")
			if flash == nil || flash.Value == "" {
				t.Fatalf("logout set no flash cookie: %v", res.Header.Values("Set-Cookie"))
			}
			if flash.Secure != secure || !flash.HttpOnly {
				t.Errorf("flash cookie %q: Secure %v HttpOnly %v, want Secure %v", flash.Raw, flash.Secure, flash.HttpOnly, secure)
			}
			for _, ck := range (&http.Response{Header: res.Header}).Cookies() {
				if ck.Secure != secure {
					t.Errorf("cookie %s: Secure %v", ck.Name, ck.Secure)
				}
			}
			// The page that shows the message clears the cookie with the same attributes.
			res = c.Get("/admin/login")
			if !strings.Contains(res.Body, "signed out") {
				t.Fatalf("flash not shown: %d", res.Status)
			}
			if cleared := setCookie(res, "cardata_flash"); cleared == nil || !cleared.Expires.Before(time.Now()) || cleared.Secure != secure {
				t.Errorf("flash not cleared as set: %v", cleared)
			}
		})
	}
}

// /metrics answers only on METRICS_ADDR, which starts and stops with the
// server; the public listener answers 404 for it.
func TestMetricsOnlyOnTheMetricsListener(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)

	// A METRICS_ADDR that cannot be bound stops the server from starting.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfgAddr := tt.App.Cfg.MetricsAddr
	tt.App.Cfg.MetricsAddr = taken.Addr().String()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.App.ServeListener(context.Background(), ln, nil); err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Fatalf("METRICS_ADDR in use: %v", err)
	}
	tt.App.Cfg.MetricsAddr = cfgAddr

	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- tt.App.ServeListener(ctx, ln, func(addr string) { ready <- addr }) }()
	var base string
	select {
	case base = <-ready:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	case <-time.After(metricsPatience):
		t.Fatal("server never became ready")
	}
	metricsAddr := tt.App.MetricsAddr()
	if metricsAddr == "" {
		t.Fatal("no metrics listener")
	}
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	get("http://" + base + "/admin/login")
	if status, body := get("http://" + metricsAddr + "/metrics"); status != 200 ||
		!strings.Contains(body, `cardata_http_requests_total{method="GET",route="/admin/login",status="200"}`) {
		t.Errorf("metrics listener: %d %.300s", status, body)
	}
	if status, _ := get("http://" + metricsAddr + "/admin/login"); status != http.StatusNotFound {
		t.Errorf("metrics listener serves the app: %d", status)
	}
	if status, body := get("http://" + base + "/metrics"); status != http.StatusNotFound || strings.Contains(body, "go_goroutines") {
		t.Errorf("public /metrics: %d", status)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(metricsPatience):
		t.Fatal("server did not shut down")
	}
	if tt.App.MetricsAddr() != "" {
		t.Error("metrics address still reported after shutdown")
	}
	if conn, err := net.DialTimeout("tcp", metricsAddr, 5*time.Second); err == nil {
		conn.Close()
		t.Error("metrics listener still open after shutdown")
	}
}

// METRICS_ADDR defaults to loopback; empty or "off" turns it off.
func TestMetricsAddrConfiguration(t *testing.T) {
	t.Parallel()
	load := func(env map[string]string) (config.Config, error) {
		return config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}
	for value, want := range map[string]string{"": "", "off": "", " OFF ": "", "0.0.0.0:9100": "0.0.0.0:9100"} {
		cfg, err := load(map[string]string{"METRICS_ADDR": value})
		if err != nil || cfg.MetricsAddr != want {
			t.Errorf("METRICS_ADDR=%q: %q %v, want %q", value, cfg.MetricsAddr, err, want)
		}
	}
	if cfg, err := load(nil); err != nil || cfg.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("default METRICS_ADDR: %q %v", cfg.MetricsAddr, err)
	}
	if _, err := load(map[string]string{"METRICS_ADDR": "9090"}); err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Errorf("METRICS_ADDR=9090 accepted: %v", err)
	}
}

var (
	templateAction = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	scriptElement  = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	startTag       = regexp.MustCompile(`(?s)<[a-zA-Z][^<>]*>`)
	inlineAttr     = regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
)

// The CSP refuses inline script and style, so a template that carries them
// would break in the browser: scripts go to templates/static/app.js, styles
// to app.css.
func TestTemplatesCarryNoInlineScriptOrStyle(t *testing.T) {
	t.Parallel()
	pages, scripts := 0, 0
	err := fs.WalkDir(templates.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".html") {
			return err
		}
		b, err := fs.ReadFile(templates.Files(), path)
		if err != nil {
			return err
		}
		pages++
		src := templateAction.ReplaceAllString(string(b), " ")
		for _, m := range scriptElement.FindAllStringSubmatch(src, -1) {
			scripts++
			if !strings.Contains(strings.ToLower(m[1]), "src=") || strings.TrimSpace(m[2]) != "" {
				t.Errorf("%s: inline script %.80q", path, m[0])
			}
		}
		if n := strings.Count(strings.ToLower(src), "<script"); n != len(scriptElement.FindAllString(src, -1)) {
			t.Errorf("%s: unclosed or odd <script> element", path)
		}
		if strings.Contains(strings.ToLower(src), "<style") {
			t.Errorf("%s: inline <style> element", path)
		}
		if strings.Contains(strings.ToLower(src), "javascript:") {
			t.Errorf("%s: javascript: URL", path)
		}
		for _, tag := range startTag.FindAllString(src, -1) {
			if m := inlineAttr.FindStringSubmatch(tag); m != nil {
				t.Errorf("%s: inline %s attribute in %.80q", path, m[1], tag)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages < 20 || scripts == 0 {
		t.Fatalf("walked %d templates with %d script elements: the walk missed the templates", pages, scripts)
	}
}

// In a real browser, under the CSP: the pages whose inline styles moved to
// app.css raise no violation, an injected inline handler or style is
// refused, running a job asks first on the server's confirmation page (cancel
// runs nothing, yes runs it once), and app.js still refreshes a data-poll
// panel.
func TestBrowserPagesWorkUnderTheContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	base := tt.Serve(t)
	ctx := apptest.Browser(t)

	// Collected from the first byte of every document, before page scripts run.
	const collect = `window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`
	noViolations := func(where string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var got []string
			if err := chromedp.Evaluate(`window.__csp`, &got).Do(ctx); err != nil {
				return err
			}
			if len(got) > 0 {
				t.Errorf("%s: CSP violations %q", where, got)
			}
			return nil
		})
	}
	signIn := func(email string) chromedp.Action {
		return chromedp.Tasks{
			chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
			chromedp.SendKeys(`#f-email`, email, chromedp.ByQuery),
			chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
			chromedp.Click(`#signin`, chromedp.ByQuery),
			apptest.WaitJS(`document.querySelector("#logout") !== null`),
		}
	}
	var maxWidth string
	err := chromedp.Run(ctx,
		chromedp.ActionFunc(func(ctx context.Context) error {
			_, err := page.AddScriptToEvaluateOnNewDocument(collect).Do(ctx)
			return err
		}),
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(`section.wide-form`, chromedp.ByQuery),
		noViolations("/register"),
		chromedp.Navigate(base+"/admin/login"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		noViolations("/admin/login"),
		signIn("otto@test.local"),
		chromedp.Navigate(base+"/admin/coverage"),
		chromedp.WaitVisible(`#coverage-map`, chromedp.ByQuery),
		noViolations("/admin/coverage"),
		chromedp.Evaluate(`getComputedStyle(document.querySelector("#coverage-map")).maxWidth`, &maxWidth),
		chromedp.Click(`#logout`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector(".flash") !== null && document.querySelector("#f-email") !== null`),
		noViolations("/admin/login with a flash"),
		signIn("ada@test.local"),
		chromedp.Navigate(base+"/admin/jobs"),
		chromedp.WaitVisible(`table.list`, chromedp.ByQuery),
		noViolations("/admin/jobs"),
		// The CSP is enforced: an injected inline handler and style attribute are refused.
		chromedp.Evaluate(`document.body.insertAdjacentHTML("beforeend",
			'<img src="data:," onerror="window.__ran = true"><span style="color:red">x</span>'); true`, nil),
		apptest.WaitJS(`window.__csp.some(function (v) { return v.indexOf("script-src") === 0; }) &&
			window.__csp.some(function (v) { return v.indexOf("style-src") === 0; })`),
	)
	if err != nil {
		t.Fatal(err)
	}
	if maxWidth != "680px" {
		t.Errorf("coverage map max-width %q: app.css rule not applied", maxWidth)
	}
	var ran bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.__ran === true`, &ran)); err != nil || ran {
		t.Fatalf("injected inline handler ran: %v %v", ran, err)
	}

	// Running a job asks first: cancel goes back without a run, yes runs it.
	var asked string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/admin/jobs/sessions.purge"),
		chromedp.WaitVisible(`#run-now`, chromedp.ByQuery),
		noViolations("/admin/jobs/sessions.purge"),
		chromedp.Click(`#run-now`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`),
		chromedp.Text(`#confirm-title`, &asked, chromedp.ByQuery),
		noViolations("confirmation page"),
		chromedp.Click(`#confirm-cancel`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#run-now") !== null`),
		chromedp.Click(`#run-now`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("#confirm-yes") !== null`),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector(".flash") !== null &&
			document.querySelector(".flash").textContent.indexOf("started") >= 0`),
		noViolations("/admin/jobs/sessions.purge after run"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if asked != "Run Session clean-up now?" {
		t.Errorf("confirm asked %q", asked)
	}
	var runs int64
	tt.DB.Raw(`SELECT count(*) FROM job_runs WHERE job = 'sessions.purge'`).Scan(&runs)
	if runs != 1 {
		t.Errorf("%d runs of sessions.purge, want 1 (the declined one must not run)", runs)
	}

	// data-poll: the live panel is replaced by a fresh fragment from the server.
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`document.getElementById("live").innerHTML = '<p id="stale">stale</p>'; true`, nil),
		apptest.WaitJS(`document.getElementById("stale") === null &&
			document.getElementById("live").textContent.indexOf("Updated") >= 0`),
		noViolations("/admin/jobs/sessions.purge polled"),
	)
	if err != nil {
		t.Fatal(err)
	}
}
