package app

import (
	"context"
	"time"

	"cardata/admin"
	"cardata/admin/support"
	"cardata/app/portal"
	"cardata/jobs"
)

// mountSupport mounts the support desk: the staff queue and ticket pages
// (/admin/tickets), the provider's tickets in the portal (/portal/tickets)
// and in the provider API (/api/v1/tickets), and its two jobs.
func (a *App) mountSupport() error {
	svc := a.Support
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
