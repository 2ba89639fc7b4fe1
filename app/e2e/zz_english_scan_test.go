package e2e

import (
	"html"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"cardata/templates/i18n"
)

var (
	zzScript = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>`)
	zzTag    = regexp.MustCompile(`(?s)<[^>]+>`)
	zzSpace  = regexp.MustCompile(`\s+`)
	zzEnWord = regexp.MustCompile(`(?i)\b(the|and|is|are|not|of|with|this|that|has|have|will|for|was|from|your|only|when|no|to)\b`)
)

func TestZZEnglishOnGermanPages(t *testing.T) {
	tt := newDemoApp(t)
	var ens []string
	for _, id := range i18n.IDs(i18n.EN) {
		en, de := i18n.T(i18n.EN, id), i18n.T(i18n.DE, id)
		if en != de && len(en) >= 12 && strings.Contains(en, " ") && !strings.Contains(en, "{{") {
			ens = append(ens, en)
		}
	}
	found := map[string]map[string]bool{}
	for _, u := range demoLogins {
		c := loginDemo(t, tt, u)
		c.Header.Set("Accept-Language", "de")
		if res := c.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/"}}); res.Status != 303 {
			t.Fatalf("lang: %d %s", res.Status, res.Body)
		}
		_, _, read := crawlPages(t, c, newRouteMatcher(tt.App.Fiber), u.home)
		for _, p := range read {
			res := c.Get(p)
			if !strings.Contains(res.Body, `<html lang="de"`) {
				t.Errorf("%s %s is not German", u.name, p)
			}
			txt := zzScript.ReplaceAllString(res.Body, " ")
			txt = html.UnescapeString(zzTag.ReplaceAllString(txt, " | "))
			txt = zzSpace.ReplaceAllString(txt, " ")
			for _, en := range ens {
				if strings.Contains(txt, en) {
					i := strings.Index(txt, en)
					k := "CATALOG " + en + "  CONTEXT: " + txt[max(0, i-80):min(len(txt), i+len(en)+40)]
					if found[k] == nil {
						found[k] = map[string]bool{}
					}
					found[k][u.name+" "+p] = true
				}
			}
			for _, seg := range strings.Split(txt, " | ") {
				seg = strings.TrimSpace(seg)
				if len(zzEnWord.FindAllString(seg, -1)) >= 2 {
					k := "WORDS " + seg
					if len(k) > 200 {
						k = k[:200]
					}
					if found[k] == nil {
						found[k] = map[string]bool{}
					}
					found[k][u.name+" "+p] = true
				}
			}
		}
	}
	var out []string
	for k, pages := range found {
		var ps []string
		for p := range pages {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		if len(ps) > 3 {
			ps = append(ps[:3], "...")
		}
		out = append(out, k+"\n    "+strings.Join(ps, "\n    "))
	}
	sort.Strings(out)
	os.WriteFile("/tmp/english_scan.txt", []byte(strings.Join(out, "\n")), 0o644)
}
