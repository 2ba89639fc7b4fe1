package web

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/templates"
)

// Proxies are the reverse proxies whose X-Forwarded-For is believed.
type Proxies []netip.Prefix

func (p Proxies) trusted(a netip.Addr) bool {
	for _, pfx := range p {
		if pfx.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client behind peer: peer itself unless
// it is a trusted proxy; then X-Forwarded-For read from the right (each
// proxy appends the address it saw), skipping trusted hops, so entries a
// client wrote itself (at the left) are never taken. A malformed entry
// stops the walk at the last address known to be good.
func (p Proxies) ClientAddr(peer string, forwardedFor []string) string {
	addr, err := netip.ParseAddr(peer)
	if err != nil || len(p) == 0 || !p.trusted(addr) {
		return peer
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		for _, hop := range slices.Backward(strings.Split(forwardedFor[i], ",")) {
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				return addr.Unmap().String()
			}
			addr = a
			if !p.trusted(a) {
				return a.Unmap().String()
			}
		}
	}
	return addr.Unmap().String()
}

// RequestContext gives every request an id (honouring a sane X-Request-Id),
// echoes it, and puts the request info into the user context for the audit
// trail, with the client address (see Proxies.ClientAddr) that the access
// log, sign-in throttles and audit entries use.
func RequestContext(proxies Proxies) fiber.Handler {
	return func(c *fiber.Ctx) error {
		rid := c.Get(fiber.HeaderXRequestID)
		if len(rid) == 0 || len(rid) > 64 || strings.ContainsFunc(rid, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			rid = uuid.NewString()
		}
		c.Locals(templates.LocalRequestID, rid)
		c.Set(fiber.HeaderXRequestID, rid)
		var forwarded []string
		if len(proxies) > 0 {
			for _, v := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
				forwarded = append(forwarded, string(v))
			}
		}
		c.SetUserContext(policies.WithRequest(c.UserContext(), policies.Request{ID: rid, ClientAddr: proxies.ClientAddr(c.IP(), forwarded)}))
		return c.Next()
	}
}

// Metrics counts requests by route and status and times them.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the HTTP collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cardata_http_requests_total",
			Help: "HTTP requests by route pattern, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cardata_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern and method.", Buckets: prometheus.DefBuckets}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// AccessLog logs one JSON line per request and records metrics. It runs the
// error handler itself so the logged status is the one sent.
func AccessLog(log *slog.Logger, m *Metrics) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		if err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		status := c.Response().StatusCode()
		route := c.Route().Path
		if status == fiber.StatusNotFound && route == "/" {
			route = "unmatched"
		}
		dur := time.Since(start)
		m.requests.WithLabelValues(route, c.Method(), strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(route, c.Method()).Observe(dur.Seconds())
		rid, _ := c.Locals(templates.LocalRequestID).(string)
		log.LogAttrs(c.UserContext(), slog.LevelInfo, "request",
			slog.String("request_id", rid), slog.String("method", c.Method()), slog.String("path", c.Path()),
			slog.String("route", route), slog.Int("status", status), slog.Duration("duration", dur),
			slog.String("client", ClientAddr(c)))
		return nil
	}
}

// ClientAddr is the request's client address (RequestContext's).
func ClientAddr(c *fiber.Ctx) string {
	if a := policies.RequestFrom(c.UserContext()).ClientAddr; a != "" {
		return a
	}
	return c.IP()
}

// Recover turns a panic into an internal error (logged with a stack by the error handler).
func Recover(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				rid, _ := c.Locals(templates.LocalRequestID).(string)
				log.Error("panic", "request_id", rid, "panic", fmt.Sprint(r))
				err = errs.Wrap(fmt.Errorf("panic: %v", r), "handler")
			}
		}()
		return c.Next()
	}
}

// SessionCookie is the name of the login session cookie.
const SessionCookie = "cardata_session"

// Resolver loads the principal behind a session subject.
type Resolver func(ctx context.Context, subjectID, sessionID int64) (*policies.Principal, error)

// Sessions resolves the session cookie into a principal, when there is one.
// Unknown or expired sessions leave the request anonymous.
func Sessions(store *session.Store, resolvers map[string]Resolver) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok := c.Cookies(SessionCookie)
		if tok == "" {
			return c.Next()
		}
		s, err := store.Lookup(c.UserContext(), tok)
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			return c.Next()
		}
		// A sign-in waiting for its second factor is no sign-in yet: the
		// request stays anonymous, so the guard refuses every page but the
		// public second step, which reads the pending session itself.
		resolve, ok := resolvers[s.SubjectKind]
		if !ok || s.Pending != "" {
			return c.Next()
		}
		p, err := resolve(c.UserContext(), s.SubjectID, s.ID)
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			return c.Next()
		}
		if p != nil {
			p.Subject = s.IdentitySubject
			c.SetUserContext(policies.WithPrincipal(c.UserContext(), p))
		}
		return c.Next()
	}
}

// CookieSettings are the shared cookie attributes.
type CookieSettings struct {
	Secure bool
	Domain string
}

// SetSessionCookie hands the browser a new session token.
func SetSessionCookie(c *fiber.Ctx, cs CookieSettings, token string, maxAge time.Duration) {
	c.Cookie(&fiber.Cookie{Name: SessionCookie, Value: token, Path: "/", Domain: cs.Domain,
		HTTPOnly: true, Secure: cs.Secure, SameSite: fiber.CookieSameSiteLaxMode, MaxAge: int(maxAge.Seconds())})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(c *fiber.Ctx, cs CookieSettings) {
	c.Cookie(&fiber.Cookie{Name: SessionCookie, Value: "", Path: "/", Domain: cs.Domain, HTTPOnly: true,
		Secure: cs.Secure, SameSite: fiber.CookieSameSiteLaxMode, MaxAge: -1, Expires: time.Unix(1, 0)})
}

const csrfCookie = "cardata_csrf"

// ErrCSRF rejects a state-changing browser request without a matching token.
var ErrCSRF = errs.New(errs.Forbidden, "csrf_invalid", "the form has expired or did not come from this site; reload the page and try again")

// CSRF protects browser forms with the double-submit cookie pattern: the
// cookie is HttpOnly and SameSite=Lax, and every unsafe request must echo its
// value in the _csrf form field or the X-CSRF-Token header. It checks every
// unsafe request whatever its path spelling, except under the machine
// prefixes (exact, case-sensitive), which authenticate with bearer tokens and
// never read the session cookie: a misspelt machine path is checked like any
// browser path and then answered 404 by the router.
func CSRF(cs CookieSettings, machinePrefixes ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		path := c.Path()
		for _, p := range machinePrefixes {
			if strings.HasPrefix(path, p) {
				return c.Next()
			}
		}
		tok := c.Cookies(csrfCookie)
		if len(tok) < 32 {
			tok = session.NewToken()
			c.Cookie(&fiber.Cookie{Name: csrfCookie, Value: tok, Path: "/", Domain: cs.Domain, HTTPOnly: true,
				Secure: cs.Secure, SameSite: fiber.CookieSameSiteLaxMode})
			c.Request().Header.DelCookie(csrfCookie)
		}
		c.Locals(templates.LocalCSRF, tok)
		switch c.Method() {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
			return c.Next()
		}
		sent := c.Get("X-CSRF-Token")
		if sent == "" {
			sent = c.FormValue("_csrf")
		}
		if c.Cookies(csrfCookie) == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(tok)) != 1 {
			return ErrCSRF
		}
		return c.Next()
	}
}

// CanonicalPath refuses every spelling of a path but the one routes are
// registered under, before anything else looks at it: doubled slashes, dot
// segments, a trailing slash, backslashes and percent-encoded separators or
// dots. A GET or HEAD whose spelling cleans to a different path is redirected
// there (308, query kept), so a typed or pasted URL still works; every other
// request is answered 404. Routing itself is case-sensitive and strict
// (fiber's CaseSensitive and StrictRouting), and nothing decodes the path
// before the router sees it, so a variant this check lets through can only
// miss every route.
func CanonicalPath() fiber.Handler {
	return func(c *fiber.Ctx) error {
		raw := string(c.Request().URI().PathOriginal())
		if i := strings.IndexByte(raw, '?'); i >= 0 {
			raw = raw[:i]
		}
		if !strings.HasPrefix(raw, "/") || strings.ContainsAny(raw, "\\\x00") || hasEncodedSeparator(raw) {
			return fiber.ErrNotFound
		}
		clean := path.Clean(raw)
		if clean == raw {
			return c.Next()
		}
		switch c.Method() {
		case fiber.MethodGet, fiber.MethodHead:
			target := clean
			if q := c.Request().URI().QueryString(); len(q) > 0 {
				target += "?" + string(q)
			}
			return c.Redirect(target, fiber.StatusPermanentRedirect)
		}
		return fiber.ErrNotFound
	}
}

// hasEncodedSeparator reports a percent-encoded '/', '\', '.' or NUL in a path:
// decoded by a later layer they would make a second spelling of a route.
func hasEncodedSeparator(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		switch strings.ToUpper(p[i+1 : i+3]) {
		case "2F", "5C", "2E", "00":
			return true
		}
	}
	return false
}

// Access authorizes requests by the route the router matched: Seal puts its
// check in front of the handlers of every registered route, so a request
// reaches a handler only when that route is public or allowed for the
// principal's roles, and a request no route serves never reaches a handler
// at all. There is no second path matcher that could disagree with the
// router.
type Access struct {
	Enforcer *policies.Enforcer
	public   map[string]bool // "METHOD pattern", as registered
	guard    fiber.Handler
	guardPC  uintptr // the guard's code address, to recognise sealed routes

	mu       sync.RWMutex
	patterns map[string]bool // "METHOD pattern" of every route sealed
	routes   []*fiber.Route  // every route sealed
	sealedAt uint32          // the app's handler count when last sealed
	steps    []RouteStep     // run after the guard on the routes they choose
}

// RouteStep returns a handler to run right after the guard on the route
// registered as method+pattern, or nil for routes it does not concern. It
// sees the matched route, so it needs no path matching of its own.
type RouteStep func(method, pattern string) fiber.Handler

// After adds a step that Seal puts behind the guard (before Seal runs).
func (a *Access) After(step RouteStep) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.steps = append(a.steps, step)
}

// NewAccess builds the route guard.
func NewAccess(en *policies.Enforcer) *Access {
	a := &Access{Enforcer: en, public: map[string]bool{}, patterns: map[string]bool{}}
	a.guard = a.check
	a.guardPC = reflect.ValueOf(a.guard).Pointer()
	return a
}

// Public marks method+pattern (as registered) as open to anonymous callers.
// HEAD follows GET.
func (a *Access) Public(method, pattern string) { a.public[method+" "+pattern] = true }

// IsPublic reports whether a registered route is public.
func (a *Access) IsPublic(method, pattern string) bool {
	return a.public[method+" "+pattern] || (method == fiber.MethodHead && a.public["GET "+pattern])
}

// Registered reports whether a route with exactly this pattern is mounted
// (for links to pages that may not exist in every deployment).
func (a *Access) Registered(method, pattern string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.patterns[method+" "+pattern]
}

// Seal puts the guard in front of the handlers of every route registered on
// app so far (middleware, which serves no route of its own, excepted). It is
// idempotent: New calls it once every surface is mounted, and ServeListener
// and the test client again, so a route added later is guarded as well.
func (a *Access) Seal(app *fiber.App) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := app.HandlersCount()
	if n == a.sealedAt {
		return // nothing registered since (the guard itself is not counted)
	}
	a.sealedAt = n
	// GetRoutes(true) lists copies of the handler routes (not middleware);
	// a copy shares its handler array with the route in the stack, which
	// is how the stack's routes are told apart from middleware.
	handlerRoutes := map[*fiber.Handler]bool{}
	for _, r := range app.GetRoutes(true) {
		if len(r.Handlers) > 0 {
			handlerRoutes[&r.Handlers[0]] = true
		}
		a.patterns[r.Method+" "+r.Path] = true
	}
	for _, routes := range app.Stack() {
		for _, r := range routes {
			if len(r.Handlers) == 0 || !handlerRoutes[&r.Handlers[0]] || a.Sealed(r) {
				continue
			}
			a.routes = append(a.routes, r)
			front := []fiber.Handler{a.guard}
			for _, step := range a.steps {
				if h := step(r.Method, r.Path); h != nil {
					front = append(front, h)
				}
			}
			r.Handlers = append(front, r.Handlers...)
		}
	}
}

// Routes lists the routes Seal guarded (not middleware), for tests.
func (a *Access) Routes() []*fiber.Route {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]*fiber.Route(nil), a.routes...)
}

// Sealed reports whether r's first handler is the guard.
func (a *Access) Sealed(r *fiber.Route) bool {
	return len(r.Handlers) > 0 && reflect.ValueOf(r.Handlers[0]).Pointer() == a.guardPC
}

// check is the guard: public routes pass; everything else needs a principal
// whose roles the policy allows on the matched route's pattern.
func (a *Access) check(c *fiber.Ctx) error {
	r := c.Route()
	method := r.Method
	if method == fiber.MethodHead {
		method = fiber.MethodGet
	}
	if a.IsPublic(method, r.Path) {
		return c.Next()
	}
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil {
		return errs.New(errs.Unauthorized, "unauthenticated", "sign in first")
	}
	if !kindServes(p.Kind, r.Path) || !a.Enforcer.AllowedRoute(p.Roles, r.Path, method) {
		return errs.New(errs.Forbidden, "forbidden", "you are not allowed to do this")
	}
	return c.Next()
}

// Follows reports whether p may call method on a concrete path (a link's
// href, a form's action): the guard's decision for the route that serves
// it, asked of the same policy. The policy's patterns (keyMatch2) match a
// concrete path as they match the route pattern the guard is given. The
// templates ask it for every link and form they render (templates.View.Can),
// so nobody is shown what the guard would refuse them.
func (a *Access) Follows(p *policies.Principal, method, path string) bool {
	if method == fiber.MethodHead {
		method = fiber.MethodGet
	}
	if path == "/static" || strings.HasPrefix(path, "/static/") {
		return true // the static files are middleware, served to everyone
	}
	for k := range a.public {
		m, pattern, _ := strings.Cut(k, " ")
		if m == method && policies.KeyMatch2(path, pattern) {
			return true
		}
	}
	if p == nil {
		return false
	}
	return kindServes(p.Kind, path) && a.Enforcer.Allowed(p.Roles, path, method)
}

// surfaces names the principal kind each surface serves; the roles in the
// policy already differ by kind, and this keeps one kind's session from ever
// reaching another kind's pages even if a role name were reused.
var surfaces = []struct{ prefix, kind string }{
	{"/admin", policies.KindStaff},
	{"/portal", policies.KindProvider},
	{"/api/", policies.KindProvider},
	{"/my", policies.KindCustomer},
	{"/ingest/", policies.KindGateway},
}

func kindServes(kind, pattern string) bool {
	for _, s := range surfaces {
		if pattern == s.prefix || strings.HasPrefix(pattern, strings.TrimSuffix(s.prefix, "/")+"/") {
			return kind == s.kind
		}
	}
	return true
}
