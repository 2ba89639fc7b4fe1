package web

import (
	"reflect"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/policies/errs"
)

// Surface wraps a browser surface's route group (/admin, /portal, /my) so
// that every route registered through it first checks that a principal of
// kind is signed in: the surfaces' second line behind the route guard, so a
// handler never runs without the principal it is written for even if a
// route's policy were wrong or the guard missing. The check sits in each
// route's own handler chain, so a path no route serves still answers 404.
// exempt names the sign-in routes (full patterns) that need no principal.
func Surface(r fiber.Router, prefix, kind string, exempt ...string) fiber.Router {
	ex := map[string]bool{}
	for _, e := range exempt {
		ex[e] = true
	}
	return &surface{Router: r, prefix: prefix, check: RequireKind(kind), exempt: ex}
}

type surface struct {
	fiber.Router
	prefix string
	check  fiber.Handler
	exempt map[string]bool
}

func (s *surface) with(path string, handlers []fiber.Handler) []fiber.Handler {
	if s.exempt[s.prefix+path] {
		return handlers
	}
	return append([]fiber.Handler{s.check}, handlers...)
}

func (s *surface) Get(path string, h ...fiber.Handler) fiber.Router {
	s.Router.Get(path, s.with(path, h)...)
	return s
}

func (s *surface) Head(path string, h ...fiber.Handler) fiber.Router {
	s.Router.Head(path, s.with(path, h)...)
	return s
}

func (s *surface) Post(path string, h ...fiber.Handler) fiber.Router {
	s.Router.Post(path, s.with(path, h)...)
	return s
}

func (s *surface) Put(path string, h ...fiber.Handler) fiber.Router {
	s.Router.Put(path, s.with(path, h)...)
	return s
}

func (s *surface) Delete(path string, h ...fiber.Handler) fiber.Router {
	s.Router.Delete(path, s.with(path, h)...)
	return s
}

func (s *surface) Patch(path string, h ...fiber.Handler) fiber.Router {
	s.Router.Patch(path, s.with(path, h)...)
	return s
}

func (s *surface) Add(method, path string, h ...fiber.Handler) fiber.Router {
	s.Router.Add(method, path, s.with(path, h)...)
	return s
}

func (s *surface) All(path string, h ...fiber.Handler) fiber.Router {
	s.Router.All(path, s.with(path, h)...)
	return s
}

// Group keeps the check on routes of a nested group.
func (s *surface) Group(prefix string, h ...fiber.Handler) fiber.Router {
	return &surface{Router: s.Router.Group(prefix, h...), prefix: s.prefix + prefix, check: s.check, exempt: s.exempt}
}

// RequireKind answers 401 when no principal is signed in and 403 for a
// principal of another kind than kind.
func RequireKind(kind string) fiber.Handler { return kindCheck(kind).check }

// kindCheck is a named type so that its method value has one code address
// (a closure may be inlined into each caller), which IsKindCheck compares.
type kindCheck string

func (k kindCheck) check(c *fiber.Ctx) error {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil {
		return errs.New(errs.Unauthorized, "unauthenticated", "sign in first")
	}
	if p.Kind != string(k) {
		return errs.New(errs.Forbidden, "forbidden", "you are not allowed to do this")
	}
	return c.Next()
}

var kindCheckPC = reflect.ValueOf(RequireKind("")).Pointer()

// IsKindCheck reports whether h is a RequireKind check (for the tests that
// prove every surface route carries one).
func IsKindCheck(h fiber.Handler) bool { return reflect.ValueOf(h).Pointer() == kindCheckPC }
