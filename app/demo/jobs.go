package demo

import (
	"context"
	"fmt"
	"io"

	"gorm.io/gorm"

	"cardata/jobs"
)

// demoJobs loads the jobs module's demo data: a first, real run of each
// platform job (so the history is not empty) and welcome e-mails in the
// outbox for the demo staff. Idempotent: jobs that ran already are not run
// again, and the e-mails carry dedupe keys.
func (a loader) demoJobs(ctx context.Context, out io.Writer) error {
	for _, j := range a.PlatformJobs() {
		var n int64
		if err := a.DB.WithContext(ctx).Model(&jobs.RunRecord{}).Where("job = ?", j.Name).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		rec, err := a.Jobs.RunAndWait(ctx, j.Name)
		if rec == nil {
			return err
		}
		fmt.Fprintf(out, "demo: ran job %s (%s)\n", j.Name, rec.Outcome)
	}
	return a.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, u := range Staff {
			z, err := jobs.MailLocale(tx, u.Email, "")
			if err != nil {
				return err
			}
			subject, body := z.Mail("staff.welcome", "Name", u.Name, "Link", a.Cfg.PublicURL+"/admin")
			err = jobs.Enqueue(ctx, tx, jobs.Message{Kind: "staff.welcome", To: u.Email, ObjectType: "staff_user", ObjectID: u.Email,
				Subject: subject, Body: body,
				DedupeKey: "demo.staff.welcome:" + u.Email})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
