package templates

import (
	"html/template"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cardata/templates/i18n"
)

// translated lists the template families whose every visible string goes
// through the translation function t. TestTemplatesTranslated fails on a
// word outside {{t ...}} in them; the families not listed yet are English
// only (docs/CONVENTIONS.md, "Languages", says which).
var translated = []string{
	"layouts/", "partials/", "errors/", "my/", "register/", "portal/", "public/", "admin/",
}

// untranslatable are words that read the same in both languages.
var untranslatable = map[string]bool{
	"CarData": true, "ISO": true, "Extended": true, "Vehicle": true, "PDF": true, "CSV": true,
	"XML": true, "UBL": true, "VIN": true, "API": true, "EUR": true, "JSON": true, "ZIP": true,
	"BMW": true, "MINI": true, "OAuth": true, "URL": true, "HTTP": true, "SLA": true, "ID": true,
	"T": true, "T-": true, "ms": true, "MB": true, "de": true, "en": true, "DE": true, "EN": true, "cardata": true,
}

var (
	tCall       = regexp.MustCompile(`(?:^|[\s(])t\s+("(?:[^"\\]|\\.)*")`)
	htmlComment = regexp.MustCompile(`(?s)<!--.*?-->`)
	scriptStyle = regexp.MustCompile(`(?is)<(script|style|code|pre)\b.*?</(script|style|code|pre)>`) // code: identifiers, never translated
	htmlTag     = regexp.MustCompile(`(?s)<[^>]*>`)
	visibleAttr = regexp.MustCompile(`(?is)\b(title|placeholder|aria-label|alt|label)\s*=\s*"([^"]*)"`)
	submitValue = regexp.MustCompile(`(?is)<input[^>]*type="(?:submit|button)"[^>]*value="([^"]*)"`)
	entity      = regexp.MustCompile(`&#?\w+;`)
	word        = regexp.MustCompile(`\pL[\pL\pN'’-]*`)
)

// splitActions cuts a template's source into its text (actions replaced by
// a NUL, so a word broken by an action does not join) and its actions
// (comments dropped). A string literal inside an action may hold "{{"
// (a message with parameters), so the scan skips over literals.
func splitActions(src string) (text string, actions []string) {
	var b strings.Builder
	for {
		i := strings.Index(src, "{{")
		if i < 0 {
			b.WriteString(src)
			return b.String(), actions
		}
		b.WriteString(src[:i])
		b.WriteByte(0)
		j := i + 2
		for j < len(src) && !strings.HasPrefix(src[j:], "}}") {
			switch src[j] {
			case '"':
				j++
				for j < len(src) && src[j] != '"' {
					if src[j] == '\\' {
						j++
					}
					j++
				}
			case '`':
				j++
				for j < len(src) && src[j] != '`' {
					j++
				}
			}
			j++
		}
		act := src[i+2 : min(j, len(src))]
		if !strings.HasPrefix(strings.TrimLeft(act, "- "), "/*") {
			actions = append(actions, act)
		}
		src = src[min(j+2, len(src)):]
	}
}

// untranslated returns the visible words of a template's text that are
// not wrapped in t: text between tags and the attributes people read
// (title, placeholder, aria-label, alt, label, a submit input's value).
func untranslated(text string) []string {
	text = htmlComment.ReplaceAllString(text, "")
	text = scriptStyle.ReplaceAllString(text, "")
	var found []string
	check := func(s string) {
		s = entity.ReplaceAllString(strings.ReplaceAll(s, "\x00", " "), " ")
		for _, w := range word.FindAllString(s, -1) {
			if !untranslatable[w] {
				found = append(found, w)
			}
		}
	}
	for _, tag := range htmlTag.FindAllString(text, -1) {
		for _, m := range visibleAttr.FindAllStringSubmatch(tag, -1) {
			check(m[2])
		}
		for _, m := range submitValue.FindAllStringSubmatch(tag, -1) {
			check(m[1])
		}
	}
	check(htmlTag.ReplaceAllString(text, " "))
	return found
}

// TestTemplatesTranslated fails when a template of a translated family
// shows a word outside {{t ...}}, or when an id given to t is missing from
// either catalog; and when the catalogs' ids differ.
func TestTemplatesTranslated(t *testing.T) {
	if _, err := New(time.UTC); err != nil {
		t.Fatal(err) // every page parses with every language's functions
	}
	var remaining []string
	err := fs.WalkDir(Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".html") {
			return err
		}
		if !slices.ContainsFunc(translated, func(f string) bool { return strings.HasPrefix(path, f) }) {
			remaining = append(remaining, path)
			return nil
		}
		src, err := fs.ReadFile(Files(), path)
		if err != nil {
			return err
		}
		text, actions := splitActions(string(src))
		if words := untranslated(text); len(words) > 0 {
			t.Errorf("%s: visible text outside {{t ...}}: %q", path, words)
		}
		for _, act := range actions {
			for _, m := range tCall.FindAllStringSubmatch(act, -1) {
				id, err := strconv.Unquote(m[1])
				if err != nil {
					t.Errorf("%s: %s: %v", path, m[1], err)
					continue
				}
				for _, l := range i18n.Supported {
					if !i18n.Has(l, id) {
						t.Errorf("%s: %q has no %s translation (templates/i18n/%s.toml)", path, id, l, l)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	de, en := i18n.IDs(i18n.DE), i18n.IDs(i18n.EN)
	for _, id := range de {
		if !i18n.Has(i18n.EN, id) {
			t.Errorf("%q is in de.toml but not in en.toml", id)
		}
	}
	for _, id := range en {
		if !i18n.Has(i18n.DE, id) {
			t.Errorf("%q is in en.toml but not in de.toml", id)
		}
	}
	t.Logf("not translated yet (%d): %s", len(remaining), strings.Join(remaining, " "))
}

// The scanner itself: what counts as visible text and as a translated id.
func TestUntranslatedScanner(t *testing.T) {
	text, actions := splitActions(`<h1>{{t "Consents"}}</h1> <p title="Help">{{.Name}}</p> {{/* a comment */}}` +
		`<input type="submit" value="Send"> <button>{{t "{{.N}} of {{.Total}}" "N" 1}}</button> &middot; <!-- hidden words -->`)
	if got := untranslated(text); !slices.Equal(got, []string{"Help", "Send"}) {
		t.Errorf("untranslated = %q", got)
	}
	var ids []string
	for _, a := range actions {
		for _, m := range tCall.FindAllStringSubmatch(a, -1) {
			ids = append(ids, m[1])
		}
	}
	if !slices.Equal(ids, []string{`"Consents"`, `"{{.N}} of {{.Total}}"`}) {
		t.Errorf("ids = %q", ids)
	}
}

// t writes the catalog's text as it stands but escapes what came from the
// data: its parameters, and a value given as the id that the catalogs lack.
func TestTranslateEscapes(t *testing.T) {
	tpl := template.Must(template.New("x").Funcs(Funcs(i18n.Locale{Lang: i18n.DE})).Parse(
		`{{t "Only the vehicle's primary account holder can answer this request."}}|{{t "by {{.Actor}}" "Actor" .Name}}|{{t .Msg}}|{{t "The data {{.Provider}} would receive" "Provider" (t "by {{.Actor}}" "Actor" .Name)}}`))
	var b strings.Builder
	if err := tpl.Execute(&b, map[string]string{"Name": "<b>Eve</b>", "Msg": "<script>x</script>"}); err != nil {
		t.Fatal(err)
	}
	want := "Nur der Hauptkontoinhaber des Fahrzeugs kann diese Anfrage beantworten.|durch &lt;b&gt;Eve&lt;/b&gt;|&lt;script&gt;x&lt;/script&gt;|Die Daten, die durch &lt;b&gt;Eve&lt;/b&gt; erhalten würde"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
}
