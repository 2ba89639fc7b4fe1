package jobs

import (
	"context"

	"cardata/policies/errs"
)

// AuditVerifyJob is the name of the job that verifies the audit trail's
// hash chain (registered in app/jobs.go).
const AuditVerifyJob = "audit.verify"

// SystemFigures are the administrators' dashboard figures: the jobs whose
// latest run failed, the e-mails the outbox gave up on or still holds, and
// the latest verification of the audit chain. Two queries.
type SystemFigures struct {
	Jobs        int // registered jobs
	FailingJobs []Job
	// OutboxFailed are e-mails given up on; OutboxPending those waiting
	// to be sent.
	OutboxFailed, OutboxPending int64
	// AuditCheck is the latest run of the audit-chain verification (nil:
	// never ran); the chain is verified when it succeeded.
	AuditCheck *RunRecord
}

// SystemFigures computes the dashboard from the registry and the outbox.
func (s *Scheduler) SystemFigures(ctx context.Context) (*SystemFigures, error) {
	list, err := s.Overview(ctx)
	if err != nil {
		return nil, err
	}
	f := &SystemFigures{Jobs: len(list)}
	for _, j := range list {
		if j.Last != nil && (j.Last.Outcome == Failed || j.Last.Outcome == Abandoned) {
			f.FailingJobs = append(f.FailingJobs, j.Job)
		}
		if j.Name == AuditVerifyJob {
			f.AuditCheck = j.Last
		}
	}
	var row struct{ Failed, Pending int64 }
	if err := s.DB.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE status = ?) AS failed,
		count(*) FILTER (WHERE status = ?) AS pending FROM email_outbox WHERE status IN (?, ?)`,
		EmailFailed, EmailPending, EmailFailed, EmailPending).Scan(&row).Error; err != nil {
		return nil, errs.Wrap(err, "outbox figures")
	}
	f.OutboxFailed, f.OutboxPending = row.Failed, row.Pending
	return f, nil
}
