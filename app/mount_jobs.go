package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"

	"cardata/admin"
	"cardata/admin/staff"
	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
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
	for _, j := range append(a.platformJobs(), a.outboxPurgeJob()) {
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

// platformJobs are the jobs of the platform itself (sessions, sign-in
// attempts, the audit trail).
func (a *App) platformJobs() []jobs.Job {
	return []jobs.Job{
		{Name: "sessions.purge", Title: "Session clean-up", Spec: "*/15 * * * *",
			Description: "Deletes login sessions past their idle or absolute limit.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := a.Sessions.Purge(ctx)
				r.Set("sessions_removed", n)
				return err
			}},
		{Name: "login_attempts.purge", Title: "Sign-in attempt clean-up", Spec: "20 3 * * *", CatchUp: 24 * time.Hour,
			Description: "Deletes recorded sign-in attempts older than 30 days (the throttle only looks at the last minutes).",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := a.Staff.PurgeLoginAttempts(ctx, time.Now().Add(-LoginAttemptRetention))
				r.Set("attempts_removed", n)
				return err
			}},
		{Name: "audit.verify", Title: "Audit-chain verification", Spec: "40 4 * * *", CatchUp: 24 * time.Hour,
			Description: "Walks the audit trail's hash chain; when it is broken, e-mails every administrator and fails.",
			Run:         a.verifyAuditChain},
	}
}

// outboxPurgeJob deletes sent e-mails older than OUTBOX_RETENTION. It is
// not one of platformJobs, which the demo runs once each.
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

// verifyAuditChain is the body of audit.verify.
func (a *App) verifyAuditChain(ctx context.Context, r *jobs.Run) error {
	r.Progress(ctx, 0, 0, "verifying the hash chain")
	n, broken, err := audit.Verify(ctx, a.DB)
	r.Set("entries_checked", int64(n))
	if err != nil {
		return err
	}
	if broken == nil {
		r.Progress(ctx, int64(n), int64(n), "chain intact")
		return nil
	}
	var admins []staff.User
	for offset := 0; ; offset += 200 {
		page, total, err := a.Staff.List(ctx, staff.Filter{Role: policies.RoleAdmin, Offset: offset, Limit: 200})
		if err != nil {
			return err
		}
		for _, u := range page {
			if u.Active {
				admins = append(admins, u)
			}
		}
		if int64(offset+200) >= total {
			break
		}
	}
	day := time.Now().In(a.Cfg.BillingTimezone).Format("2006-01-02")
	err = a.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, u := range admins {
			err := jobs.Enqueue(ctx, tx, jobs.Message{
				Kind: "audit.chain_broken", To: u.Email, ObjectType: "audit_entry", ObjectID: strconv.FormatInt(broken.ID, 10),
				Subject: fmt.Sprintf("ALERT: the audit trail is broken at entry %d", broken.ID),
				Body: fmt.Sprintf("Hello %s,\n\nthe daily verification of the audit trail found the hash chain broken at entry %d:\n%s\n\n"+
					"%d entries were checked. Entries may have been altered or removed outside the application. "+
					"Investigate before trusting the trail: %s/admin/audit\n\nRun `cardata audit verify` to check again.\n",
					u.Name, broken.ID, broken.Reason, n, a.Cfg.PublicURL),
				// One alert per admin, broken entry and day, however often the job runs.
				DedupeKey: fmt.Sprintf("audit.chain_broken:%d:%s:%d", broken.ID, day, u.ID),
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.Set("alerts_enqueued", int64(len(admins)))
	if len(admins) == 0 {
		a.Log.Error("audit chain broken and no active administrator to alert", "entry", broken.ID)
	}
	return fmt.Errorf("audit chain broken at entry %d: %s", broken.ID, broken.Reason)
}
