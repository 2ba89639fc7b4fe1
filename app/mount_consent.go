package app

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/app/customer"
	"cardata/app/portal"
	"cardata/app/web"
	"cardata/jobs"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/consent"
)

// mountConsent mounts data containers (portal, staff review, provider
// API), the customer portal /my with its reports, the staff's customer
// requests, and the consent and container jobs.
func (a *App) mountConsent() error {
	cs, ct := a.Consents, a.Containers
	// Partner portal and provider API: the provider's own containers and consents.
	ph := &portal.ContainerHandlers{View: a.View, Containers: ct, Consents: cs, Catalog: a.Catalog}
	ph.Routes(a.surface("/portal"))
	ph.APIRoutes(a.Fiber)
	a.View.AddNav("Partner portal", portal.ContainerNav())

	// Staff: container review, customer requests.
	staffGroup := a.surface("/admin")
	(&admin.ContainerHandlers{View: a.View, Containers: ct}).Routes(staffGroup)
	(&admin.CustomerHandlers{View: a.View, Consents: cs, Location: a.Cfg.BillingTimezone}).Routes(staffGroup)
	a.View.AddNav("Partners", admin.ContainerNav())
	a.View.AddNav("Customers", admin.CustomerNav())

	// Customer portal.
	ch := &customer.Handlers{View: a.View, Consents: cs, Sessions: a.Sessions, Location: a.Cfg.BillingTimezone,
		StartSession: func(c *fiber.Ctx, token string) { web.SetSessionCookie(c, a.Cookies, token, a.Cfg.SessionMaxAge) },
		EndSession:   func(c *fiber.Ctx) { web.ClearSessionCookie(c, a.Cookies) },
	}
	ch.Routes(a.surface("/my"))
	for _, r := range customer.PublicRoutes {
		a.Access.Public(r[0], r[1])
	}
	for _, item := range customer.Nav() {
		a.View.AddNav("My CarData", item)
	}

	for _, j := range append(consentJobs(cs), containerJobs(ct)...) {
		if err := a.Jobs.Register(j); err != nil {
			return err
		}
	}
	return nil
}

// consentJobs are the consent module's scheduled jobs.
func consentJobs(cs *consent.Service) []jobs.Job {
	return []jobs.Job{{
		Name:  "consent.expire",
		Title: "Consent expiry",
		Description: "Lets consent requests unanswered for 30 days expire, ends grants past their end date, " +
			"and ends the consents of customers who no longer hold the vehicle.",
		Spec: "*/10 * * * *", Timeout: 20 * time.Minute, CatchUp: time.Hour,
		Run: func(ctx context.Context, r *jobs.Run) error {
			x, err := cs.ExpireDue(ctx, 1000)
			r.Set("requests_expired", int64(x.Unanswered))
			r.Set("grants_expired", int64(x.EndDateReached))
			r.Set("former_holders_ended", int64(x.FormerHolder))
			return err
		},
	}, {
		Name:        "consent.reports_build",
		Title:       "Data report archives",
		Description: "Builds the data-report archives of large accounts requested by customers or support.",
		Spec:        "* * * * *", Timeout: 30 * time.Minute,
		Roles: []string{policies.RoleSupport},
		Run: func(ctx context.Context, r *jobs.Run) error {
			built, failed, err := cs.BuildPendingReports(ctx, 50)
			r.Set("built", int64(built))
			r.Set("failed", int64(failed))
			return err
		},
	}, {
		Name:        "consent.reports_purge",
		Title:       "Data report clean-up",
		Description: "Deletes data-report archives older than 7 days and customer sign-in attempts older than a day.",
		Spec:        "40 3 * * *", Timeout: 10 * time.Minute, CatchUp: 24 * time.Hour,
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := cs.PurgeExpiredReports(ctx)
			r.Set("reports_deleted", n)
			if err != nil {
				return err
			}
			m, err := cs.PurgeLoginAttempts(ctx)
			r.Set("login_attempts_deleted", m)
			return err
		},
	}}
}

// containerJobs are the container module's scheduled jobs.
func containerJobs(ct *containers.Service) []jobs.Job {
	return []jobs.Job{{
		Name:  "containers.purge-withdrawn",
		Title: "Purge of withdrawn containers",
		// The decision (onboarding/containers.PurgeWithdrawn): 29 days after
		// its withdrawal a container disappears from its provider's portal
		// and API; versions, keys and ended consents stay for the ledger,
		// invoices (§ 147 AO) and transaction reports; staff still see it.
		Description: "Purges data containers withdrawn at least 29 days ago: hidden from their provider (portal and API), " +
			"open consent requests expired, queued pushes dropped; versions, keys and ended consents are kept for invoices " +
			"and transaction reports, and staff still see the container as purged.",
		Spec: "30 4 * * *", Timeout: 30 * time.Minute, CatchUp: 24 * time.Hour,
		Run: func(ctx context.Context, r *jobs.Run) error {
			res, err := ct.PurgeWithdrawn(ctx, 100, func(done int) { r.Progress(ctx, int64(done), 0, "purging withdrawn containers") })
			r.Set("containers_purged", int64(res.Purged))
			r.Set("requests_expired", int64(res.RequestsExpired))
			r.Set("pushes_dropped", res.PushesDropped)
			return err
		},
	}}
}
