package app

import (
	"context"
	"fmt"
	"time"

	"cardata/admin"
	"cardata/jobs"
	"cardata/policies"
)

// LoginAttemptRetention is how long recorded sign-in attempts are kept.
const LoginAttemptRetention = 30 * 24 * time.Hour

// mountJobs registers the platform's own jobs on the job registry (a.Jobs,
// built with the e-mail outbox worker in services.go) and mounts the jobs
// and outbox pages.
//
// Every module registers its own jobs in its mount function, with a body that
// calls its domain service, for example in mount_billing.go:
//
//	a.Jobs.Register(jobs.Job{Name: "billing.invoice_run", Title: "Monthly invoice run",
//		Spec: "0 3 1 * *", CatchUp: 7 * 24 * time.Hour, Roles: []string{policies.RoleFinance},
//		Run: func(ctx context.Context, r *jobs.Run) error { ... }})
//
// The modules' jobs are registered in their mount functions: billing
// (invoice run, sending, reminders), support (SLA warnings), the provider API
// (clean-up; pushes run as a continuous worker), consent (expiry, report
// archives), containers.purge-withdrawn (mount_consent.go, 29 days after
// withdrawal) and ingest (reading-history retention).
func (a *App) mountJobs() error {
	for _, j := range append(a.PlatformJobs(), a.outboxPurgeJob()) {
		if err := a.Jobs.Register(j); err != nil {
			return err
		}
	}
	h := &admin.JobsHandlers{DB: a.DB, View: a.View, Jobs: a.Jobs}
	h.Routes(a.surface("/admin"))
	for _, item := range admin.JobsNav() {
		a.View.AddNav("System", item)
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
			Description: "Deletes recorded sign-in attempts older than 30 days (the throttle only looks at the last minutes).",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := s.Staff.PurgeLoginAttempts(ctx, time.Now().Add(-LoginAttemptRetention))
				r.Set("attempts_removed", n)
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
func (a *App) outboxPurgeJob() jobs.Job {
	keep := a.Cfg.OutboxRetention
	if keep <= 0 {
		keep = 90 * 24 * time.Hour
	}
	return jobs.Job{Name: "outbox.purge", Title: "E-mail outbox clean-up", Spec: "50 3 * * *", CatchUp: 24 * time.Hour,
		Timeout: 30 * time.Minute,
		Description: fmt.Sprintf("Deletes e-mails sent (or kept locally) more than %s ago (OUTBOX_RETENTION); "+
			"pending and failed e-mails are kept.", retentionWords(keep)),
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := jobs.PurgeSentEmails(ctx, a.DB, time.Now().Add(-keep), 1000)
			r.Set("emails_deleted", n)
			return err
		}}
}

// retentionWords is a retention period in days when it is whole days.
func retentionWords(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := int(d / (24 * time.Hour)); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
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
