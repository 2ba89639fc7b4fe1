package app

import (
	"context"
	"time"

	"cardata/admin"
	"cardata/app/portal"
	"cardata/billing"
	"cardata/jobs"
	"cardata/policies"
)

// mountBilling mounts finance's pages (/admin/billing), the published price
// list (public: GET /price-list and GET /api/v1/price-list, one list for
// every provider), and billing's scheduled jobs.
func (a *App) mountBilling() error {
	svc := a.Billing
	// Runs started from the UI continue after their request; shutdown stops
	// them (marked interrupted), and Services.Close waits until they have
	// returned.
	shutdown, stop := context.WithCancel(context.Background())
	a.onShutdown(stop)

	pages := &admin.BillingHandlers{View: a.View, Billing: svc, Shutdown: shutdown}
	pages.Routes(a.surface("/admin"))
	for _, item := range admin.BillingNav() {
		a.View.AddNav("Finance", item)
	}

	// Providers' own invoices in the partner portal (the sent e-mails link
	// here); the ownership check is in billing's query.
	(&portal.InvoiceHandlers{View: a.View, Billing: svc}).Routes(a.surface("/portal"))
	a.View.AddNav("Partner portal", portal.InvoiceNav())

	(&portal.PriceListHandlers{View: a.View, Billing: svc, Location: a.Cfg.BillingTimezone}).Routes(a.Fiber)
	for _, r := range portal.PriceListRoutes {
		a.Access.Public(r[0], r[1])
	}

	for _, j := range a.billingJobs() {
		if err := a.Jobs.Register(j); err != nil {
			return err
		}
	}
	return nil
}

// billingJobs are the monthly invoice run, sending finalized invoices and
// the payment reminders.
func (a *App) billingJobs() []jobs.Job {
	return []jobs.Job{
		{Name: "invoice.monthly_run", Title: "Monthly invoice run", Spec: "0 3 1 * *", Roles: []string{policies.RoleFinance},
			CatchUp: 14 * 24 * time.Hour, Timeout: 6 * time.Hour,
			Description: "On the 1st at 03:00 (Berlin) creates the previous month's draft invoices from the delivery ledger and billable support items; idempotent, so a catch-up or a second run changes nothing.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				period := billing.PeriodOf(time.Now(), a.Cfg.BillingTimezone).Prev()
				if r.ScheduledFor != nil {
					period = billing.PeriodOf(*r.ScheduledFor, a.Cfg.BillingTimezone).Prev()
				}
				run, err := a.Billing.RunPeriod(ctx, period.String(), billing.RunOptions{Trigger: billing.TriggerSchedule,
					Progress: func(done, total int) {
						r.Progress(ctx, int64(done), int64(total), "invoicing "+period.String())
					}})
				if run != nil {
					r.Set("invoice_run_id", run.ID)
					r.Set("drafts_created", int64(run.InvoicesCreated))
					r.Set("providers_skipped", int64(run.ProvidersSkipped))
					r.Set("providers_failed", int64(run.ProvidersFailed))
					r.Set("records_billed", run.RecordsBilled)
				}
				return err
			}},
		{Name: "invoice.send_finalized", Title: "Send finalized invoices", Spec: "0 8-18 * * 1-5", Roles: []string{policies.RoleFinance},
			Timeout: time.Hour,
			Description: "Weekdays every hour from 08:00 to 18:00 (Berlin) e-mails every finalized, not yet sent invoice and credit note " +
				"to the buyer's billing address with its PDF and XML attached; documents without an address are skipped and counted, " +
				"one that fails does not stop the others.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				res, err := a.Billing.SendFinalized(ctx)
				r.Set("sent", int64(res.Sent))
				r.Set("skipped", int64(res.Skipped))
				r.Set("failed", int64(res.Failed))
				return err
			}},
		{Name: "invoice.reminders", Title: "Payment reminders", Spec: "30 8 * * 1-5", Roles: []string{policies.RoleFinance},
			Description: "E-mails a reminder for every overdue, unpaid invoice not reminded in the last 7 days.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := a.Billing.SendReminders(ctx)
				r.Set("reminders_sent", int64(n))
				return err
			}},
	}
}
