package app

import (
	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/app/ingest"
)

// mountIngest mounts the telemetry ingest, the catalog API and the staff's
// vehicle and catalog pages.
//
// Authorization of the ingest: the route guard runs before any group
// middleware and only knows sessions, so POST /ingest/v1/signals is public to
// the guard; the ingest's own middleware then resolves the bearer token to a
// gateway principal and checks it against policies/rules/40_vehicles.csv
// (p, ingest_gateway, /ingest/v1/*, POST). Cookies are never read there and
// CSRF does not apply (app.go only guards browser prefixes).
func (a *App) mountIngest() error {
	// The master-data API (vehicles, subscriptions, account mappings) is
	// mounted first: its own bearer check answers its paths, so the
	// gateways' check below never sees a master-data token.
	md := &ingest.MasterDataHandler{Svc: a.Ingest, Vehicles: a.Vehicles}
	a.Access.Public(fiber.MethodGet, md.Mount(a.Fiber))

	h := &ingest.Handler{Svc: a.Ingest, Allowed: a.Enforcer.Allowed}
	// The group's bearer check sets the gateway principal; the route guard
	// then authorizes it by the policy like every other principal.
	h.Routes(a.Fiber.Group("/ingest/v1"))

	// The catalog is public reference data for now; it moves behind provider
	// OAuth together with the rest of /api/v1 (provider API issue).
	a.Fiber.Get("/api/v1/catalog", ingest.CatalogHandler(a.Catalog))
	a.Access.Public(fiber.MethodGet, "/api/v1/catalog")

	staffGroup := a.surface("/admin")
	(&admin.VehicleHandlers{View: a.View, Vehicles: a.Vehicles}).Routes(staffGroup)
	(&admin.CatalogHandlers{View: a.View, Catalog: a.Catalog}).Routes(staffGroup)
	a.View.AddNav("Data", admin.VehicleNav())
	a.View.AddNav("Data", admin.CatalogNav())

	return nil
}
