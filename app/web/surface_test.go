package web

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/policies/errs"
)

// The second line on its own, with no route guard in front: a surface's
// handlers never run without a principal of the surface's kind.
func TestSurfaceRefusesWithoutAPrincipalOfItsKind(t *testing.T) {
	var as *policies.Principal
	app := fiber.New(fiber.Config{CaseSensitive: true, StrictRouting: true, ErrorHandler: func(c *fiber.Ctx, err error) error {
		var fe *fiber.Error
		if errors.As(err, &fe) {
			return c.SendStatus(fe.Code)
		}
		return c.SendStatus(map[errs.Kind]int{errs.Unauthorized: 401, errs.Forbidden: 403}[errs.KindOf(err)])
	}})
	app.Use(func(c *fiber.Ctx) error {
		if as != nil {
			c.SetUserContext(policies.WithPrincipal(context.Background(), as))
		}
		return c.Next()
	})
	ran := 0
	h := func(c *fiber.Ctx) error { ran++; return c.SendString("ok") }
	s := Surface(app.Group("/admin"), "/admin", policies.KindStaff, "/admin/login")
	s.Get("/login", h)
	s.Get("", h)
	s.Post("/users/:id", h)
	s.Group("/billing").Get("/invoices", h)

	cases := []struct {
		who          *policies.Principal
		method, path string
		want         int
	}{
		{nil, "GET", "/admin/login", 200},
		{nil, "GET", "/admin", 401},
		{nil, "POST", "/admin/users/1", 401},
		{nil, "GET", "/admin/billing/invoices", 401},
		{nil, "GET", "/admin/nope", 404},
		{&policies.Principal{Kind: policies.KindProvider, Roles: []string{"admin"}}, "GET", "/admin", 403},
		{&policies.Principal{Kind: policies.KindCustomer}, "GET", "/admin/billing/invoices", 403},
		{&policies.Principal{Kind: policies.KindStaff, Roles: []string{"auditor"}}, "GET", "/admin/billing/invoices", 200},
	}
	for _, c := range cases {
		as = c.who
		before := ran
		res, err := app.Test(httptest.NewRequest(c.method, c.path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != c.want {
			t.Errorf("%s %s as %v: %d, want %d", c.method, c.path, c.who, res.StatusCode, c.want)
		}
		if c.want != 200 && ran != before {
			t.Errorf("%s %s as %v: the handler ran", c.method, c.path, c.who)
		}
	}
}
