package templates

import (
	"bytes"
	"regexp"
	"testing"

	"cardata/policies"
)

// Refused links lose their anchor (actions vanish), refused forms vanish,
// and every other POST form but a confirmation page's own asks first.
func TestFollowableTakesOutWhatTheRoleMayNotFollow(t *testing.T) {
	allowed := map[string]bool{"GET /admin/providers": true, "GET /admin/providers/7": true, "POST /admin/tickets/3/claim": true}
	can := func(_ *policies.Principal, method, path string) bool { return allowed[method+" "+path] }
	page := `<nav><a href="/admin/providers">Providers</a> <a class="button" href="/admin/review-queue">Review queue</a></nav>` +
		`<td><a href="/admin/providers/7">Demo AG</a></td><td><a href="/admin/providers/8?x=1&amp;y=2">Other AG</a></td>` +
		`<a href="#main">skip</a><a href="https://example.com/">out</a><a href="mailto:a@b.c">mail</a>` +
		`<form method="post" action="/admin/tickets/3/claim"><button>Claim</button></form>` +
		`<form method="post" action="/admin/tickets/3/close"><button>Close</button></form>` +
		`<form method="get" class="filters"><input name="q"></form>` +
		`<a class="tile" href="/admin/coverage/AT">AT</a><abbr title="x">y</abbr>` +
		`<form method="post" action="/admin/tickets/3/claim" data-confirmed></form>`
	got := string(followable([]byte(page), "/admin/providers", &policies.Principal{}, can))
	want := `<nav><a href="/admin/providers">Providers</a> </nav>` +
		`<td><a href="/admin/providers/7">Demo AG</a></td><td>Other AG</td>` +
		`<a href="#main">skip</a><a href="https://example.com/">out</a><a href="mailto:a@b.c">mail</a>` +
		`<form method="post" action="/admin/tickets/3/claim"><input type="hidden" name="_confirm" value="ask"><button>Claim</button></form>` +
		`` +
		`<form method="get" class="filters"><input name="q"></form>` +
		`<abbr title="x">y</abbr>` +
		`<form method="post" action="/admin/tickets/3/claim" data-confirmed></form>`
	if got != want {
		t.Fatalf("followable:\n got %s\nwant %s", got, want)
	}
}

// replaceMatches hands f the same element and submatches that
// ReplaceAllFunc followed by FindSubmatch of the element would.
func TestReplaceMatchesIsReplaceAllFuncWithSubmatches(t *testing.T) {
	page := []byte(`<p>x</p><a href="/a">A</a> <a>no href</a><abbr>a</abbr><a
class="button" href="/b">B <b>bold</b></a><form method="post" action="/f"><button>F</button></form>` +
		`<a href="/c">unclosed <form action="/g"></form> tail`)
	for _, re := range []*regexp.Regexp{anchorRe, formRe} {
		f := func(el []byte, m [][]byte) []byte {
			return []byte("[" + string(el) + "|" + string(m[1]) + "|" + string(m[2]) + "]")
		}
		want := re.ReplaceAllFunc(page, func(el []byte) []byte { return f(el, re.FindSubmatch(el)) })
		if got := replaceMatches(re, page, f); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", re, got, want)
		}
	}
	if got := replaceMatches(anchorRe, []byte("plain"), nil); string(got) != "plain" {
		t.Errorf("no match: %q", got)
	}
}
