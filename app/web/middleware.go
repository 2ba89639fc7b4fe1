package web

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
		resolve, ok := resolvers[s.SubjectKind]
		if !ok {
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
// value in the _csrf form field or the X-CSRF-Token header.
func CSRF(cs CookieSettings, known func(method, path string) bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
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
		if known != nil && !known(c.Method(), c.Path()) {
			return c.Next() // fiber answers 404/405
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

// Access decides which routes need no principal and checks the rest with
// casbin by the principal's roles.
type Access struct {
	Enforcer *policies.Enforcer
	public   map[string]bool // "METHOD path-pattern"
	prefixes []string        // public path prefixes (static assets)
	// routes indexes the registered routes by method and leading literal
	// segments, so unknown paths fall through to 404/405 and known ones are
	// authorized by their pattern (a finite set, so decisions can be cached).
	routes map[string]map[string][]routeMatcher
}

type routeMatcher struct {
	order   int // registration order: fiber serves the first match
	pattern string
	re      *regexp.Regexp
}

// maxPrefix is how many leading literal segments index a route.
const maxPrefix = 3

// compileRoute turns a fiber route pattern into an anchored regexp and
// returns its leading literal segments (at most maxPrefix).
func compileRoute(pattern string) (*regexp.Regexp, []string) {
	var b strings.Builder
	b.WriteString("^")
	if len(pattern) > 1 {
		pattern = strings.TrimRight(pattern, "/")
	}
	segs := strings.Split(pattern, "/")
	var literal []string
	literalRun := true
	for i, seg := range segs {
		isParam := seg == "*" || seg == "+" || strings.HasPrefix(seg, ":")
		if i > 0 {
			if literalRun && !isParam && len(literal) < maxPrefix {
				literal = append(literal, seg)
			} else {
				literalRun = false
			}
			if strings.HasPrefix(seg, ":") && strings.HasSuffix(seg, "?") {
				b.WriteString("(?:/[^/]*)?")
				continue
			}
			b.WriteString("/")
		}
		switch {
		case seg == "*":
			b.WriteString(".*")
		case seg == "+":
			b.WriteString(".+")
		case strings.HasPrefix(seg, ":"):
			b.WriteString("[^/]+")
		default:
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("/?$")
	return regexp.MustCompile(b.String()), literal
}

// Learn records the app's routes (call after every route is mounted).
func (a *Access) Learn(routes []fiber.Route) {
	a.routes = map[string]map[string][]routeMatcher{}
	for i, r := range routes {
		pattern := r.Path
		if len(pattern) > 1 {
			pattern = strings.TrimRight(pattern, "/")
		}
		re, literal := compileRoute(pattern)
		byPrefix := a.routes[r.Method]
		if byPrefix == nil {
			byPrefix = map[string][]routeMatcher{}
			a.routes[r.Method] = byPrefix
		}
		key := strings.Join(literal, "/")
		byPrefix[key] = append(byPrefix[key], routeMatcher{order: i, pattern: pattern, re: re})
	}
}

// Known reports whether a registered route serves method+path.
func (a *Access) Known(method, path string) bool {
	_, ok := a.routeFor(method, path)
	return ok
}

// routeFor returns the registered pattern serving method+path, if any: the
// earliest registered route among those indexed under a prefix of the path.
func (a *Access) routeFor(method, path string) (string, bool) {
	byPrefix := a.routes[method]
	if byPrefix == nil {
		return "", false
	}
	segs := strings.SplitN(strings.TrimPrefix(path, "/"), "/", maxPrefix+1)
	if len(segs) > maxPrefix {
		segs = segs[:maxPrefix]
	}
	best := routeMatcher{order: -1}
	for n := len(segs); n >= 0; n-- {
		for _, r := range byPrefix[strings.Join(segs[:n], "/")] {
			if (best.order < 0 || r.order < best.order) && r.re.MatchString(path) {
				best = r
				break // within a bucket, routes are in registration order
			}
		}
	}
	return best.pattern, best.order >= 0
}

// NewAccess builds the route guard.
func NewAccess(en *policies.Enforcer) *Access {
	return &Access{Enforcer: en, public: map[string]bool{}}
}

// Public marks method+path (as registered) as open to anonymous callers.
func (a *Access) Public(method, path string) { a.public[method+" "+path] = true }

// PublicPrefix marks every path under prefix as public.
func (a *Access) PublicPrefix(prefix string) { a.prefixes = append(a.prefixes, prefix) }

// IsPublic reports whether a registered route is public.
func (a *Access) IsPublic(method, path string) bool {
	if a.public[method+" "+path] || (method == fiber.MethodHead && a.public["GET "+path]) {
		return true
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// Guard returns the middleware. It runs after routing is known only by
// path, so public routes are matched by their concrete path too.
func (a *Access) Guard() fiber.Handler {
	return func(c *fiber.Ctx) error {
		method := c.Method()
		if method == fiber.MethodHead {
			method = fiber.MethodGet
		}
		path := c.Path()
		if len(path) > 1 {
			path = strings.TrimRight(path, "/")
		}
		pattern, known := a.routeFor(method, path)
		// Unknown paths and methods fall through to fiber's 404/405, which
		// reveal nothing; public routes need no principal.
		if !known || a.IsPublic(method, pattern) || a.IsPublic(method, path) {
			return c.Next()
		}
		p := policies.PrincipalFrom(c.UserContext())
		if p == nil {
			return errs.New(errs.Unauthorized, "unauthenticated", "sign in first")
		}
		if !a.Enforcer.AllowedRoute(p.Roles, pattern, method) {
			return errs.New(errs.Forbidden, "forbidden", "you are not allowed to do this")
		}
		return c.Next()
	}
}
