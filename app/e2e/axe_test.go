package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"

	"cardata/app/apptest"
)

// axeSource is axe-core (MPL-2.0, Deque Systems; its licence header is kept
// in the file), vendored so that a clean clone needs no network. Refresh it
// with `make axe` (AXE_VERSION in the Makefile pins the version).
//
//go:embed testdata/axe.min.js
var axeSource string

// axeFailingImpacts are the axe impact levels that fail the build
// (docs/CONVENTIONS.md, "Accessibility"): critical, serious and moderate.
// Minor findings are logged only.
var axeFailingImpacts = map[string]bool{"critical": true, "serious": true, "moderate": true}

// axeAccepted are the violations left on purpose, by route pattern and axe
// rule id, with the reason (docs/CONVENTIONS.md, "Accessibility"): they are
// logged, not failed. Only markup this project does not write belongs here.
var axeAccepted = map[string]map[string]string{
	"/api/docs": {"heading-order": "the vendored Redoc bundle draws the API reference and numbers its headings itself (an operation's h2, then h5)"},
}

// axeReady is, by route pattern, a script that is true once a page drawn by
// JavaScript is complete, so that axe checks what a person reads, not a
// loading message.
var axeReady = map[string]string{
	"/api/docs": `document.querySelector("redoc .api-content") !== null`,
}

// routeMatcher maps a request path to the pattern of the GET route that
// serves it ("/admin/providers/:id"), so that the accessibility check runs
// once per page template instead of once per record.
type routeMatcher struct {
	patterns []string
	res      []*regexp.Regexp
}

func newRouteMatcher(app *fiber.App) *routeMatcher {
	seen := map[string]bool{}
	var pats []string
	for _, r := range app.GetRoutes(true) {
		if r.Method != fiber.MethodGet || seen[r.Path] {
			continue
		}
		seen[r.Path] = true
		pats = append(pats, r.Path)
	}
	// the most specific first: fewer parameters, then longer
	sort.SliceStable(pats, func(i, j int) bool {
		pi, pj := strings.Count(pats[i], ":")+strings.Count(pats[i], "*"), strings.Count(pats[j], ":")+strings.Count(pats[j], "*")
		if pi != pj {
			return pi < pj
		}
		return len(pats[i]) > len(pats[j])
	})
	m := &routeMatcher{}
	for _, p := range pats {
		var b strings.Builder
		b.WriteString("^")
		for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			b.WriteString("/")
			switch {
			case strings.HasPrefix(seg, ":"):
				b.WriteString("[^/]+")
			case seg == "*" || strings.HasPrefix(seg, "+"):
				b.WriteString(".*")
			default:
				b.WriteString(regexp.QuoteMeta(seg))
			}
		}
		b.WriteString("/?$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			continue
		}
		m.patterns = append(m.patterns, p)
		m.res = append(m.res, re)
	}
	return m
}

// pattern returns the route pattern of a request URI ("" when none matches).
func (m *routeMatcher) pattern(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	for i, re := range m.res {
		if re.MatchString(u.Path) {
			return m.patterns[i]
		}
	}
	return ""
}

// axePage is one page to check: a path and the cookies of the user who saw it.
type axePage struct {
	user, pattern, path string
	cookies             map[string]string
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// axeScript runs axe on the loaded document (WCAG 2.x A and AA rules and
// axe's best practices) and returns its violations as JSON.
const axeScript = `(async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => ({target: n.target, html: n.html.slice(0, 160)}))})));
})()`

// checkAccessibility loads every page in one headless Chromium (as the user
// who was shown it, by that user's cookies), runs axe-core and returns one
// line per failing violation (page, rule id, impact, targets); the others
// are logged.
func checkAccessibility(t *testing.T, base string, pages []axePage) []string {
	t.Helper()
	// One user walks every page: each page is bounded by BrowserPatience,
	// not the whole walk (71 pages on a busy 2-core machine take minutes).
	browser := apptest.BrowserForSteps(t)
	// axe is added to every document as it loads (sent to the browser once,
	// not once per page)
	setup, cancelSetup := apptest.Step(browser)
	err := chromedp.Run(setup, network.Enable(), page.SetBypassCSP(true), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(axeSource).Do(ctx)
		return err
	}))
	cancelSetup()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := url.Parse(base)
	var failures []string
	user := ""
	var tNav, tInject, tRun time.Duration
	defer func() { t.Logf("axe: %d pages, loading %s, injecting %s, running %s", len(pages), tNav, tInject, tRun) }()
	for _, p := range pages {
		var raw string
		t0 := time.Now()
		ctx, cancel := apptest.Step(browser)
		err := chromedp.Run(ctx,
			chromedp.ActionFunc(func(ctx context.Context) error {
				if p.user == user {
					return nil
				}
				user = p.user
				if err := network.ClearBrowserCookies().Do(ctx); err != nil {
					return err
				}
				for name, value := range p.cookies {
					if err := network.SetCookie(name, value).WithDomain(host.Hostname()).WithPath("/").Do(ctx); err != nil {
						return err
					}
				}
				return nil
			}),
			chromedp.Navigate(base+p.path),
			chromedp.WaitReady("body", chromedp.ByQuery),
		)
		t1 := time.Now()
		if ready := axeReady[p.pattern]; err == nil && ready != "" {
			err = chromedp.Run(ctx, apptest.WaitJS(ready))
		}
		if err == nil {
			err = chromedp.Run(ctx, apptest.WaitJS(`typeof axe === 'object'`))
		}
		t2 := time.Now()
		if err == nil {
			err = chromedp.Run(ctx, chromedp.Evaluate(axeScript, &raw, func(ep *runtime.EvaluateParams) *runtime.EvaluateParams { return ep.WithAwaitPromise(true) }))
		}
		tNav, tInject, tRun = tNav+t1.Sub(t0), tInject+t2.Sub(t1), tRun+time.Since(t2)
		if os.Getenv("AXE_TIMES") != "" {
			var n int
			_ = chromedp.Run(ctx, chromedp.Evaluate(`document.getElementsByTagName('*').length`, &n))
			t.Logf("axe timing %s: load %s inject %s run %s, %d elements", p.path, t1.Sub(t0), t2.Sub(t1), time.Since(t2), n)
		}
		cancel()
		if err != nil {
			t.Fatalf("axe on %s as %s: %v", p.path, p.user, err)
		}
		var vs []axeViolation
		if err := json.Unmarshal([]byte(raw), &vs); err != nil {
			t.Fatalf("axe result on %s: %v", p.path, err)
		}
		for _, v := range vs {
			var targets []string
			for _, n := range v.Nodes {
				targets = append(targets, fmt.Sprint(n.Target...)+" "+n.HTML)
			}
			line := fmt.Sprintf("%s (%s, as %s): %s [%s] %s\n    %s", p.path, p.pattern, p.user, v.ID, v.Impact, v.Help, strings.Join(targets, "\n    "))
			if why := axeAccepted[p.pattern][v.ID]; why != "" {
				t.Logf("axe (accepted: %s): %s", why, line)
			} else if axeFailingImpacts[v.Impact] {
				failures = append(failures, line)
			} else {
				t.Logf("axe (not failing): %s", line)
			}
		}
	}
	return failures
}
