// Package app is the only wiring point of cardata: it builds every service
// from the configuration, mounts every HTTP surface on one fiber app, and
// runs the background workers. The same New boots production and the
// end-to-end tests.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/gorm"

	"cardata/admin"
	"cardata/app/config"
	"cardata/app/db"
	"cardata/app/providerapi"
	"cardata/app/web"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// App is the running system.
type App struct {
	Log      *slog.Logger
	Fiber    *fiber.App
	View     *templates.View
	Enforcer *policies.Enforcer
	Access   *web.Access
	Registry *prometheus.Registry
	Cookies  web.CookieSettings
	API      *providerapi.Handler // provider API (mountAPI)
	// Services are the domain services, built once and complete before any
	// surface is mounted (services.go); a.Cfg, a.DB, a.Billing, a.Jobs and
	// so on are theirs. Every job is on a.Jobs already (jobs.go); the
	// mount functions only mount routes and navigation.
	*Services

	resolvers map[string]web.Resolver
	dashboard *admin.Handlers             // the staff pages, whose dashboard the mounts add widgets to
	bearer    fiber.Handler               // resolves API bearer tokens before the guard (mountAPI sets it)
	workers   []func(ctx context.Context) // started by Serve, stopped on shutdown
	closers   []func()                    // stop and wait for what New and the handlers started (Close)
	closeOnce sync.Once

	metricsAddr atomic.Pointer[string] // bound METRICS_ADDR while serving
	metricsDone chan struct{}          // closed when the metrics listener's goroutine has returned
}

// New builds the whole application on an open, migrated database.
func New(cfg config.Config, gdb *gorm.DB, log *slog.Logger) (*App, error) {
	en, err := policies.NewEnforcer()
	if err != nil {
		return nil, err
	}
	view, err := templates.New(cfg.BillingTimezone)
	if err != nil {
		return nil, err
	}
	a := &App{
		Log: log, View: view, Enforcer: en, Access: web.NewAccess(en),
		Registry:  prometheus.NewRegistry(),
		Cookies:   web.CookieSettings{Secure: cfg.CookieSecure, Domain: cfg.CookieDomain},
		resolvers: map[string]web.Resolver{},
	}
	view.Follows = a.Access.Follows
	a.Services, err = NewServices(cfg, gdb, log, func(pattern string) bool { return a.Access.Registered(fiber.MethodGet, pattern) })
	if err != nil {
		return nil, err
	}
	// After the handlers that write the ledger have returned (Close runs
	// the closers in reverse).
	a.onShutdown(a.Services.Close)
	for _, w := range a.Services.Workers() {
		a.AddWorker(w)
	}
	a.resolvers[policies.KindStaff] = func(ctx context.Context, id, sid int64) (*policies.Principal, error) {
		u, err := a.Staff.FindByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if !u.Active {
			return nil, nil
		}
		return u.Principal(sid), nil
	}
	a.resolvers[policies.KindProvider] = a.Onboarding.ResolvePrincipal
	a.resolvers[policies.KindCustomer] = a.Consents.ResolveCustomer

	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if sqlDB, err := gdb.DB(); err == nil {
		a.Registry.MustRegister(collectors.NewDBStatsCollector(sqlDB, "cardata"))
	}
	a.Services.Register(a.Registry)
	metrics := web.NewMetrics(a.Registry)

	a.Fiber = fiber.New(fiber.Config{
		AppName:               "cardata",
		ErrorHandler:          web.ErrorHandler(log, view),
		DisableStartupMessage: true,
		BodyLimit:             17 << 20, // the ingest accepts 16 MiB; routes enforce their own limits
		ReadTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		// Routes match exactly as registered: the guard authorizes the route
		// the router matched, so no other spelling may reach one (see
		// web.CanonicalPath for the spellings that are redirected).
		CaseSensitive: true,
		StrictRouting: true,
		ProxyHeader:   "",
	})
	f := a.Fiber
	f.Use(web.RequestContext(cfg.TrustedProxies), web.AccessLog(log, metrics), web.Recover(log))
	f.Use(web.SecurityHeaders(a.Cookies, identityOrigins(cfg)...))
	f.Use(web.ValidInput())
	f.Use(web.CanonicalPath())
	f.Use(web.Sessions(a.Sessions, a.resolvers))
	// Machine principals (provider API bearer tokens); the guard in front of
	// each route's handlers reads the principal this sets.
	f.Use(func(c *fiber.Ctx) error {
		if a.bearer == nil {
			return c.Next()
		}
		return a.bearer(c)
	})

	// Operational endpoints: open, bound to LISTEN_ADDR (loopback by default).
	// /metrics is not among them: it reveals internals, so it has its own
	// listener (METRICS_ADDR, see ServeListener).
	f.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	f.Get("/readyz", a.readyz)
	f.Use("/static", filesystem.New(filesystem.Config{Root: httpFS(templates.Static()), MaxAge: 3600}))
	f.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/admin", fiber.StatusSeeOther) })
	for _, p := range []string{"/healthz", "/readyz", "/"} {
		a.Access.Public(fiber.MethodGet, p)
	}

	// Every unsafe request carries a CSRF token, whatever its path spelling;
	// machine surfaces (API, OAuth, ingest) authenticate with bearer tokens
	// and never read the session cookie, and static files and probes get no
	// cookie.
	f.Use(web.CSRF(a.Cookies, "/api/", "/oauth/", "/ingest/", "/static/", "/healthz", "/readyz", "/metrics"))

	adminH := &admin.Handlers{
		DB: gdb, View: view, Staff: a.Staff, Sessions: a.Sessions,
		StartSession: func(c *fiber.Ctx, token string) { web.SetSessionCookie(c, a.Cookies, token, cfg.SessionMaxAge) },
		EndSession:   func(c *fiber.Ctx) { web.ClearSessionCookie(c, a.Cookies) },
	}
	if adminH.OIDC, err = a.staffSignIn(); err != nil {
		return nil, err
	}
	adminH.RoleClaim, adminH.RoleMap = cfg.StaffOIDC.RoleClaim, cfg.StaffOIDC.RoleMap
	adminH.Factors, adminH.TOTPRequiredRoles = a.SecondFactors, cfg.StaffTOTPRequiredRoles
	// LOCAL_STAFF_SIGNIN=off: the company's provider is the only way in
	// (config refuses it without one).
	if adminH.LocalSignInOff = !cfg.LocalStaffSignIn; adminH.LocalSignInOff && view.SignInWith != nil {
		offer := view.SignInWith["admin/login"]
		offer.NoPasswords = true
		view.SignInWith["admin/login"] = offer
	}
	a.dashboard = adminH
	adminGroup := a.surface("/admin")
	adminH.Routes(adminGroup)
	// The language switch in every page's header (anonymous visitors too).
	f.Post(web.LangPath, web.LanguageSwitch(a.Cookies, a.rememberLang))
	a.Access.Public(fiber.MethodPost, web.LangPath)
	a.Access.Public(fiber.MethodGet, "/admin/login")
	a.Access.Public(fiber.MethodPost, "/admin/login")
	a.Access.Public(fiber.MethodGet, "/admin/oidc/login")
	a.Access.Public(fiber.MethodGet, "/admin/oidc/callback")
	for _, r := range admin.SecondStepRoutes {
		a.Access.Public(r[0], r[1])
	}
	view.Nav = admin.Nav()

	// Module surfaces, on the ready services. Each mount function lives in
	// its own file; their order is only that of the navigation's sections.
	for _, mount := range []func() error{a.mountJobs, a.mountOnboarding, a.mountAPI, a.mountPortals, a.mountIngest, a.mountSupport, a.mountConsent, a.mountBilling, a.mountSandbox, a.mountSearch} {
		if err := mount(); err != nil {
			return nil, err
		}
	}
	// Deny by default: every route gets the guard in front of its handlers.
	a.Access.Seal(f)
	return a, nil
}

// addWidgets puts a module's cards on the staff dashboard (/admin).
func (a *App) addWidgets(ws ...admin.Widget) {
	a.dashboard.Widgets = append(a.dashboard.Widgets, ws...)
}

// surface is the route group of a browser surface: every route mounted
// through it also refuses a request without a principal of the surface's
// kind (web.Surface), the sign-in pages excepted.
func (a *App) surface(prefix string) fiber.Router {
	g := a.Fiber.Group(prefix)
	switch prefix {
	case "/admin":
		return web.Surface(g, prefix, policies.KindStaff, "/admin/login", "/admin/oidc/login", "/admin/oidc/callback",
			"/admin/login/code", "/admin/login/enrol")
	case "/portal":
		return web.Surface(g, prefix, policies.KindProvider, "/portal/login", "/portal/invitations/:token",
			"/portal/oidc/login", "/portal/oidc/callback", "/portal/login/code")
	case "/my":
		return web.Surface(g, prefix, policies.KindCustomer, "/my/login", "/my/oidc/login", "/my/oidc/callback")
	}
	panic("app: no browser surface " + prefix)
}

// rememberLang stores the language a signed-in person chose with the
// switch on their account (staff user, provider user, customer account).
// Only a browser session's principal has an account to remember it on: an
// API client's bearer token is a provider principal too, but its ID is not
// a provider user's.
func (a *App) rememberLang(ctx context.Context, p *policies.Principal, lang i18n.Lang) error {
	if p.SessionID == 0 {
		return nil
	}
	switch p.Kind {
	case policies.KindStaff:
		return a.Staff.SetLang(ctx, p.ID, string(lang))
	case policies.KindProvider:
		return a.Onboarding.SetUserLang(ctx, p.ID, string(lang))
	case policies.KindCustomer:
		return a.Consents.SetCustomerLang(ctx, p.ID, string(lang))
	}
	return nil
}

func (a *App) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	sqlDB, err := a.DB.DB()
	if err == nil {
		err = sqlDB.PingContext(ctx)
	}
	if err != nil {
		return errs.New(errs.Unavailable, "database_unreachable", "database unreachable")
	}
	if err := db.CheckSchema(ctx, a.DB); err != nil {
		if errors.Is(err, db.ErrSchemaOutdated) {
			return errs.New(errs.Unavailable, "schema_outdated", "%s", err.Error())
		}
		return errs.New(errs.Unavailable, "database_unreachable", "cannot read the schema version")
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// AddWorker registers a background loop run by Serve until shutdown.
func (a *App) AddWorker(w func(ctx context.Context)) { a.workers = append(a.workers, w) }

// onShutdown registers f with Close: it stops something New or a handler
// started (the ledger writer, invoice runs started from the UI, the fast
// reads' leaders) and returns once its goroutines have.
func (a *App) onShutdown(f func()) { a.closers = append(a.closers, f) }

// Close stops every goroutine New, the mounts and the handlers started and
// waits until they have returned, in the reverse order of their mounts.
// ServeListener calls it at the end of its shutdown; an app that was never
// served (the CLI, tests) calls it itself. It is safe to call more than
// once; the app serves no more after it. The caller closes the database
// afterwards.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		for i := len(a.closers) - 1; i >= 0; i-- {
			a.closers[i]()
		}
	})
}

// Serve listens on LISTEN_ADDR (and METRICS_ADDR) until ctx ends, then shuts
// down gracefully: stop accepting, finish in-flight requests, stop workers,
// all within SHUTDOWN_TIMEOUT. The caller closes the database afterwards.
func (a *App) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.Cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", a.Cfg.ListenAddr, err)
	}
	return a.ServeListener(ctx, ln, ready)
}

// ServeListener is Serve on an existing listener (tests pass port 0). The
// metrics listener on METRICS_ADDR is bound before ready is called, and shut
// down with the server.
func (a *App) ServeListener(ctx context.Context, ln net.Listener, ready func(addr string)) error {
	a.Access.Seal(a.Fiber) // routes added after New are guarded too
	msrv, err := a.serveMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range a.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w(wctx) }()
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Fiber.Listener(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		stopWorkers()
		if msrv != nil {
			msrv.Close()
			<-a.metricsDone
		}
		wg.Wait()
		a.Close()
		return err
	case <-ctx.Done():
	}
	a.Log.Info("shutting down", "timeout", a.Cfg.ShutdownTimeout.String())
	deadline := time.Now().Add(a.Cfg.ShutdownTimeout)
	shutErr := a.Fiber.ShutdownWithTimeout(a.Cfg.ShutdownTimeout)
	// A shutdown that comes before fasthttp has registered the listener
	// closes nothing, and Serve would then accept on it for ever after.
	ln.Close()
	if msrv != nil {
		mctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := msrv.Shutdown(mctx); err != nil {
			msrv.Close()
		}
		cancel()
		a.metricsAddr.Store(nil)
	}
	stopWorkers()
	// Then what New and the handlers started: it may still be at work for
	// a request that has been answered (an invoice run, a read batch).
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-errc // the listener's goroutine returns once ln is closed
		if msrv != nil {
			<-a.metricsDone
		}
		wg.Wait()
		a.Close()
	}()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		a.Log.Warn("background workers did not stop in time")
	}
	return shutErr
}

// MetricsHandler is the Prometheus exposition of the app's registry. It is
// served on METRICS_ADDR only, never on the public listener.
func (a *App) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{})
}

// MetricsAddr is the address the metrics listener is bound to, known from
// the moment ServeListener calls ready until shutdown; "" when
// METRICS_ADDR is off.
func (a *App) MetricsAddr() string {
	if p := a.metricsAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// serveMetrics binds METRICS_ADDR and serves GET /metrics there; nil when
// it is off.
func (a *App) serveMetrics() (*http.Server, error) {
	if a.Cfg.MetricsAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.Cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR %s: %w", a.Cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	addr := ln.Addr().String()
	a.metricsAddr.Store(&addr)
	a.Log.Info("metrics listening", "addr", addr)
	a.metricsDone = make(chan struct{})
	go func() {
		defer close(a.metricsDone)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	return srv, nil
}
