package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/jobs/smtptest"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

func smtpTransport(srv *smtptest.Server) *jobs.SMTPTransport {
	return &jobs.SMTPTransport{Host: srv.Host, Port: srv.Port, From: "CarData <noreply@cardata.test>", Timeout: patience}
}

func enqueue(t testing.TB, gdb *gorm.DB, msgs ...jobs.Message) {
	t.Helper()
	err := gdb.Transaction(func(tx *gorm.DB) error {
		for _, m := range msgs {
			if err := jobs.Enqueue(context.Background(), tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func emails(t testing.TB, gdb *gorm.DB) map[string]jobs.Email {
	t.Helper()
	var rows []jobs.Email
	if err := gdb.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]jobs.Email{}
	for _, e := range rows {
		out[e.ToAddr] = e
	}
	return out
}

func TestOutboxDeliversOverSMTP(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	srv := smtptest.Start(t)
	enqueue(t, gdb,
		jobs.Message{Kind: "provider.approved", To: "anna@insurer.test", Subject: "Your registration was approved – welcome",
			Body: "Grüß Gott,\nyour registration is approved.\n.\nA line with a leading dot follows:\n.hidden", ObjectType: "provider", ObjectID: "12"},
		jobs.Message{Kind: "provider.approved", To: "bob@insurer.test", Subject: "Approved", Body: "Hello Bob", DedupeKey: "k1"},
		jobs.Message{Kind: "provider.approved", To: "bob@insurer.test", Subject: "Approved again", Body: "dup", DedupeKey: "k1"},
	)
	o := &jobs.Outbox{DB: gdb, Transport: smtpTransport(srv), Log: quietLog()}
	n, err := o.ProcessDue(context.Background(), 10)
	if err != nil || n != 2 {
		t.Fatalf("processed %d, %v", n, err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	rows := emails(t, gdb)
	anna := rows["anna@insurer.test"]
	var got smtptest.Message
	for _, m := range msgs {
		if m.To[0] == "anna@insurer.test" {
			got = m
		}
	}
	if got.Subject != anna.Subject || got.From != "noreply@cardata.test" || got.MessageID != jobs.MessageID(&anna, "noreply@cardata.test") {
		t.Errorf("message = %+v", got)
	}
	if !strings.Contains(got.Body, "Grüß Gott") || !strings.Contains(got.Body, ".hidden") {
		t.Errorf("body = %q", got.Body)
	}
	if anna.Status != jobs.EmailSent || anna.Attempts != 1 || anna.SentAt == nil || anna.SentVia != o.Transport.Name() || anna.LastError != "" {
		t.Errorf("row = %+v", anna)
	}
	// Nothing is due any more.
	if n, err := o.ProcessDue(context.Background(), 10); n != 0 || err != nil {
		t.Errorf("second pass processed %d, %v", n, err)
	}
}

// Several workers on separate pools (replicas) drain one outbox: every
// e-mail reaches the SMTP server exactly once.
func TestTwoWorkersNeverSendAnEmailTwice(t *testing.T) {
	t.Parallel()
	const total = 40
	u, gdb := freshDB(t)
	srv := smtptest.Start(t)
	srv.OnData = func(smtptest.Message) (int, string) {
		time.Sleep(5 * time.Millisecond) // keep sends in flight so workers overlap
		return 250, "queued"
	}
	var msgs []jobs.Message
	for i := range total {
		msgs = append(msgs, jobs.Message{Kind: "test.bulk", To: fmt.Sprintf("r%02d@example.test", i), Subject: fmt.Sprintf("Message %d", i), Body: "hi"})
	}
	enqueue(t, gdb, msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range []*gorm.DB{pool(t, u), pool(t, u)} {
		for range 2 {
			o := &jobs.Outbox{DB: p, Transport: smtpTransport(srv), Log: quietLog(), PollInterval: 20 * time.Millisecond}
			wg.Add(1)
			go func() { defer wg.Done(); o.Run(ctx) }()
		}
	}
	eventually(t, patience, "all e-mails sent", func() bool {
		var pending int64
		gdb.Model(&jobs.Email{}).Where("status <> 'sent'").Count(&pending)
		return pending == 0
	})
	cancel()
	wg.Wait() // every send that started has finished: the server's count is final
	got := srv.Messages()
	seen := map[string]int{}
	for _, m := range got {
		seen[m.MessageID]++
	}
	if len(got) != total || len(seen) != total {
		t.Fatalf("server received %d messages with %d distinct ids, want %d each", len(got), len(seen), total)
	}
	var attempts int64
	gdb.Raw("SELECT sum(attempts) FROM email_outbox").Scan(&attempts)
	if attempts != total {
		t.Errorf("%d attempts for %d e-mails", attempts, total)
	}
}

func TestOutboxRetriesWithBackoffAndGivesUp(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	srv := smtptest.Start(t)
	var flaky atomic.Int32
	srv.OnRcpt = func(rcpt string) (int, string) {
		switch rcpt {
		case "flaky@example.test":
			if flaky.Add(1) <= 2 {
				return 451, "4.3.0 try again later"
			}
		case "gone@example.test":
			return 550, "5.1.1 no such mailbox"
		case "down@example.test":
			return 452, "4.2.2 mailbox full"
		}
		return 250, "ok"
	}
	enqueue(t, gdb,
		jobs.Message{Kind: "t", To: "flaky@example.test", Subject: "s", Body: "b"},
		jobs.Message{Kind: "t", To: "gone@example.test", Subject: "s", Body: "b"},
		jobs.Message{Kind: "t", To: "down@example.test", Subject: "s", Body: "b"},
	)
	var delays []int
	var mu sync.Mutex
	o := &jobs.Outbox{DB: gdb, Transport: smtpTransport(srv), Log: quietLog(), MaxAttempts: 3,
		Backoff: func(attempt int) time.Duration {
			mu.Lock()
			delays = append(delays, attempt)
			mu.Unlock()
			// far beyond the test: time passes only when the test says so
			return time.Duration(attempt) * time.Hour
		}}
	if _, err := o.ProcessDue(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	rows := emails(t, gdb)
	if g := rows["gone@example.test"]; g.Status != jobs.EmailFailed || g.Attempts != 1 || !strings.Contains(g.LastError, "550") {
		t.Errorf("permanent rejection: %+v", g)
	}
	f := rows["flaky@example.test"]
	if f.Status != jobs.EmailPending || f.Attempts != 1 || !strings.Contains(f.LastError, "451") || !f.NextAttemptAt.After(time.Now().Add(-time.Second)) {
		t.Errorf("first failure: %+v", f)
	}
	// Not due yet: an immediate pass sends nothing.
	if n, _ := o.ProcessDue(context.Background(), 10); n != 0 {
		t.Errorf("retried %d before the backoff passed", n)
	}
	eventually(t, patience, "retries to settle", func() bool {
		// the backoff passes: whatever waits for its retry falls due now
		if err := gdb.Exec(`UPDATE email_outbox SET next_attempt_at = now() WHERE status = 'pending'`).Error; err != nil {
			t.Fatal(err)
		}
		o.ProcessDue(context.Background(), 10)
		var pending int64
		gdb.Model(&jobs.Email{}).Where("status = 'pending'").Count(&pending)
		return pending == 0
	})
	rows = emails(t, gdb)
	if f := rows["flaky@example.test"]; f.Status != jobs.EmailSent || f.Attempts != 3 || f.LastError != "" {
		t.Errorf("flaky: %+v", f)
	}
	if d := rows["down@example.test"]; d.Status != jobs.EmailFailed || d.Attempts != 3 || !strings.Contains(d.LastError, "452") {
		t.Errorf("always failing: %+v", d)
	}
	if srv.Count() != 1 {
		t.Errorf("server accepted %d messages, want 1", srv.Count())
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(delays) != "[1 1 2 2]" && fmt.Sprint(delays) != "[1 1 2 2]" {
		// two e-mails each backed off after attempt 1 and 2, in either order
		t.Logf("backoff attempts: %v", delays)
	}
	if len(delays) != 4 {
		t.Errorf("backoff called for attempts %v, want two e-mails × attempts 1 and 2", delays)
	}

	// An administrator retries the failed one: one more attempt now.
	id := rows["down@example.test"].ID
	if err := jobs.RetryEmail(asStaff(5, "admin"), gdb, id); err != nil {
		t.Fatal(err)
	}
	if err := jobs.RetryEmail(asStaff(5, "admin"), gdb, rows["flaky@example.test"].ID); errs.KindOf(err) != errs.Conflict {
		t.Errorf("retrying a sent e-mail: %v", err)
	}
	if e, _ := jobs.FindEmail(context.Background(), gdb, id); e.Status != jobs.EmailPending {
		t.Errorf("after retry: %s", e.Status)
	}
	entries, _, _ := audit.List(context.Background(), gdb, audit.Filter{Action: "email.retry"})
	if len(entries) != 1 || entries[0].ObjectID != fmt.Sprint(id) {
		t.Errorf("audit = %+v", entries)
	}
	o.ProcessDue(context.Background(), 10)
	if e, _ := jobs.FindEmail(context.Background(), gdb, id); e.Status != jobs.EmailFailed || e.Attempts != 4 {
		t.Errorf("after the extra attempt: %+v", e)
	}
}

// A worker stopped in the middle of a send (shutdown) loses nothing: the
// attempt does not count and the next worker delivers the e-mail once.
func TestInterruptedSendIsNotLost(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	srv := smtptest.Start(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var first atomic.Bool
	srv.OnData = func(smtptest.Message) (int, string) {
		if first.CompareAndSwap(false, true) {
			close(inFlight)
			<-release
			return 451, "4.4.2 connection dropped" // the client is gone; never accepted
		}
		return 250, "queued"
	}
	enqueue(t, gdb, jobs.Message{Kind: "t", To: "once@example.test", Subject: "only once", Body: "b"})
	ctx, cancel := context.WithCancel(context.Background())
	o := &jobs.Outbox{DB: gdb, Transport: smtpTransport(srv), Log: quietLog(), PollInterval: 20 * time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	<-inFlight
	cancel()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("worker did not stop mid-send")
	}
	close(release)
	e := emails(t, gdb)["once@example.test"]
	if e.Status != jobs.EmailPending || e.Attempts != 0 {
		t.Fatalf("after the interrupted send: %+v", e)
	}
	if _, err := (&jobs.Outbox{DB: gdb, Transport: smtpTransport(srv), Log: quietLog()}).ProcessDue(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if e := emails(t, gdb)["once@example.test"]; e.Status != jobs.EmailSent || e.Attempts != 1 || srv.Count() != 1 {
		t.Fatalf("after restart: %+v, server has %d", e, srv.Count())
	}
}

// Without SMTP configured nothing leaves the machine: e-mails are kept in
// the local outbox, marked as such.
func TestLocalTransportKeepsEmailsLocal(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	enqueue(t, gdb, jobs.Message{Kind: "t", To: "local@example.test", Subject: "s", Body: "b"})
	o := &jobs.Outbox{DB: gdb, Log: quietLog()}
	if n, err := o.ProcessDue(context.Background(), 10); n != 1 || err != nil {
		t.Fatalf("processed %d, %v", n, err)
	}
	e := emails(t, gdb)["local@example.test"]
	if e.Status != jobs.EmailLocal || e.SentVia != "local" || e.SentAt == nil {
		t.Fatalf("row = %+v", e)
	}
	list, total, err := jobs.ListEmails(context.Background(), gdb, jobs.EmailFilter{Status: jobs.EmailLocal, Query: "LOCAL@"})
	if err != nil || total != 1 || len(list) != 1 {
		t.Fatalf("list = %v (%d), %v", list, total, err)
	}
	counts, _ := jobs.CountByStatus(context.Background(), gdb)
	if counts[jobs.EmailLocal] != 1 {
		t.Errorf("counts = %v", counts)
	}
}

func TestExpBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	prev := time.Duration(0)
	for a := 1; a <= 12; a++ {
		d := jobs.ExpBackoff(a)
		base := min(30*time.Second<<(a-1), time.Hour)
		if d < base*9/10 || d > base*11/10 {
			t.Errorf("attempt %d: %s, want about %s", a, d, base)
		}
		if a <= 7 && d <= prev {
			t.Errorf("attempt %d: %s does not grow from %s", a, d, prev)
		}
		prev = d
	}
}
