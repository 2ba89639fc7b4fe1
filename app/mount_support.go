package app

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/admin/support"
	"cardata/app/portal"
	"cardata/jobs"
	"cardata/policies/errs"
)

// newSupportService builds the support desk's domain service.
func (a *App) newSupportService() *support.Service {
	return &support.Service{DB: a.DB, Clock: support.NewClock(a.Cfg.BillingTimezone), PublicURL: a.Cfg.PublicURL,
		Resolver: a.resolveSupportLink}
}

// mountSupport mounts the support desk: the staff queue and ticket pages
// (/admin/tickets), the provider's tickets in the portal (/portal/tickets)
// and in the provider API (/api/v1/tickets), and its two jobs.
func (a *App) mountSupport() error {
	svc := a.newSupportService()
	staffPages := &admin.TicketHandlers{View: a.View, Support: svc}
	staffPages.Routes(a.surface("/admin"))
	for _, item := range admin.TicketNav() {
		a.View.AddNav("Support", item)
	}
	providerPages := &portal.TicketHandlers{View: a.View, Support: svc}
	providerPages.Routes(a.surface("/portal"))
	providerPages.APIRoutes(a.Fiber.Group("/api/v1"))
	a.View.AddNav("Partner portal", portal.TicketNav())
	for _, j := range a.supportJobs(svc) {
		if err := a.Jobs.Register(j); err != nil {
			return err
		}
	}
	return nil
}

// supportJobs are the desk's scheduled jobs.
func (a *App) supportJobs(svc *support.Service) []jobs.Job {
	return []jobs.Job{
		{Name: "support.sla_escalations", Title: "SLA warnings and escalations", Spec: "*/5 * * * *", Timeout: 4 * time.Minute,
			Description: "Warns the assignee and the team lead when a ticket has used 80 % of a service-level target and escalates at the breach; each alert is sent once.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				res, err := svc.CheckSLAs(ctx)
				r.Set("tickets_checked", int64(res.Checked))
				r.Set("warnings", int64(res.Warnings))
				r.Set("breaches", int64(res.Breaches))
				r.Set("emails_enqueued", int64(res.Emails))
				return err
			}},
		{Name: "support.auto_close", Title: "Close resolved tickets", Spec: "10 * * * *", CatchUp: 24 * time.Hour,
			Description: "Closes tickets resolved more than 7 days ago (providers can still reopen them within 14 days of the resolution).",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := svc.CloseResolved(ctx)
				r.Set("tickets_closed", int64(n))
				return err
			}},
	}
}

// resolveSupportLink looks up the target of a ticket link for the ticket's
// provider and names the page to open, when the viewer has one: vehicles
// (staff only), that provider's invoices, and that provider's containers.
func (a *App) resolveSupportLink(ctx context.Context, providerID int64, staff bool, kind support.LinkKind, ref string) (support.LinkTarget, error) {
	db := a.DB.WithContext(ctx)
	// page returns the first candidate page that is mounted for the viewer's
	// side: each candidate is a route pattern and the path filling it in.
	page := func(staffPages, portalPages [][2]string) string {
		pages := portalPages
		if staff {
			pages = staffPages
		}
		for _, p := range pages {
			if a.Access.Registered(fiber.MethodGet, p[0]) {
				return p[1]
			}
		}
		return ""
	}
	var out support.LinkTarget
	switch kind {
	case support.LinkVIN:
		if !staff {
			return out, nil // the vehicle registry has no provider page
		}
		var n int64
		if err := db.Table("vehicles").Where("vin = ?", ref).Count(&n).Error; err != nil {
			return out, errs.Wrap(err, "resolve vin link")
		}
		if out.Exists = n > 0; out.Exists {
			out.URL = page([][2]string{{"/admin/vehicles/:vin", "/admin/vehicles/" + ref}}, nil)
		}
	case support.LinkInvoice:
		var inv struct {
			ID     int64
			Status string
		}
		if err := db.Raw(`SELECT id, status FROM invoices WHERE number = ? AND provider_id = ? LIMIT 1`, ref, providerID).Scan(&inv).Error; err != nil {
			return out, errs.Wrap(err, "resolve invoice link")
		}
		if out.Exists = inv.ID != 0; out.Exists {
			out.Label = inv.Status
			out.URL = page([][2]string{{"/admin/billing/invoices/:id", fmt.Sprintf("/admin/billing/invoices/%d", inv.ID)}},
				[][2]string{{"/portal/invoices/:id", fmt.Sprintf("/portal/invoices/%d", inv.ID)}, {"/portal/billing/invoices/:id", fmt.Sprintf("/portal/billing/invoices/%d", inv.ID)}})
		}
	case support.LinkContainer:
		// Containers are onboarding's; until its migration is applied the
		// link shows as text, and a schema change never breaks the ticket page.
		var table *string
		if err := db.Raw(`SELECT to_regclass('public.container_versions')::text`).Scan(&table).Error; err != nil || table == nil {
			return out, errs.Wrap(err, "resolve container link")
		}
		var name string
		err := db.Raw(`SELECT v.name FROM containers c JOIN container_versions v ON v.container_id = c.id
			WHERE c.id = ?::bigint AND c.provider_id = ? ORDER BY v.version DESC LIMIT 1`, ref, providerID).Scan(&name).Error
		if err != nil {
			a.Log.Warn("support: cannot resolve a container link", "ref", ref, "err", err)
			return out, nil
		}
		if out.Exists = name != ""; out.Exists {
			out.Label = name
			out.URL = page([][2]string{{"/admin/containers/:id", "/admin/containers/" + ref}}, [][2]string{{"/portal/containers/:id", "/portal/containers/" + ref}})
		}
	}
	return out, nil
}
