package app

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/app/ingest"
	"cardata/jobs"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// mountIngest mounts the telemetry ingest, the catalog API and the staff's
// vehicle and catalog pages, and registers the history maintenance job.
//
// Authorization of the ingest: the route guard runs before any group
// middleware and only knows sessions, so POST /ingest/v1/signals is public to
// the guard; the ingest's own middleware then resolves the bearer token to a
// gateway principal and checks it against policies/rules/40_vehicles.csv
// (p, ingest_gateway, /ingest/v1/*, POST). Cookies are never read there and
// CSRF does not apply (app.go only guards browser prefixes).
func (a *App) mountIngest() error {
	cat := catalog.Default()
	ctx := policies.WithPrincipal(context.Background(), policies.System("boot"))
	if err := cat.Sync(ctx, a.DB); err != nil {
		return err
	}
	a.Vehicles = &vehicles.Service{DB: a.DB, Catalog: cat}
	budget, err := a.poolBudget()
	if err != nil {
		return err
	}
	// The ingest's share of the pool: batches written at once (each holds
	// one connection for its COPY and apply); more wait their turn.
	a.Ingest = ingest.New(a.DB, ingest.Options{Retention: a.Cfg.ReadingsRetention, MaxWriters: budget.Ingest})
	a.Ingest.Register(a.Registry)
	if _, err := a.Ingest.EnsurePartitions(ctx, time.Now(), 3); err != nil {
		return err
	}

	a.AddWorker(func(ctx context.Context) {
		if n, err := a.Ingest.WarmVINs(ctx); err != nil {
			a.Log.Warn("ingest: warming the VIN cache failed; it fills as batches arrive", "error", err.Error())
		} else {
			a.Log.Info("ingest: VIN cache warm", "vehicles", n)
		}
	})

	// The master-data API (vehicles, subscriptions, account mappings) is
	// mounted first: its own bearer check answers its paths, so the
	// gateways' check below never sees a master-data token. A change of
	// owner ends the former owner's consents at once, as the consent
	// expiry job does.
	a.Vehicles.FormerOwnerConsents = func(ctx context.Context) (int, error) {
		x, err := a.newConsentService().ExpireDue(ctx, 1000)
		return x.FormerHolder, err
	}
	md := &ingest.MasterDataHandler{Svc: a.Ingest, Vehicles: a.Vehicles}
	a.Access.Public(fiber.MethodGet, md.Mount(a.Fiber))

	h := &ingest.Handler{Svc: a.Ingest, Allowed: a.Enforcer.Allowed}
	// The group's bearer check sets the gateway principal; the route guard
	// then authorizes it by the policy like every other principal.
	h.Routes(a.Fiber.Group("/ingest/v1"))

	// The catalog is public reference data for now; it moves behind provider
	// OAuth together with the rest of /api/v1 (provider API issue).
	a.Fiber.Get("/api/v1/catalog", ingest.CatalogHandler(cat))
	a.Access.Public(fiber.MethodGet, "/api/v1/catalog")

	staffGroup := a.surface("/admin")
	(&admin.VehicleHandlers{View: a.View, Vehicles: a.Vehicles}).Routes(staffGroup)
	(&admin.CatalogHandlers{View: a.View, Catalog: cat}).Routes(staffGroup)
	a.View.AddNav("Data", admin.VehicleNav())
	a.View.AddNav("Data", admin.CatalogNav())

	if a.Jobs != nil {
		svc := a.Ingest
		return a.Jobs.Register(jobs.Job{
			Name:        "ingest.maintain",
			Title:       "Reading history maintenance",
			Description: "Creates the reading-history partitions for the coming days and drops those older than the retention period, with old vehicle events.",
			Spec:        "17 * * * *",
			Timeout:     10 * time.Minute,
			CatchUp:     2 * time.Hour,
			Run: func(ctx context.Context, r *jobs.Run) error {
				created, dropped, events, err := svc.Maintain(ctx, time.Now())
				r.Set("partitions_created", int64(created))
				r.Set("partitions_dropped", int64(len(dropped)))
				r.Set("events_deleted", events)
				return err
			},
		})
	}
	return nil
}
