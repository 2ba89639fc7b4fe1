package providerapi

import (
	"bytes"
	_ "embed"
	"html/template"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/yuin/goldmark"

	"cardata/app/web"
)

// What the portal's developer page shows about the API, taken from what
// the API itself uses, so the page cannot drift from it.

// Limits are the limits a provider's API clients meet, as this API applies
// them.
type Limits struct {
	RatePerSecond   float64       // tokens back per second in each client's bucket
	Burst           int           // the bucket's size: requests at once
	TokenTTL        time.Duration // an access token's lifetime
	PageMax         int           // the largest `limit` of a list
	PageDefault     int           // a list's page without `limit`
	AuthFailures    int           // failed client authentications per address ...
	AuthWindow      time.Duration // ... within this window before /oauth/token answers 429
	IdempotencyKept time.Duration // how long an Idempotency-Key's answer is replayed
}

// Limits reports the limits this handler applies.
func (h *Handler) Limits() Limits {
	l := Limits{PageMax: web.MaxPageLimit, PageDefault: web.DefaultPageLimit, AuthFailures: failureLimit, AuthWindow: failureWindow,
		IdempotencyKept: IdempotencyTTL}
	if h.Limiter != nil {
		l.RatePerSecond, l.Burst = h.Limiter.Rate, h.Limiter.Burst
	}
	if h.Tokens != nil {
		l.TokenTTL = h.Tokens.TTL
	}
	return l
}

// ExampleSource is the example program (client/example/main.go), shown on
// the developer page; its test runs it against a real server.
//
//go:embed client/example/main.go
var ExampleSource string

// changelog is a copy of docs/API-CHANGELOG.md (go:embed cannot reach
// outside the package): `go generate ./app/providerapi` refreshes it and
// TestChangelogCopyIsCurrent fails when the two differ.
//
//go:generate cp ../../docs/API-CHANGELOG.md changelog.md
//go:embed changelog.md
var changelog []byte

// The page has its own h1 and a section heading for the changelog: the
// file's title goes, its sections move one level down.
var (
	changelogTitle  = regexp.MustCompile(`(?s)^\s*<h1>.*?</h1>\s*`)
	changelogLevels = strings.NewReplacer("<h2>", "<h3>", "</h2>", "</h3>", "<h3>", "<h4>", "</h3>", "</h4>")
)

var changelogHTML = sync.OnceValue(func() template.HTML {
	var b bytes.Buffer
	// goldmark's defaults leave raw HTML out (a comment in its place), so
	// the file can only add text, lists, code and links.
	if err := goldmark.Convert(changelog, &b); err != nil {
		return template.HTML("<pre>" + template.HTMLEscapeString(string(changelog)) + "</pre>")
	}
	return template.HTML(changelogLevels.Replace(changelogTitle.ReplaceAllString(b.String(), "")))
})

// ChangelogHTML is the API changelog rendered for a page, under a heading
// of the page's (its sections are h3).
func ChangelogHTML() template.HTML { return changelogHTML() }
