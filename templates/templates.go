// Package templates holds every HTML template and static asset, embedded in
// the binary, and the one render helper all web surfaces use. A template's
// name is its path without ".html" (admin/users/index); each page defines
// "title" and "content" and is rendered inside layouts/base.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/templates/i18n"
)

//go:embed layouts partials admin errors static portal register my public actions
var files embed.FS

// Files is the whole embedded tree: page templates and static assets
// (tests inspect the templates through it).
func Files() fs.FS { return files }

// Static is the static asset tree (served under /static).
func Static() fs.FS {
	sub, _ := fs.Sub(files, "static")
	return sub
}

// Locals keys that middleware fills and Render reads.
const (
	LocalCSRF      = "csrf_token"
	LocalRequestID = "requestid"
	// LocalSecureCookies (bool) is COOKIE_SECURE, for the flash cookie,
	// which is set here rather than beside the session and CSRF cookies.
	LocalSecureCookies = "secure_cookies"
	// LocalLang (i18n.Lang) caches the request's language once LangOf has
	// chosen it.
	LocalLang = "lang"
)

// LangOf is the language of a request: the signed-in person's remembered
// setting, else the cardata_lang cookie, else Accept-Language (German for
// de, de-AT, de-CH; English otherwise).
func LangOf(c *fiber.Ctx) i18n.Lang {
	if l, ok := c.Locals(LocalLang).(i18n.Lang); ok {
		return l
	}
	remembered := ""
	if p := policies.PrincipalFrom(c.UserContext()); p != nil {
		remembered = p.Lang
	}
	l := i18n.Choose(remembered, c.Cookies(i18n.Cookie), c.Get(fiber.HeaderAcceptLanguage))
	c.Locals(LocalLang, l)
	return l
}

// NavItem is one entry of the navigation; it shows when the principal may GET its path.
type NavItem struct {
	Label string
	Path  string
	// Also lists further path prefixes the item stands for (the transaction
	// report under "My data and reports").
	Also []string
	// Active is set per render: the item the current page belongs to.
	Active bool
}

// activeNav marks the one item the page at path belongs to: the item whose
// path or Also prefix matches it longest ("/my" must not win over
// "/my/reports" on /my/reports). A surface's home ("/admin", "/portal",
// "/my": a path of one segment) stands only for itself, so a page under it
// that no item claims (the search results, a confirmation) highlights
// nothing rather than the dashboard; its Also prefixes still match pages
// below. It reports whether an item matched.
func activeNav(secs []NavSection, path string) bool {
	best, bi, bj := -1, -1, -1
	for i := range secs {
		for j, it := range secs[i].Items {
			for k, pre := range append([]string{it.Path}, it.Also...) {
				home := k == 0 && strings.Count(pre, "/") == 1
				if (path == pre || !home && strings.HasPrefix(path, pre+"/")) && len(pre) > best {
					best, bi, bj = len(pre), i, j
				}
			}
		}
	}
	if bi >= 0 {
		secs[bi].Items[bj].Active = true
	}
	return bi >= 0
}

// Brand names the surface a page belongs to, for the title and the header:
// vehicle owners, registering companies, providers and staff each see their own.
func (p *Page) Brand() string {
	switch {
	case p.Path == "/my" || strings.HasPrefix(p.Path, "/my/"):
		return "My CarData"
	case p.Path == "/register" || strings.HasPrefix(p.Path, "/register/"):
		return "CarData provider registration"
	case p.Path == "/portal" || strings.HasPrefix(p.Path, "/portal/"):
		return "CarData Partner Portal"
	}
	return "CarData Partner Office"
}

// NavSection groups items under a heading.
type NavSection struct {
	Title string
	Items []NavItem
}

// Flash is a one-time message shown after a redirect.
type Flash struct {
	Kind    string // success, error, info
	Message string
}

// Pager paginates a list.
type Pager struct {
	Page, PerPage int
	Total         int64
	base          url.Values
	path          string
}

// NewPager reads ?page= from c; PerPage defaults to 25.
func NewPager(c *fiber.Ctx, perPage int) *Pager {
	if perPage <= 0 {
		perPage = 25
	}
	p, _ := strconv.Atoi(c.Query("page"))
	if p < 1 {
		p = 1
	}
	q, _ := url.ParseQuery(string(c.Request().URI().QueryString()))
	return &Pager{Page: p, PerPage: perPage, base: q, path: c.Path()}
}

func (p *Pager) Offset() int   { return (p.Page - 1) * p.PerPage }
func (p *Pager) Pages() int    { return int((p.Total + int64(p.PerPage) - 1) / int64(p.PerPage)) }
func (p *Pager) HasPrev() bool { return p.Page > 1 }
func (p *Pager) HasNext() bool { return p.Page < p.Pages() }
func (p *Pager) First() int64 {
	if p.Total == 0 {
		return 0
	}
	return int64(p.Offset() + 1)
}
func (p *Pager) Last() int64 { return min(int64(p.Offset()+p.PerPage), p.Total) }
func (p *Pager) URL(page int) string {
	q := url.Values{}
	for k, v := range p.base {
		q[k] = v
	}
	q.Set("page", strconv.Itoa(page))
	return p.path + "?" + q.Encode()
}
func (p *Pager) PrevURL() string { return p.URL(p.Page - 1) }
func (p *Pager) NextURL() string { return p.URL(p.Page + 1) }

// Page is what every template receives.
type Page struct {
	Title     string
	Principal *policies.Principal
	CSRF      string
	RequestID string
	Flash     *Flash
	Nav       []NavSection
	Path      string
	Errors    map[string]string // field -> message
	Form      map[string]string // submitted values to re-fill
	Pager     *Pager
	// Sort is a sortable list's current order (NewSort); nil elsewhere.
	Sort *Sort
	Data any
	// Lang is the page's language (the html lang attribute, the switch);
	// URI is the path and query the language switch returns to.
	Lang i18n.Lang
	URI  string

	can func(method, path string) bool
	// navFrom is where the page was asked from (a confirmation's way
	// back): the navigation highlights its item when no item claims Path
	// (the bulk actions under /admin/billing/bulk belong to the invoices).
	navFrom string
	// SignInWith is the identity-provider sign-in a sign-in page offers
	// (filled by Render from View.SignInWith).
	SignInWith *SignInWith
}

// Langs lists the languages the switch offers.
func (p *Page) Langs() []i18n.Lang { return i18n.Supported }

// View renders templates.
type View struct {
	// pages holds every page once per language: the template functions t,
	// money, number, date, datetime, month and localtime are bound to it.
	pages map[i18n.Lang]map[string]*template.Template
	// Follows is the route guard's decision for a concrete path (app wires
	// web.Access.Follows in); Can asks it, and every rendered link, form and
	// navigation entry is shown only when it says yes.
	Follows func(p *policies.Principal, method, path string) bool
	// Nav is the full navigation; items are filtered per principal.
	Nav []NavSection
	// Location renders times for people (Europe/Berlin).
	Location *time.Location
	// SignInWith offers sign-in through an identity provider on sign-in
	// pages, by template name (admin/login, my/login); app wires it.
	SignInWith map[string]SignInWith
}

var funcs = template.FuncMap{
	"join":      strings.Join,
	"hasPrefix": strings.HasPrefix,
	"add":       func(a, b int) int { return a + b },
	"bytesize":  ByteSize,
	"sortth":    sortHeader,
	"seq": func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i + 1
		}
		return s
	},
	"contains": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
}

// New parses every page at start, once per language; a broken template or
// catalog fails the boot.
func New(loc *time.Location) (*View, error) {
	if err := i18n.Load(); err != nil {
		return nil, err
	}
	v := &View{pages: map[i18n.Lang]map[string]*template.Template{}, Location: loc}
	for _, lang := range i18n.Supported {
		pages, err := parsedPages(lang, loc)
		if err != nil {
			return nil, err
		}
		v.pages[lang] = pages
	}
	return v, nil
}

// parsed keeps the pages parsed for a language and time zone: they come
// from the embedded files and never change, and html/template runs one
// template from many goroutines, so every View of the process (each test
// boots its own app) shares them instead of parsing the set again.
var parsed = struct {
	sync.Mutex
	m map[string]map[string]*template.Template
}{m: map[string]map[string]*template.Template{}}

func parsedPages(lang i18n.Lang, loc *time.Location) (map[string]*template.Template, error) {
	key := string(lang) + "\x00" + loc.String()
	parsed.Lock()
	defer parsed.Unlock()
	if pages, ok := parsed.m[key]; ok {
		return pages, nil
	}
	pages, err := parsePages(Funcs(i18n.Locale{Lang: lang, Loc: loc}))
	if err != nil {
		return nil, err
	}
	parsed.m[key] = pages
	return pages, nil
}

// Funcs are the template functions for one language: the shared ones and
// the locale's (t translates; money, number, date, datetime, month and
// localtime format for people in Europe/Berlin).
func Funcs(z i18n.Locale) template.FuncMap {
	f := template.FuncMap{}
	for k, fn := range funcs {
		f[k] = fn
	}
	f["t"] = func(id any, args ...any) template.HTML { return translate(z.Lang, id, args...) }
	f["money"] = z.Money
	f["price"] = z.Price
	f["number"] = z.Number
	f["date"] = z.Date
	f["datetime"] = z.DateTime
	f["localtime"] = z.DateTime
	f["month"] = z.Month
	f["roleLabel"] = func(role string) string { return z.T(policies.RoleLabel(role)) }
	f["lang"] = func() string { return string(z.Lang) }
	f["country"] = z.Country
	// docno is an invoice's number, or "Entwurf #21" for a draft:
	// {{docno .Invoice}} (any value with NumberOrDraftIn).
	f["docno"] = func(v interface{ NumberOrDraftIn(i18n.Lang) string }) string { return v.NumberOrDraftIn(z.Lang) }
	// chart draws a ChartData (charts.go): the SVG and a table behind it.
	f["chart"] = func(d *ChartData) template.HTML {
		if d == nil {
			return ""
		}
		return drawChart(z, *d)
	}
	// label translates a raw value a person reads (a state, category,
	// sensitivity, channel: "driving_behaviour") through the catalogs by
	// its words ("driving behaviour"): {{label .Sensitivity}}.
	f["label"] = func(v any) string { return z.T(strings.ReplaceAll(fmt.Sprint(v), "_", " ")) }
	// countries lists a slice of structs with Code and Name fields (the
	// markets, the seats) as options named in the page's language and
	// sorted by those names: {{range countries .Data.Markets}}.
	f["countries"] = func(list any) []i18n.CountryOption { return z.Countries(codesOf(list)) }
	// inLang picks the text of the page's language from a pair kept in
	// both (the catalog's key labels): {{inLang .Label .LabelDE}}; the
	// English one stands in for a missing German one.
	f["inLang"] = func(en, de string) string {
		if z.Lang == i18n.DE && de != "" {
			return de
		}
		return en
	}
	return f
}

// translate is the template function t. The catalogs are ours, so a
// message's own text is written as it stands (an apostrophe stays one, as
// literal template text would); its parameters are escaped unless they are
// already HTML (a nested t), and an id missing from the catalogs (a value
// from the data, such as an error message) is escaped as a whole.
func translate(lang i18n.Lang, id any, args ...any) template.HTML {
	s := fmt.Sprint(id)
	for i := 1; i < len(args); i += 2 {
		switch v := args[i].(type) {
		case template.HTML:
			args[i] = string(v)
		case string:
			args[i] = template.HTMLEscapeString(v)
		case fmt.Stringer:
			args[i] = template.HTMLEscapeString(v.String())
		}
	}
	out, found := i18n.Lookup(lang, s, args...)
	if !found {
		if len(args) == 0 {
			return template.HTML(template.HTMLEscapeString(out))
		}
		// the id is template text; its parameters are escaped already
		return template.HTML(out)
	}
	return template.HTML(out)
}

func parsePages(f template.FuncMap) (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	base := template.New("base").Funcs(f)
	for _, dir := range []string{"layouts", "partials"} {
		if _, err := base.ParseFS(files, dir+"/*.html"); err != nil {
			return nil, fmt.Errorf("templates %s: %w", dir, err)
		}
	}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".html") ||
			strings.HasPrefix(path, "layouts/") || strings.HasPrefix(path, "partials/") {
			return err
		}
		t, err := base.Clone()
		if err != nil {
			return err
		}
		if _, err := t.ParseFS(files, path); err != nil {
			return fmt.Errorf("template %s: %w", path, err)
		}
		pages[strings.TrimSuffix(path, ".html")] = t
		return nil
	})
	return pages, err
}

// Has reports whether a page exists.
func (v *View) Has(name string) bool { _, ok := v.pages[i18n.EN][name]; return ok }

func (v *View) page(lang i18n.Lang, name string) (*template.Template, bool) {
	set, ok := v.pages[lang]
	if !ok {
		set = v.pages[i18n.EN]
	}
	t, ok := set[name]
	return t, ok
}

const flashCookie = "cardata_flash"

// SetFlash stores a message for the next page the browser loads.
func SetFlash(c *fiber.Ctx, kind, msg string) {
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: url.QueryEscape(kind + ":" + msg), Path: "/",
		HTTPOnly: true, Secure: secureCookies(c), SameSite: "Lax", MaxAge: 60})
}

func secureCookies(c *fiber.Ctx) bool { s, _ := c.Locals(LocalSecureCookies).(bool); return s }

func takeFlash(c *fiber.Ctx) *Flash {
	raw := c.Cookies(flashCookie)
	if raw == "" {
		return nil
	}
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: "", Path: "/", HTTPOnly: true, Secure: secureCookies(c),
		SameSite: "Lax", MaxAge: -1, Expires: time.Unix(1, 0)})
	s, err := url.QueryUnescape(raw)
	if err != nil {
		return nil
	}
	kind, msg, ok := strings.Cut(s, ":")
	if !ok || (kind != "success" && kind != "error" && kind != "info") || len(msg) > 500 {
		return nil
	}
	return &Flash{Kind: kind, Message: msg}
}

// Can reports whether p may call method on path (a link or form target).
func (v *View) Can(p *policies.Principal, method, path string) bool {
	return v.Follows != nil && v.Follows(p, method, path)
}

// Can reports whether the page's principal may call method on path, for a
// template that leaves out a whole block (a heading with its links) rather
// than letting the link filter take out the links one by one.
func (p *Page) Can(method, path string) bool { return p.can != nil && p.can(method, path) }

func (v *View) navFor(p *policies.Principal) []NavSection {
	if p == nil || v.Follows == nil {
		return nil
	}
	var out []NavSection
	for _, s := range v.Nav {
		sec := NavSection{Title: s.Title}
		for _, it := range s.Items {
			if v.Can(p, "GET", it.Path) {
				sec.Items = append(sec.Items, it)
			}
		}
		if len(sec.Items) > 0 {
			out = append(out, sec)
		}
	}
	return out
}

// Render writes page name with status, filling the common fields from c.
func (v *View) Render(c *fiber.Ctx, status int, name string, p *Page) error {
	lang := LangOf(c)
	t, ok := v.page(lang, name)
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	if p == nil {
		p = &Page{}
	}
	p.Principal = policies.PrincipalFrom(c.UserContext())
	if tok, ok := c.Locals(LocalCSRF).(string); ok {
		p.CSRF = tok
	}
	if id, ok := c.Locals(LocalRequestID).(string); ok {
		p.RequestID = id
	}
	if p.Flash == nil {
		p.Flash = takeFlash(c)
	}
	p.Nav = v.navFor(p.Principal)
	p.Path = c.Path()
	if !activeNav(p.Nav, p.Path) && p.navFrom != "" {
		if u, err := url.Parse(p.navFrom); err == nil {
			activeNav(p.Nav, u.Path)
		}
	}
	principal := p.Principal
	p.can = func(method, path string) bool { return v.Can(principal, method, path) }
	p.Lang = lang
	p.URI = c.OriginalURL()
	if o, ok := v.SignInWith[name]; ok && p.SignInWith == nil {
		p.SignInWith = &o
	}
	if p.Errors == nil {
		p.Errors = map[string]string{}
	}
	if p.Form == nil {
		p.Form = map[string]string{}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	out := buf.Bytes()
	if p.Principal != nil && v.Follows != nil {
		out = followable(out, p.Path, p.Principal, v.Follows)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(out)
}

// RenderString renders a page body to a string (e-mails, tests) in p.Lang
// (English when unset).
func (v *View) RenderString(name string, p *Page) (string, error) {
	if p.Lang == "" {
		p.Lang = i18n.EN
	}
	t, ok := v.page(p.Lang, name)
	if !ok {
		return "", fmt.Errorf("no template %q", name)
	}
	var buf bytes.Buffer
	err := t.ExecuteTemplate(&buf, "layout", p)
	return buf.String(), err
}

// AddNavFirst puts an item at the head of the named section (a surface's
// home above the items other modules added before it).
func (v *View) AddNavFirst(section string, item NavItem) {
	v.AddNav(section, item)
	for i := range v.Nav {
		if v.Nav[i].Title == section {
			items := v.Nav[i].Items
			copy(items[1:], items[:len(items)-1])
			items[0] = item
		}
	}
}

// AddNav appends an item to the named section, creating it when missing.
func (v *View) AddNav(section string, item NavItem) {
	for i := range v.Nav {
		if v.Nav[i].Title == section {
			v.Nav[i].Items = append(v.Nav[i].Items, item)
			return
		}
	}
	v.Nav = append(v.Nav, NavSection{Title: section, Items: []NavItem{item}})
}

// ByteSize is a size for people: 512 B, 14.2 KB, 3.0 MB (powers of 1024).
func ByteSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/(1024*1024))
	}
}

// codesOf reads the Code and Name fields of a slice of structs for the
// template function countries (the country lists live in packages above
// templates); the names stand in where CLDR knows no name.
func codesOf(list any) ([]string, func(string) string) {
	v := reflect.ValueOf(list)
	if v.Kind() != reflect.Slice {
		return nil, nil
	}
	codes := make([]string, 0, v.Len())
	names := map[string]string{}
	for i := 0; i < v.Len(); i++ {
		e := reflect.Indirect(v.Index(i))
		if e.Kind() != reflect.Struct {
			continue
		}
		code, name := e.FieldByName("Code"), e.FieldByName("Name")
		if !code.IsValid() || code.Kind() != reflect.String {
			continue
		}
		codes = append(codes, code.String())
		if name.IsValid() && name.Kind() == reflect.String {
			names[code.String()] = name.String()
		}
	}
	return codes, func(c string) string {
		if n, ok := names[c]; ok {
			return n
		}
		return c
	}
}
