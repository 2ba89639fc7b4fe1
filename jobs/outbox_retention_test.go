package jobs_test

import (
	"context"
	"testing"
	"time"

	"cardata/jobs"
)

// PurgeSentEmails deletes e-mails delivered before the cut-off (sent over
// SMTP or kept locally) in batches, and keeps recent ones and every pending
// and failed e-mail, however old.
func TestPurgeSentEmailsKeepsRecentPendingAndFailed(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	now := time.Now().UTC()
	day := 24 * time.Hour
	rows := []struct {
		to      string
		status  string
		created time.Time
		sent    *time.Time
		keep    bool
	}{
		{"old-sent-1@test", jobs.EmailSent, now.Add(-120 * day), ptr(now.Add(-100 * day)), false},
		{"old-sent-2@test", jobs.EmailSent, now.Add(-95 * day), ptr(now.Add(-91 * day)), false},
		{"old-sent-3@test", jobs.EmailSent, now.Add(-95 * day), ptr(now.Add(-91 * day)), false},
		{"old-local@test", jobs.EmailLocal, now.Add(-200 * day), ptr(now.Add(-200 * day)), false},
		// Created long ago but sent recently (after retries): kept.
		{"late-sent@test", jobs.EmailSent, now.Add(-120 * day), ptr(now.Add(-89 * day)), true},
		{"recent-sent@test", jobs.EmailSent, now.Add(-time.Hour), ptr(now.Add(-time.Hour)), true},
		{"recent-local@test", jobs.EmailLocal, now.Add(-10 * day), ptr(now.Add(-10 * day)), true},
		{"old-failed@test", jobs.EmailFailed, now.Add(-300 * day), nil, true},
		{"old-pending@test", jobs.EmailPending, now.Add(-300 * day), nil, true},
	}
	for _, r := range rows {
		if err := gdb.Exec(`INSERT INTO email_outbox (kind, to_addr, subject, body_text, status, created_at, sent_at)
			VALUES ('test', ?, 's', 'b', ?, ?, ?)`, r.to, r.status, r.created, r.sent).Error; err != nil {
			t.Fatal(err)
		}
	}
	// Batches of 2: four rows to delete take three statements.
	n, err := jobs.PurgeSentEmails(context.Background(), gdb, now.Add(-90*day), 2)
	if err != nil || n != 4 {
		t.Fatalf("purged %d, %v", n, err)
	}
	left := emails(t, gdb)
	for _, r := range rows {
		if _, ok := left[r.to]; ok != r.keep {
			t.Errorf("%s: kept %v, want %v", r.to, ok, r.keep)
		}
	}
	// Nothing more to do: idempotent.
	if n, err := jobs.PurgeSentEmails(context.Background(), gdb, now.Add(-90*day), 2); err != nil || n != 0 {
		t.Fatalf("second purge: %d %v", n, err)
	}
	// A stopped run deletes nothing more and says so.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := jobs.PurgeSentEmails(ctx, gdb, now, 2); err != context.Canceled {
		t.Fatalf("cancelled purge: %v", err)
	}
}

func ptr(t time.Time) *time.Time { return &t }
