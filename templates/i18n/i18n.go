// Package i18n is the one place that knows German and English: the message
// catalogs (de.toml, en.toml, embedded), the choice of a language from a
// person's setting, a cookie or Accept-Language, and the locale's formats of
// money, numbers and dates, both ways (ParseAmount reads what people type).
//
// Messages go through github.com/nicksnyder/go-i18n (bundle, plural rules);
// the catalogs are keyed by the English text (as gettext is), so a template
// reads {{t "Sign out"}} and the test in package templates checks that every
// such id has an entry in both files. A message with parameters uses
// go-i18n's template syntax: {{t "{{.N}} of {{.Total}}" "N" 1 "Total" 9}};
// a parameter named Count also chooses the plural form (a TOML table with
// one/other).
package i18n

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// Lang is a supported language: "de" or "en".
type Lang string

// The supported languages; English is the default.
const (
	EN Lang = "en"
	DE Lang = "de"
)

// Supported lists the languages in the order the switch shows them.
var Supported = []Lang{DE, EN}

// Cookie is the name of the cookie that remembers an anonymous visitor's choice.
const Cookie = "cardata_lang"

// Parse returns the supported language s names ("de", "DE", "en"), or false.
func Parse(s string) (Lang, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "de":
		return DE, true
	case "en":
		return EN, true
	}
	return "", false
}

// Name is the language's name in itself (for the switch).
func (l Lang) Name() string {
	if l == DE {
		return "Deutsch"
	}
	return "English"
}

var matcher = language.NewMatcher([]language.Tag{language.English, language.German})

// Negotiate picks the language of an Accept-Language header (de-AT, de-CH
// and de are German; everything else, or nothing, English).
func Negotiate(acceptLanguage string) Lang {
	if acceptLanguage == "" {
		return EN
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return EN
	}
	_, i, conf := matcher.Match(tags...)
	if i == 1 && conf != language.No {
		return DE
	}
	return EN
}

// Choose is the language of a request: the person's remembered setting,
// else the cookie, else Accept-Language.
func Choose(remembered, cookie, acceptLanguage string) Lang {
	if l, ok := Parse(remembered); ok {
		return l
	}
	if l, ok := Parse(cookie); ok {
		return l
	}
	return Negotiate(acceptLanguage)
}

//go:embed *.toml
var catalogFiles embed.FS

var (
	loadOnce sync.Once
	bundle   *goi18n.Bundle
	ids      map[Lang]map[string]bool
	loadErr  error
)

// load reads de.toml and en.toml (and the e-mails' mail.de.toml and
// mail.en.toml) into one bundle. The files are read with
// BurntSushi/toml and added message by message (rather than through
// go-i18n's file parser), so an English id such as "Description" or "Other"
// is a message, never mistaken for one of go-i18n's reserved keys, and a dot
// in an id does not nest.
func load() (*goi18n.Bundle, error) {
	loadOnce.Do(func() {
		bundle = goi18n.NewBundle(language.English)
		ids = map[Lang]map[string]bool{}
		for _, l := range Supported {
			msgs, err := readCatalog(l)
			if err != nil {
				loadErr = err
				return
			}
			ids[l] = map[string]bool{}
			for _, m := range msgs {
				ids[l][m.ID] = true
			}
			if err := bundle.AddMessages(tag(l), msgs...); err != nil {
				loadErr = fmt.Errorf("i18n %s: %w", l, err)
				return
			}
		}
	})
	return bundle, loadErr
}

func tag(l Lang) language.Tag {
	if l == DE {
		return language.German
	}
	return language.English
}

// catalogNames are a language's catalog files: the pages' texts, the
// e-mails' (mail.go) and the texts Go code writes (flash messages, the
// data report archive). An id in more than one file is taken from the
// first (the pages' catalog), so texts added there later never break the
// others. Error messages (errors-<area>.<lang>.toml, ids are the English
// texts and printf formats the Go code writes) and audit summaries
// (audit-<area>.<lang>.toml, keyed by their stored format) come last.
func catalogNames(l Lang) []string {
	names := []string{string(l) + ".toml", "mail." + string(l) + ".toml", "messages." + string(l) + ".toml"}
	more, _ := fs.Glob(catalogFiles, "errors-*."+string(l)+".toml")
	audit, _ := fs.Glob(catalogFiles, "audit-*."+string(l)+".toml")
	more = append(more, audit...)
	sort.Strings(more)
	return append(names, more...)
}

func readCatalog(l Lang) ([]*goi18n.Message, error) {
	raw := map[string]any{}
	for _, name := range catalogNames(l) {
		b, err := catalogFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		part := map[string]any{}
		if err := toml.Unmarshal(b, &part); err != nil {
			return nil, fmt.Errorf("i18n %s: %w", name, err)
		}
		for id, v := range part {
			if _, dup := raw[id]; !dup {
				raw[id] = v
			}
		}
	}
	out := make([]*goi18n.Message, 0, len(raw))
	for id, v := range raw {
		m := &goi18n.Message{ID: id}
		switch x := v.(type) {
		case string:
			m.Other = x
		case map[string]any:
			for k, f := range x {
				s, ok := f.(string)
				if !ok {
					return nil, fmt.Errorf("i18n %s.toml: %q.%s is not a string", l, id, k)
				}
				switch k {
				case "one":
					m.One = s
				case "other":
					m.Other = s
				default:
					return nil, fmt.Errorf("i18n %s.toml: %q has %q (only one and other)", l, id, k)
				}
			}
			if m.One == "" || m.Other == "" {
				return nil, fmt.Errorf("i18n %s.toml: plural %q needs one and other", l, id)
			}
		default:
			return nil, fmt.Errorf("i18n %s.toml: %q is neither a text nor a plural table", l, id)
		}
		out = append(out, m)
	}
	return out, nil
}

// Load parses the catalogs; the app calls it at start so a broken catalog
// fails the boot.
func Load() error { _, err := load(); return err }

// IDs lists the message ids of l's catalog, sorted (for tests).
func IDs(l Lang) []string {
	load()
	out := make([]string, 0, len(ids[l]))
	for id := range ids[l] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Has reports whether l's catalog has id.
func Has(l Lang, id string) bool { load(); return ids[l][id] }

var (
	localizersMu sync.Mutex
	localizers   = map[Lang]*goi18n.Localizer{}
)

func localizer(l Lang) *goi18n.Localizer {
	localizersMu.Lock()
	defer localizersMu.Unlock()
	if z, ok := localizers[l]; ok {
		return z
	}
	b, err := load()
	if err != nil {
		return nil
	}
	z := goi18n.NewLocalizer(b, string(l))
	localizers[l] = z
	return z
}

// T translates id into l. args are name/value pairs for the message's
// parameters; a parameter named Count also picks the plural form. An id
// missing from the catalog comes back as itself (with its parameters
// filled in), so a gap shows English rather than nothing; the templates'
// test keeps such gaps out of the catalogs.
func T(l Lang, id string, args ...any) string {
	out, _ := Lookup(l, id, args...)
	return out
}

// Lookup is T that also reports whether id is in l's catalog.
func Lookup(l Lang, id string, args ...any) (string, bool) {
	var data map[string]any
	var count any
	if len(args) > 0 {
		data = make(map[string]any, len(args)/2)
		for i := 0; i+1 < len(args); i += 2 {
			k := fmt.Sprint(args[i])
			data[k] = args[i+1]
			if k == "Count" {
				count = args[i+1]
			}
		}
	}
	z := localizer(l)
	if z == nil {
		return id, false
	}
	cfg := &goi18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count}
	if Has(l, id) {
		if out, err := z.Localize(cfg); err == nil {
			return out, true
		}
	}
	if data == nil {
		return id, false
	}
	cfg.MessageID, cfg.DefaultMessage = "", &goi18n.Message{ID: id, Other: id}
	if out, err := localizer(EN).Localize(cfg); err == nil {
		return out, false
	}
	return id, false
}

// Sprintf says a printf format in l (the format is the catalog's id, as
// error messages are written: "use at least %d characters") and fills in
// args. A format missing from l's catalog is used as it stands.
func Sprintf(l Lang, format string, args ...any) string {
	if tr, ok := Lookup(l, format); ok && !strings.Contains(format, "{{") {
		format = tr
	}
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
