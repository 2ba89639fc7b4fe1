package templates

import (
	"html"
	"net/url"
	"regexp"
	"strings"

	"cardata/policies"
)

// Every link and form a page renders passes through followable on its way
// out: a same-origin link the principal's roles may not GET, or a form they
// may not submit, is taken out of the page, so nobody is shown what the
// route guard would refuse them. One place decides, with the guard's own
// policy (View.Follows), for every template, including ones written later.
//
// A refused link keeps its text (a provider's name stays readable where the
// role may not open the provider); one styled as an action (class "button"
// or "tile") goes away entirely, as does a refused form with its buttons.
// Anchors and forms never nest in valid HTML, so a non-greedy match from
// the opening tag to its closing tag is the element. Each POST form it lets
// through gets the confirmation marker (confirm.go).
var (
	anchorRe = regexp.MustCompile(`(?s)<a\b([^>]*)>(.*?)</a>`)
	formRe   = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	attrRe   = regexp.MustCompile(`\b(href|action|method|class)="([^"]*)"`)
)

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRe.FindAllStringSubmatch(tag, -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

// target is the same-origin path a link or form goes to, or "" when it
// leaves the site or stays on the page.
func target(ref, page string) string {
	if ref == "" {
		return page
	}
	if strings.HasPrefix(ref, "#") {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	if !strings.HasPrefix(u.Path, "/") {
		base, _ := url.Parse(page)
		u = base.ResolveReference(u)
	}
	return u.Path
}

func isAction(class string) bool {
	for _, c := range strings.Fields(class) {
		if c == "button" || c == "tile" {
			return true
		}
	}
	return false
}

// followable removes from a rendered page the links and forms p may not follow.
func followable(page []byte, path string, p *policies.Principal, can func(p *policies.Principal, method, path string) bool) []byte {
	out := replaceMatches(anchorRe, page, func(el []byte, m [][]byte) []byte {
		a := attrs(string(m[1]))
		href, ok := a["href"]
		if !ok {
			return el
		}
		t := target(href, path)
		if t == "" || can(p, "GET", t) {
			return el
		}
		if isAction(a["class"]) {
			return nil
		}
		return m[2]
	})
	return replaceMatches(formRe, out, func(el []byte, m [][]byte) []byte {
		a := attrs(string(m[1]))
		method := strings.ToUpper(a["method"])
		if method == "" {
			method = "GET"
		}
		t := target(a["action"], path)
		if t != "" && !can(p, method, t) {
			return nil
		}
		if method != "POST" || strings.Contains(string(m[1]), "data-confirmed") {
			return el
		}
		// A person's click: a destructive route asks first (see Confirm).
		open := len("<form") + len(m[1]) + 1
		return append(append(append([]byte{}, el[:open]...), askMarker...), el[open:]...)
	})
}

// replaceMatches is re.ReplaceAllFunc handing f each match's submatches
// too (m[0] the match itself), from the one search over the page rather
// than a second search of every match.
func replaceMatches(re *regexp.Regexp, page []byte, f func(el []byte, m [][]byte) []byte) []byte {
	out := make([]byte, 0, len(page))
	last := 0
	for _, loc := range re.FindAllSubmatchIndex(page, -1) {
		m := make([][]byte, len(loc)/2)
		for i := range m {
			if loc[2*i] >= 0 {
				m[i] = page[loc[2*i]:loc[2*i+1]]
			}
		}
		out = append(out, page[last:loc[0]]...)
		out = append(out, f(page[loc[0]:loc[1]], m)...)
		last = loc[1]
	}
	return append(out, page[last:]...)
}
