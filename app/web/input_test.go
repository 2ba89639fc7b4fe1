package web

import (
	"encoding/base64"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func TestInvalidJSONNamesTheField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body, field string
		bad         bool
	}{
		{`{"a":"x","b":[1,"y",{"c":"z"}]}`, "", false},
		{`{"name":"caf\u00e9 \\u0000 is text"}`, "", false}, // an escaped backslash, not a NUL
		{`{"name":"a\u0000b"}`, "name", true},
		{`{"company":{"name":"ok","city":"\u0000"}}`, "company.city", true},
		{`{"documents":[{"filename":"a.pdf"},{"filename":"b\u0000.pdf"}]}`, "documents[1].filename", true},
		{`{"a":1,"k\u0000":2}`, "k\x00", true},
		{"{\"name\":\"\xff\"}", "name", true},
		{"{\"x\":{\"y\":[\"ok\",\"\xc3\"]}}", "x.y[1]", true},
		{`["ok","\u0000"]`, "[1]", true},
		{`"\u0000"`, "body", true},
		{"{\"n\":\u0000", "", false}, // not JSON at all: the handler says so
	}
	for _, tc := range cases {
		field, bad := invalidJSON([]byte(tc.body))
		if bad != tc.bad || field != tc.field {
			t.Errorf("%q: got %q %v, want %q %v", tc.body, field, bad, tc.field, tc.bad)
		}
	}
}

func TestValidInputSurfaces(t *testing.T) {
	t.Parallel()
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(nil, nil)})
	app.Use(ValidInput())
	app.All("/*", func(c *fiber.Ctx) error { return c.SendString("ok") })

	basic := func(id string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":secret"))
	}
	multi := func(name, value, file string) (io.Reader, string) {
		var b strings.Builder
		w := multipart.NewWriter(&b)
		_ = w.WriteField(name, value)
		fw, _ := w.CreateFormFile("document", file)
		_, _ = fw.Write([]byte("%PDF-\x00\xff binary contents are never checked"))
		_ = w.Close()
		return strings.NewReader(b.String()), w.FormDataContentType()
	}
	type req struct {
		name, method, target string
		body                 func() (io.Reader, string)
		header               map[string]string
		field                string // "" when the request passes
	}
	form := func(s string) func() (io.Reader, string) {
		return func() (io.Reader, string) { return strings.NewReader(s), fiber.MIMEApplicationForm }
	}
	raw := func(s, ct string) func() (io.Reader, string) {
		return func() (io.Reader, string) { return strings.NewReader(s), ct }
	}
	cases := []req{
		{name: "clean", method: "GET", target: "/x?q=caf%C3%A9"},
		{name: "query NUL", method: "GET", target: "/x?q=a%00b", field: "q"},
		{name: "query invalid UTF-8", method: "GET", target: "/x?q=%FF", field: "q"},
		{name: "path NUL", method: "GET", target: "/x/a%00b", field: "path"},
		{name: "path invalid UTF-8", method: "GET", target: "/x/%C3", field: "path"},
		{name: "form", method: "POST", target: "/x", body: form("email=a%00%40b.c"), field: "email"},
		{name: "form clean", method: "POST", target: "/x", body: form("email=a%40b.c")},
		{name: "JSON declared", method: "POST", target: "/x", body: raw(`{"q":"\u0000"}`, "application/json; charset=utf-8"), field: "q"},
		{name: "JSON undeclared", method: "PUT", target: "/x", body: raw(`{"q":"\u0000"}`, "text/plain"), field: "q"},
		{name: "GET body ignored", method: "GET", target: "/x", body: raw(`{"q":"\u0000"}`, "application/json")},
		{name: "ingest body left to its decoder", method: "POST", target: "/ingest/v1/signals", body: raw(`{"q":"\u0000"}`, "application/json")},
		{name: "binary upload", method: "POST", target: "/x", body: raw("%PDF-\x00\xff", "application/pdf")},
		{name: "multipart text", method: "POST", target: "/x", body: func() (io.Reader, string) { return multi("company", "a\x00", "a.pdf") }, field: "company"},
		{name: "multipart file name", method: "POST", target: "/x", body: func() (io.Reader, string) { return multi("company", "ACME", "a\xff.pdf") }, field: "document"},
		{name: "multipart clean", method: "POST", target: "/x", body: func() (io.Reader, string) { return multi("company", "ACME", "a.pdf") }},
		{name: "Idempotency-Key", method: "POST", target: "/x", header: map[string]string{"Idempotency-Key": "k\xff"}, field: "Idempotency-Key"},
		{name: "Basic client_id", method: "POST", target: "/x", header: map[string]string{"Authorization": basic("cl%00ient")}, field: "client_id"},
		{name: "Basic client_id raw", method: "POST", target: "/x", header: map[string]string{"Authorization": basic("cl\xffient")}, field: "client_id"},
		{name: "User-Agent", method: "GET", target: "/x", header: map[string]string{"User-Agent": "agent\xff"}, field: "User-Agent"},
		{name: "Basic clean", method: "POST", target: "/x", header: map[string]string{"Authorization": basic("client")}},
	}
	for _, tc := range cases {
		var body io.Reader
		ct := ""
		if tc.body != nil {
			body, ct = tc.body()
		}
		r := httptest.NewRequest(tc.method, tc.target, body)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		res, err := app.Test(r, -1)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(res.Body)
		if tc.field == "" {
			if res.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s", tc.name, res.StatusCode, b)
			}
			continue
		}
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"code":"invalid_input"`) ||
			!strings.Contains(string(b), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s", tc.name, res.StatusCode, b)
		}
	}
}

// BenchmarkValidInputAPIRead is the provider API's read path: a GET with a
// bearer token and two query arguments.
func BenchmarkValidInputAPIRead(b *testing.B) {
	app := fiber.New()
	var fctx fasthttp.RequestCtx
	fctx.Request.SetRequestURI("/api/v1/vehicles/WBA00000000000001/telematicData?containerId=42&keys=mileage")
	fctx.Request.Header.SetMethod(fiber.MethodGet)
	fctx.Request.Header.Set(fiber.HeaderAuthorization, "Bearer cd_at_0123456789abcdef0123456789abcdef0123456789")
	fctx.Request.Header.Set(fiber.HeaderUserAgent, "insurer-client/1.0")
	c := app.AcquireCtx(&fctx)
	defer app.ReleaseCtx(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, bad := invalidInput(c); bad {
			b.Fatal("refused")
		}
	}
}
