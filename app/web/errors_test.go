package web

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/policies/errs"
)

// A request that fails because the database refuses connections (a
// restart or failover, found by the fault soak: the ingest and the
// provider API answered 500 while PostgreSQL restarted) is answered 503
// with Retry-After, and the next request after the database is back
// succeeds; an ordinary internal error stays a 500.
func TestDatabaseOutageIsServiceUnavailable(t *testing.T) {
	testURL := dbtest.URL(t)
	own, err := db.Open(testURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(own) })
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)})
	app.Get("/api/v1/probe", func(c *fiber.Ctx) error {
		var one int
		if err := own.WithContext(c.UserContext()).Raw("SELECT 1").Scan(&one).Error; err != nil {
			return errs.Wrap(err, "probe")
		}
		return c.JSON(fiber.Map{"one": one})
	})
	app.Get("/api/v1/broken", func(c *fiber.Ctx) error { return errs.Wrap(io.EOF, "something else") })

	get := func(path string) (int, string, string) {
		t.Helper()
		res, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p Problem
		_ = json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p.Code, res.Header.Get(fiber.HeaderRetryAfter)
	}
	if st, _, _ := get("/api/v1/probe"); st != 200 {
		t.Fatalf("before the outage: %d", st)
	}

	// The outage: the database takes no new connections and every open
	// one is ended, as during a restart.
	ctx := t.Context()
	su, err := pgx.Connect(ctx, dbtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	name := pgx.Identifier{dbtest.Name(testURL)}.Sanitize()
	allow := func(on bool) {
		t.Helper()
		if _, err := su.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS "+map[bool]string{true: "true", false: "false"}[on]); err != nil {
			t.Fatal(err)
		}
	}
	allow(false)
	t.Cleanup(func() { _, _ = su.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") })
	if _, err := su.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbtest.Name(testURL)); err != nil {
		t.Fatal(err)
	}
	if st, code, retry := get("/api/v1/probe"); st != 503 || code != "database_unavailable" || retry == "" {
		t.Fatalf("during the outage: %d %q Retry-After %q, want 503 database_unavailable with Retry-After", st, code, retry)
	}
	allow(true)
	if st, _, _ := get("/api/v1/probe"); st != 200 {
		t.Fatalf("after the outage: %d", st)
	}
	if st, code, _ := get("/api/v1/broken"); st != 500 || code != "internal" {
		t.Fatalf("an internal error: %d %q, want 500 internal", st, code)
	}
}

// A GET of a form's address on a browser surface goes to the nearest page
// (the address shortened until a GET route serves it, else the surface's
// home); the API, a path no route serves and other methods are unchanged.
func TestGetOfAFormAddressGoesToItsPage(t *testing.T) {
	t.Parallel()
	app := fiber.New(fiber.Config{StrictRouting: true, CaseSensitive: true,
		ErrorHandler: ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)})
	ok := func(c *fiber.Ctx) error { return c.SendString("ok") }
	app.Get("/admin", ok)
	app.Get("/admin/things/:id", ok)
	app.Post("/admin/things/:id/steps/:step", ok)
	app.Post("/admin/logout", ok)
	app.Post("/portal/clients/:id/revoke", ok)
	app.Post("/api/v1/things", ok)
	app.Post("/lang", ok)
	for _, tc := range []struct {
		method, path, accept string
		status               int
		location             string
	}{
		{"GET", "/admin/things/7/steps/approve", "", 303, "/admin/things/7"},
		{"HEAD", "/admin/things/7/steps/approve?a=b", "", 303, "/admin/things/7"},
		{"GET", "/admin/logout", "", 303, "/admin"},
		{"GET", "/portal/clients/3/revoke", "", 303, "/portal"},
		{"GET", "/admin/things/7/steps/approve", "application/json", 405, ""},
		{"GET", "/api/v1/things", "", 405, ""},
		{"GET", "/lang", "", 405, ""},
		{"GET", "/admin/things/7/steps", "", 404, ""},
		{"PUT", "/admin/things/7/steps/approve", "", 405, ""},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status || res.Header.Get("Location") != tc.location {
			t.Errorf("%s %s (Accept %q): %d %q, want %d %q", tc.method, tc.path, tc.accept, res.StatusCode, res.Header.Get("Location"), tc.status, tc.location)
		}
		if tc.status == 303 && (res.Header.Get("Allow") != "" || res.Header.Get("Set-Cookie") != "") {
			t.Errorf("%s %s: Allow %q, Set-Cookie %q (anonymous: no note)", tc.method, tc.path, res.Header.Get("Allow"), res.Header.Get("Set-Cookie"))
		}
	}
}
