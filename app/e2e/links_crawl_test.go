package e2e

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/app/web"
)

// demoLogin is one demo user of the crawl: where they sign in and start.
type demoLogin struct {
	name, login, email, home string
}

// demoLogins are every kind of demo user: each staff role, the provider's
// administrator and developer, and two vehicle owners.
var demoLogins = []demoLogin{
	{"manager", "/admin/login", "manager@demo.local", "/admin"},
	{"finance", "/admin/login", "finance@demo.local", "/admin"},
	{"support", "/admin/login", "support@demo.local", "/admin"},
	{"support-lead", "/admin/login", demo.TeamLead, "/admin"},
	{"admin", "/admin/login", "admin@demo.local", "/admin"},
	{"auditor", "/admin/login", "auditor@demo.local", "/admin"},
	{"provider-admin", "/portal/login", demo.InsurerAdmin, "/portal"},
	{"provider-developer", "/portal/login", demo.InsurerDeveloper, "/portal"},
	{"customer", "/my/login", demo.Customer1Email, "/my"},
	{"customer-anna", "/my/login", demo.AnnaEmail, "/my"},
}

// loginDemo signs a demo user in through their surface's form.
func loginDemo(t *testing.T, tt *apptest.T, u demoLogin) *apptest.Client {
	t.Helper()
	c := tt.Client(t)
	res := c.PostForm(u.login, url.Values{"email": {u.email}, "password": {demo.Password}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("login %s: %d %s", u.email, res.Status, res.Body)
	}
	return c
}

var hrefRe = regexp.MustCompile(`<a\s[^>]*href="([^"]*)"`)

// crawlLimitPerShape bounds how many pages of one shape (a path with its
// numbers and codes blanked, plus its query keys) are followed: every
// provider page has the same links as the next, and the demo has hundreds
// of vehicles.
const crawlLimitPerShape = 6

var digitSeg = regexp.MustCompile(`^[^/]*[0-9][^/]*$`)

func linkShape(u *url.URL) string {
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if digitSeg.MatchString(s) || (len(s) == 2 && strings.ToUpper(s) == s) {
			segs[i] = "#"
		}
	}
	keys := make([]string, 0, len(u.Query()))
	for k := range u.Query() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(segs, "/") + "?" + strings.Join(keys, "&")
}

// crawlPages follows every same-origin link shown to c, starting at home,
// and returns the links that did not work, with the page that showed them,
// and the paths of the HTML pages it read (200), in the order it read them.
// A link is broken when it answers 401, 403, 404, 405 or 5xx, or when no
// GET route serves it: a browser surface sends a GET of a form's address
// on to the form's page (303), which would otherwise hide a link to an
// action.
func crawlPages(t *testing.T, c *apptest.Client, routes *routeMatcher, home string) (broken []string, pages int, read []string) {
	t.Helper()
	type item struct{ path, from string }
	queue := []item{{home, "(home)"}}
	seen := map[string]bool{home: true}
	shapes := map[string]int{}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		res := c.Get(it.path)
		pages++
		switch {
		case res.Status == 401 || res.Status == 403 || res.Status == 404 || res.Status == 405 || res.Status >= 500:
			broken = append(broken, fmt.Sprintf("%d %s (shown on %s)", res.Status, it.path, it.from))
			continue
		case res.Status >= 300 && res.Status < 400:
			if routes.pattern(it.path) == "" {
				broken = append(broken, fmt.Sprintf("%d %s (no page, a form's address; shown on %s)", res.Status, it.path, it.from))
				continue
			}
			loc := res.Header.Get("Location")
			if u, err := url.Parse(loc); err == nil && u.Host == "" && !seen[u.RequestURI()] {
				seen[u.RequestURI()] = true
				queue = append(queue, item{u.RequestURI(), it.path + " (redirect)"})
			}
			continue
		}
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			continue
		}
		if res.Status == 200 {
			read = append(read, it.path)
		}
		base, _ := url.Parse(it.path)
		for _, m := range hrefRe.FindAllStringSubmatch(res.Body, -1) {
			href := html.UnescapeString(m[1])
			if href == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(href, "mailto:") {
				continue
			}
			u, err := base.Parse(href)
			if err != nil {
				broken = append(broken, fmt.Sprintf("unparsable %q (shown on %s)", href, it.path))
				continue
			}
			if u.Host != "" || strings.HasPrefix(u.Path, "/static/") {
				continue
			}
			u.Fragment = ""
			p := u.RequestURI()
			if seen[p] {
				continue
			}
			seen[p] = true
			shape := linkShape(u)
			if shapes[shape] >= crawlLimitPerShape {
				continue
			}
			shapes[shape]++
			queue = append(queue, item{p, it.path})
		}
	}
	return broken, pages, read
}

// Every link a demo user is shown leads somewhere they may go: the crawl
// starts at each demo user's home, follows every same-origin link (GET) and
// fails on any that answers 401, 403, 404, 405 or 5xx.
//
// Every page template the crawl reached is then checked for accessibility:
// axe-core in headless Chromium, once per route pattern and surface (the
// first user of demoLogins to read it, so the partner manager's forms are
// among them), failing on critical, serious and moderate violations (but the few
// accepted on purpose, axeAccepted).
func TestEveryShownLinkWorksForEveryDemoUser(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	routes := newRouteMatcher(tt.App.Fiber)
	var toCheck []axePage
	checked := map[string]bool{}
	for _, u := range demoLogins {
		t.Run(u.name, func(t *testing.T) {
			c := loginDemo(t, tt, u)
			broken, pages, read := crawlPages(t, c, routes, u.home)
			t.Logf("%s: %d pages", u.name, pages)
			if len(broken) > 0 {
				t.Errorf("%s is shown %d links that do not work:\n%s", u.email, len(broken), strings.Join(broken, "\n"))
			}
			for _, p := range read {
				pat := routes.pattern(p)
				if pat == "" || checked[pat] {
					continue
				}
				checked[pat] = true
				cookies := map[string]string{}
				for _, name := range []string{web.SessionCookie, "cardata_csrf"} {
					if v := c.Cookie(name); v != "" {
						cookies[name] = v
					}
				}
				toCheck = append(toCheck, axePage{user: u.name, pattern: pat, path: p, cookies: cookies})
			}
		})
	}
	// And what a visitor reads before signing in, and the error page.
	for _, p := range []string{"/admin/login", "/portal/login", "/my/login", "/register", "/register/terms", "/admin/no-such-page"} {
		pat := routes.pattern(p)
		if p == "/admin/no-such-page" {
			pat = "(404)"
		}
		if pat != "" && !checked[pat] {
			checked[pat] = true
			toCheck = append(toCheck, axePage{user: "anonymous", pattern: pat, path: p, cookies: map[string]string{}})
		}
	}
	if t.Failed() {
		return
	}
	t.Run("accessibility", func(t *testing.T) {
		base := tt.Serve(t)
		failures := checkAccessibility(t, base, toCheck)
		t.Logf("axe checked %d page templates", len(toCheck))
		if len(failures) > 0 {
			t.Errorf("%d critical, serious or moderate accessibility violations:\n%s", len(failures), strings.Join(failures, "\n"))
		}
	})
}
