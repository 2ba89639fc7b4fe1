package templates

import (
	"cmp"
	"net/url"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/templates/i18n"
)

// Destructive and irreversible actions ask first, on a page of their own
// that names what will happen: one pattern for every such action, working
// without JavaScript.
//
// Every POST form a page renders carries the hidden field _confirm=ask (the
// link filter adds it, so no template can forget it). A route wrapped in
// View.Confirm answers a request carrying it with the confirmation page
// instead of acting: the page repeats the submitted fields without the
// marker, so its "yes" button performs the action and its "cancel" link
// goes back. A client that posts without the marker (the API, scripts,
// tests that post on purpose) is not a person clicking a button on a page
// and acts at once; the CSRF check in front of every form keeps another
// site from posting at all.
const (
	confirmField = "_confirm"
	confirmAsk   = "ask"
)

// Confirmation names what an action will do, for the page that asks. Its
// texts are message ids of the catalogs (templates/i18n), with go-i18n
// parameters filled from Args ("Name", cl.Name, ...), so the page asks in
// the reader's language.
type Confirmation struct {
	Title  string // the question: "Revoke the API client “backend”?"
	Effect string // what happens, in a sentence or two
	Yes    string // the button: "Revoke the client"
	No     string // the way back; "Cancel" when empty
	Back   string // where cancel goes; the page the form was on when empty
	Args   []any  // the texts' parameters, name and value pairs
	// Safe marks an action that is not destructive (the same route's
	// "claim" beside "reject"): it proceeds without asking.
	Safe bool
}

// Confirm wraps a destructive route: describe says what the request would do
// (or Safe), and a request from a page's form is asked first.
func (v *View) Confirm(describe func(c *fiber.Ctx) (Confirmation, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.FormValue(confirmField) != confirmAsk {
			return c.Next()
		}
		d, err := describe(c)
		if err != nil {
			return err
		}
		if d.Safe {
			return c.Next()
		}
		return v.Ask(c, d, c.OriginalURL(), replay(c)...)
	}
}

// Ask renders the confirmation page for an action posting fields to
// action; a page of its own (GET) may show it too, as /my does before a
// consent is revoked.
func (v *View) Ask(c *fiber.Ctx, d Confirmation, action string, fields ...Field) error {
	if d.Back == "" {
		d.Back = sameOriginPath(c.Get(fiber.HeaderReferer), c.BaseURL())
	}
	lang := LangOf(c)
	d.Title, d.Effect = i18n.T(lang, d.Title, d.Args...), i18n.T(lang, d.Effect, d.Args...)
	d.Yes, d.No = i18n.T(lang, d.Yes, d.Args...), i18n.T(lang, cmp.Or(d.No, "Cancel"))
	return v.Render(c, fiber.StatusOK, "actions/confirm", &Page{Title: d.Title, navFrom: d.Back,
		Data: confirmPage{Confirmation: d, Action: action, Fields: fields}})
}

type confirmPage struct {
	Confirmation
	Action string
	Fields []Field
}

// Field is a form field the confirmation page posts again.
type Field struct{ Name, Value string }

// replay lists the submitted form fields to post again, without the CSRF
// token (the page renders a fresh one) and the marker.
func replay(c *fiber.Ctx) []Field {
	var out []Field
	add := func(k, v string) {
		if k != confirmField && k != "_csrf" {
			out = append(out, Field{k, v})
		}
	}
	c.Request().PostArgs().VisitAll(func(k, v []byte) { add(string(k), string(v)) })
	if mf, err := c.MultipartForm(); err == nil && mf != nil {
		keys := make([]string, 0, len(mf.Value))
		for k := range mf.Value {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range mf.Value[k] {
				add(k, v)
			}
		}
	}
	return out
}

// sameOriginPath is ref's path and query when ref points at this site.
func sameOriginPath(ref, base string) string {
	u, err := url.Parse(ref)
	if err != nil || ref == "" {
		return ""
	}
	b, _ := url.Parse(base)
	if u.Host != "" && (b == nil || u.Host != b.Host) {
		return ""
	}
	if !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	return u.RequestURI()
}

// askMarker is what the link filter puts into every POST form.
const askMarker = `<input type="hidden" name="` + confirmField + `" value="` + confirmAsk + `">`
