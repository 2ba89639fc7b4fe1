package app

import (
	"context"
	"time"

	"cardata/app/providerapi"
	"cardata/billing"
	"cardata/jobs"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/consent"
)

// LoginAttemptRetention is how long recorded sign-in attempts are kept.
const LoginAttemptRetention = 30 * 24 * time.Hour

// registerJobs puts every scheduled job of the app on the registry
// (s.Jobs), each with a body that calls its domain service; the mount
// functions only mount the pages. The platform's own jobs (sessions,
// sign-in attempts, the audit chain, the e-mail outbox), billing (invoice
// run, sending, reminders), support (SLA warnings, auto-close), the
// provider API (clean-up; pushes run as a continuous worker, Workers),
// consent (expiry, report archives), containers (purge of withdrawn ones,
// 29 days after withdrawal) and ingest (reading-history retention).
func (s *Services) registerJobs() error {
	all := append(s.PlatformJobs(), s.outboxPurgeJob(), s.apiPurgeJob(), s.ingestJob(), s.sandboxJob())
	all = append(all, s.supportJobs()...)
	all = append(all, consentJobs(s.Consents)...)
	all = append(all, containerJobs(s.Containers)...)
	all = append(all, s.billingJobs()...)
	for _, j := range all {
		if err := s.Jobs.Register(j); err != nil {
			return err
		}
	}
	return nil
}

// PlatformJobs are the jobs of the platform itself (sessions, sign-in
// attempts, the audit trail); the demo runs each once.
func (s *Services) PlatformJobs() []jobs.Job {
	return []jobs.Job{
		{Name: "sessions.purge", Title: "Session clean-up", Spec: "*/15 * * * *",
			Description: "Deletes login sessions past their idle or absolute limit.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := s.Sessions.Purge(ctx)
				r.Set("sessions_removed", n)
				return err
			}},
		{Name: "login_attempts.purge", Title: "Sign-in attempt clean-up", Spec: "20 3 * * *", CatchUp: 24 * time.Hour,
			Description: "Deletes recorded sign-in attempts (passwords and one-time codes) older than 30 days (the throttle only looks at the last minutes).",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := s.Staff.PurgeLoginAttempts(ctx, time.Now().Add(-LoginAttemptRetention))
				r.Set("attempts_removed", n)
				if err != nil {
					return err
				}
				m, err := s.SecondFactors.PurgeAttempts(ctx, time.Now().Add(-LoginAttemptRetention))
				r.Set("code_attempts_removed", m)
				return err
			}},
		{Name: "audit.verify", Title: "Audit-chain verification", Spec: "40 4 * * *", CatchUp: 24 * time.Hour,
			Description: "Walks the audit trail's hash chain; when it is broken, e-mails every administrator and fails.",
			Run: jobs.AuditChainCheck{DB: s.DB, Recipients: s.auditAdmins, PublicURL: s.Cfg.PublicURL,
				Location: s.Cfg.BillingTimezone, Log: s.log}.Run},
	}
}

// outboxPurgeJob deletes sent e-mails older than OUTBOX_RETENTION. It is
// not one of PlatformJobs, which the demo runs once each.
func (s *Services) outboxPurgeJob() jobs.Job {
	keep := s.Cfg.OutboxRetention
	if keep <= 0 {
		keep = 90 * 24 * time.Hour
	}
	desc, args := outboxPurgeDescription(keep)
	return jobs.Job{Name: "outbox.purge", Title: "E-mail outbox clean-up", Spec: "50 3 * * *", CatchUp: 24 * time.Hour,
		Timeout: 30 * time.Minute, Description: desc, DescriptionArgs: args,
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := jobs.PurgeSentEmails(ctx, s.DB, time.Now().Add(-keep), 1000)
			r.Set("emails_deleted", n)
			return err
		}}
}

// outboxPurgeDescription is the outbox clean-up's description for a
// retention of keep: a catalog id (messages.*.toml) and its parameters,
// whole days as Count (one day, n days), any other period as Period
// (Go's "36h0m0s").
func outboxPurgeDescription(keep time.Duration) (string, []any) {
	if keep%(24*time.Hour) == 0 {
		return "Deletes e-mails sent (or kept locally) more than {{.Count}} days ago (OUTBOX_RETENTION); pending and failed e-mails are kept.",
			[]any{"Count", int(keep / (24 * time.Hour))}
	}
	return "Deletes e-mails sent (or kept locally) more than {{.Period}} ago (OUTBOX_RETENTION); pending and failed e-mails are kept.",
		[]any{"Period", keep.String()}
}

// auditAdmins are the active administrators, e-mailed when the audit
// chain is broken.
func (s *Services) auditAdmins(ctx context.Context) ([]jobs.AlertRecipient, error) {
	admins, err := s.Staff.Active(ctx, policies.RoleAdmin)
	out := make([]jobs.AlertRecipient, len(admins))
	for i, u := range admins {
		out[i] = jobs.AlertRecipient{ID: u.ID, Name: u.Name, Email: u.Email}
	}
	return out, err
}

// apiPurgeJob deletes the provider API's expired access tokens and old
// Idempotency-Key answers.
func (s *Services) apiPurgeJob() jobs.Job {
	return jobs.Job{
		Name: "providerapi.purge", Title: "Provider API clean-up", Spec: "7 * * * *", Timeout: 5 * time.Minute,
		Description: "Deletes expired access tokens and Idempotency-Key answers older than 24 hours.",
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := s.Tokens.Purge(ctx)
			r.Set("tokens_removed", n)
			if err != nil {
				return err
			}
			m, err := providerapi.PurgeIdempotencyKeys(ctx, s.DB, time.Now())
			r.Set("idempotency_keys_removed", m)
			return err
		},
	}
}

// ingestJob keeps the reading history's partitions: the coming days
// created, those past the retention dropped.
func (s *Services) ingestJob() jobs.Job {
	svc := s.Ingest
	return jobs.Job{
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
	}
}

// sandboxJob keeps the providers' sandboxes alive (issue 19): a missing
// simulated fleet is created for every provider with a sandbox client,
// every simulated vehicle that can send gets a fresh reading snapshot
// through the ingest (so pushes follow as in production), and the
// simulated customers answer the requests that have waited a moment, by
// the rule (VIN ending in an odd digit grants, even denies).
func (s *Services) sandboxJob() jobs.Job {
	return jobs.Job{
		Name: "sandbox.simulate", Title: "Sandbox simulation", Spec: "* * * * *", Timeout: 50 * time.Second,
		Description: "Keeps the providers' simulated fleets fresh: creates a missing fleet, sends a reading of every simulated vehicle through the ingest, and lets simulated customers answer consent requests (VIN ending odd: grant, even: deny). Never billed.",
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := s.RunSandbox(ctx)
			r.Set("fleets_created", int64(n.Fleets))
			r.Set("readings", int64(n.Readings))
			r.Set("granted", int64(n.Granted))
			r.Set("denied", int64(n.Denied))
			return err
		},
	}
}

// SandboxRun counts what one run of the sandbox job did.
type SandboxRun struct{ Fleets, Readings, Granted, Denied int }

// RunSandbox is the sandbox job's body (tests call it to advance the
// simulation at once).
func (s *Services) RunSandbox(ctx context.Context) (SandboxRun, error) {
	var out SandboxRun
	ids, err := s.Onboarding.SandboxClientProviders(ctx)
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		n, err := s.Vehicles.EnsureSandboxFleet(ctx, id)
		if err != nil {
			return out, err
		}
		if n > 0 {
			out.Fleets++
		}
	}
	// Answers first: a grant given now covers the readings sent next.
	if out.Granted, out.Denied, err = s.Consents.AnswerSandboxRequests(ctx); err != nil {
		return out, err
	}
	out.Readings, err = s.Ingest.SimulateSandbox(ctx)
	return out, err
}

// supportJobs are the desk's scheduled jobs.
func (s *Services) supportJobs() []jobs.Job {
	svc := s.Support
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

// billingJobs are the monthly invoice run, sending finalized invoices and
// the payment reminders.
func (s *Services) billingJobs() []jobs.Job {
	return []jobs.Job{
		{Name: "invoice.monthly_run", Title: "Monthly invoice run", Spec: "0 3 1 * *", Roles: []string{policies.RoleFinance},
			CatchUp: 14 * 24 * time.Hour, Timeout: 6 * time.Hour,
			Description: "On the 1st at 03:00 (Berlin) creates the previous month's draft invoices from the delivery ledger and billable support items; idempotent, so a catch-up or a second run changes nothing.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				period := billing.PeriodOf(time.Now(), s.Cfg.BillingTimezone).Prev()
				if r.ScheduledFor != nil {
					period = billing.PeriodOf(*r.ScheduledFor, s.Cfg.BillingTimezone).Prev()
				}
				run, err := s.Billing.RunPeriod(ctx, period.String(), billing.RunOptions{Trigger: billing.TriggerSchedule,
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
				res, err := s.Billing.SendFinalized(ctx)
				r.Set("sent", int64(res.Sent))
				r.Set("skipped", int64(res.Skipped))
				r.Set("failed", int64(res.Failed))
				return err
			}},
		{Name: "invoice.reminders", Title: "Payment reminders", Spec: "30 8 * * 1-5", Roles: []string{policies.RoleFinance},
			Description: "E-mails a reminder for every overdue, unpaid invoice not reminded in the last 7 days.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := s.Billing.SendReminders(ctx)
				r.Set("reminders_sent", int64(n))
				return err
			}},
	}
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
