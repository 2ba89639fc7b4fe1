package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// ValidInput refuses, with 400 invalid_input naming the field, any request
// whose text input holds a NUL byte or is not valid UTF-8: the query
// arguments, the path, urlencoded and multipart form fields (names, values
// and file names, never file contents), every string of a JSON body, and the
// headers that end up in queries. PostgreSQL rejects such text with an
// error that would otherwise surface as a 500 from whichever handler passed
// it on; checking once here spares every handler the same test.
//
// GET and HEAD bodies are ignored, so the provider API's read path pays only
// for a byte scan of its path, query and a few headers. The telemetry
// ingest's bodies are left to its own decoder (app/ingest/decode.go), which
// is built for their size.
func ValidInput() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if where, field, bad := invalidInput(c); bad {
			field = printable(field)
			e := errs.New(errs.BadRequest, "invalid_input", "%s %q contains a NUL byte or is not valid UTF-8", errs.Term(where), field)
			e.Fields = []errs.FieldError{{Field: field, Code: "invalid_input", Message: "contains a NUL byte or is not valid UTF-8 text"}}
			return e
		}
		return c.Next()
	}
}

// badText reports whether b cannot be stored as PostgreSQL text.
func badText(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b) }

func badString(s string) bool { return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) }

// checkedHeaders are the request headers handlers store or look up.
var checkedHeaders = []string{"Idempotency-Key", fiber.HeaderUserAgent}

func invalidInput(c *fiber.Ctx) (where, field string, bad bool) {
	req := c.Request()
	if raw := req.URI().PathOriginal(); badText(raw) {
		return "path", "path", true
	} else if bytes.IndexByte(raw, '%') >= 0 {
		// Route parameters are matched on the raw path and unescaped by
		// the handlers, so %00 and stray %FF count as well.
		if p, err := url.PathUnescape(string(raw)); err == nil && badString(p) {
			return "path", "path", true
		}
	}
	req.URI().QueryArgs().VisitAll(func(k, v []byte) {
		if !bad && (badText(k) || badText(v)) {
			where, field, bad = "query parameter", string(k), true
		}
	})
	if bad {
		return
	}
	for _, h := range checkedHeaders {
		if v := req.Header.Peek(h); len(v) > 0 && badText(v) {
			return "header", h, true
		}
	}
	if field, ok := invalidAuthorization(req.Header.Peek(fiber.HeaderAuthorization)); ok {
		return "credential", field, true
	}

	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead:
		return
	}
	if strings.HasPrefix(c.Path(), "/ingest/") || len(req.Body()) == 0 {
		return
	}
	ct := strings.ToLower(string(req.Header.ContentType()))
	switch {
	case strings.HasPrefix(ct, fiber.MIMEApplicationForm):
		req.PostArgs().VisitAll(func(k, v []byte) {
			if !bad && (badText(k) || badText(v)) {
				where, field, bad = "form field", string(k), true
			}
		})
		return
	case strings.HasPrefix(ct, fiber.MIMEMultipartForm):
		if field, ok := invalidMultipart(c.Body(), string(req.Header.MultipartFormBoundary())); ok {
			return "form field", field, true
		}
		return
	}
	// Handlers decode JSON whatever the declared type, so a body that looks
	// like JSON is checked as JSON.
	body := c.Body()
	if isJSONType(ct) || looksLikeJSON(body) {
		if field, ok := invalidJSON(body); ok {
			return "JSON field", field, true
		}
	}
	return
}

// invalidAuthorization checks HTTP Basic client credentials after decoding
// them the way the token endpoint does, and any other scheme's raw value.
func invalidAuthorization(h []byte) (string, bool) {
	if len(h) == 0 {
		return "", false
	}
	if badText(h) {
		return fiber.HeaderAuthorization, true
	}
	scheme, rest, _ := bytes.Cut(h, []byte(" "))
	if !bytes.EqualFold(scheme, []byte("Basic")) {
		return "", false // other schemes: the raw value checked above is what they use
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(rest)))
	if err != nil {
		return "", false // the token endpoint explains malformed credentials
	}
	id, secret, _ := strings.Cut(string(raw), ":")
	for _, f := range []struct{ name, v string }{{"client_id", id}, {"client_secret", secret}} {
		v := f.v
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		if badString(f.v) || badString(v) {
			return f.name, true
		}
	}
	return "", false
}

// invalidMultipart checks the names and text values of a multipart form
// without buffering file parts.
func invalidMultipart(body []byte, boundary string) (string, bool) {
	if boundary == "" {
		return "", false
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := r.NextPart()
		if err != nil {
			return "", false // end, or malformed: the handler's parser reports it
		}
		name := p.FormName()
		if badString(name) {
			return name, true
		}
		if fn := p.FileName(); fn != "" {
			if badString(fn) {
				return name, true
			}
			continue // NextPart skips the contents
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return "", false
		}
		if badText(v) {
			return name, true
		}
	}
}

func isJSONType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	return mt == fiber.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")
}

func looksLikeJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// jsonNUL is how a NUL is spelt inside a JSON string.
var jsonNUL = []byte(`\u0000`)

// invalidJSON finds the first string (key or value) that is not valid UTF-8
// in the raw body or decodes to text with a NUL (the \u0000 escape), and
// names it by its path (company.name, documents[1].filename). A body that
// is not JSON is left to the handler.
func invalidJSON(body []byte) (string, bool) {
	if utf8.Valid(body) && !bytes.Contains(body, jsonNUL) {
		return "", false // the common case: one pass, no decoding
	}
	type frame struct {
		object  bool
		key     string
		index   int
		wantKey bool
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		if b.Len() == 0 {
			return "body"
		}
		return b.String()
	}
	// valueDone advances the enclosing container past one value.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].wantKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var prev int64
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		off := dec.InputOffset()
		// The decoder replaces invalid UTF-8 with U+FFFD, so the raw bytes
		// of the token (and the delimiters before it) are what tell.
		rawBad := !utf8.Valid(body[prev:off])
		prev = off
		n := len(stack)
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				stack = append(stack, frame{object: d == '{', wantKey: d == '{'})
			default:
				stack = stack[:n-1]
				valueDone()
			}
			continue
		}
		s, isString := tok.(string)
		if n > 0 && stack[n-1].object && stack[n-1].wantKey {
			stack[n-1].key, stack[n-1].wantKey = s, false
			if rawBad || strings.IndexByte(s, 0) >= 0 {
				return path(), true
			}
			continue
		}
		if rawBad || (isString && strings.IndexByte(s, 0) >= 0) {
			return path(), true
		}
		valueDone()
	}
}

// printable makes a field name safe to echo in the answer.
func printable(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	if len(s) > 100 {
		s = strings.ToValidUTF8(s[:100], "") + "…"
	}
	return s
}
