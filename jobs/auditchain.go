package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"gorm.io/gorm"

	"cardata/policies/audit"
)

// AlertRecipient is someone e-mailed when the audit chain is broken.
type AlertRecipient struct {
	ID    int64
	Name  string
	Email string
}

// AuditChainCheck is the body of the audit.verify job: it walks the audit
// trail's hash chain and, when it is broken, e-mails every recipient
// (once per recipient, broken entry and day, however often the job runs)
// and fails.
type AuditChainCheck struct {
	DB         *gorm.DB
	Recipients func(ctx context.Context) ([]AlertRecipient, error) // the active administrators
	PublicURL  string
	Location   *time.Location // the day of the alert's de-duplication
	Log        *slog.Logger
}

// Run verifies the chain for the job run r.
func (v AuditChainCheck) Run(ctx context.Context, r *Run) error {
	r.Progress(ctx, 0, 0, "verifying the hash chain")
	n, broken, err := audit.Verify(ctx, v.DB)
	r.Set("entries_checked", int64(n))
	if err != nil {
		return err
	}
	if broken == nil {
		r.Progress(ctx, int64(n), int64(n), "chain intact")
		return nil
	}
	to, err := v.Recipients(ctx)
	if err != nil {
		return err
	}
	day := time.Now().In(v.Location).Format("2006-01-02")
	err = v.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, u := range to {
			err := Enqueue(ctx, tx, Message{
				Kind: "audit.chain_broken", To: u.Email, ObjectType: "audit_entry", ObjectID: strconv.FormatInt(broken.ID, 10),
				Subject: fmt.Sprintf("ALERT: the audit trail is broken at entry %d", broken.ID),
				Body: fmt.Sprintf("Hello %s,\n\nthe daily verification of the audit trail found the hash chain broken at entry %d:\n%s\n\n"+
					"%d entries were checked. Entries may have been altered or removed outside the application. "+
					"Investigate before trusting the trail: %s/admin/audit\n\nRun `cardata audit verify` to check again.\n",
					u.Name, broken.ID, broken.Reason, n, v.PublicURL),
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
	r.Set("alerts_enqueued", int64(len(to)))
	if len(to) == 0 {
		v.Log.Error("audit chain broken and no active administrator to alert", "entry", broken.ID)
	}
	return fmt.Errorf("audit chain broken at entry %d: %s", broken.ID, broken.Reason)
}
