package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app"
	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/db"
	"cardata/app/db/dbtest"
	"cardata/jobs"
	"cardata/jobs/smtptest"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/session"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	apptest.WaitFor(t, apptest.Patience, what, cond)
}

func jobRuns(t *testing.T, gdb *gorm.DB, job string) []jobs.RunRecord {
	t.Helper()
	var out []jobs.RunRecord
	if err := gdb.Where("job = ?", job).Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

func finished(t *testing.T, gdb *gorm.DB, job string, n int) func() bool {
	return func() bool {
		var c int64
		gdb.Model(&jobs.RunRecord{}).Where("job = ? AND outcome <> 'running'", job).Count(&c)
		return int(c) >= n
	}
}

// Who may see and run which job, through the real pages and the casbin
// guard: admin runs everything, finance only billing-role jobs, auditors
// read, support and partner managers see nothing.
func TestJobPagesAndRunNowByRole(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	var invoiceRuns atomic.Int32
	if err := tt.App.Jobs.Register(jobs.Job{Name: "billing.test_invoice_run", Title: "Test invoice run", Spec: "0 3 1 * *",
		Roles: []string{policies.RoleFinance}, Run: func(ctx context.Context, r *jobs.Run) error {
			invoiceRuns.Add(1)
			r.Set("invoices_created", 4)
			return nil
		}}); err != nil {
		t.Fatal(err)
	}
	cl := map[string]*apptest.Client{}
	for _, role := range policies.StaffRoles {
		tt.MustCreateStaff(t, role+"@jobs.test", role)
		cl[role] = tt.LoginStaff(t, role+"@jobs.test")
	}

	// The list: everything registered, with schedules in words and next runs.
	res := cl["admin"].Get("/admin/jobs")
	if res.Status != http.StatusOK {
		t.Fatalf("admin /admin/jobs: %d", res.Status)
	}
	for _, want := range []string{"Session clean-up", "every 15 minutes", "Audit-chain verification", "daily at 04:40",
		"Test invoice run", "monthly on day 1 at 03:00", `action="/admin/jobs/sessions.purge/run"`, `action="/admin/jobs/billing.test_invoice_run/run"`,
		`href="/admin/jobs"`, `href="/admin/outbox"`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("admin job list lacks %q", want)
		}
	}

	// Admin runs a platform job.
	res = cl["admin"].PostForm("/admin/jobs/sessions.purge/run", nil)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin/jobs/sessions.purge" {
		t.Fatalf("admin run: %d %s", res.Status, res.Header.Get("Location"))
	}
	waitFor(t, "admin's run", finished(t, tt.DB, "sessions.purge", 1))
	page := cl["admin"].Get("/admin/jobs/sessions.purge")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "started. Its progress shows below") ||
		!strings.Contains(page.Body, "sessions_removed: 0") || !strings.Contains(page.Body, "admin@jobs.test") {
		t.Errorf("job page after admin's run: %d\n%s", page.Status, page.Body)
	}

	// Finance: reads all, runs the billing job, not the others.
	res = cl["finance"].Get("/admin/jobs")
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `action="/admin/jobs/billing.test_invoice_run/run"`) ||
		strings.Contains(res.Body, `action="/admin/jobs/sessions.purge/run"`) {
		t.Errorf("finance job list: %d, run buttons wrong", res.Status)
	}
	if res := cl["finance"].PostForm("/admin/jobs/billing.test_invoice_run/run", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("finance runs billing job: %d", res.Status)
	}
	waitFor(t, "finance's run", finished(t, tt.DB, "billing.test_invoice_run", 1))
	if res := cl["finance"].PostForm("/admin/jobs/sessions.purge/run", nil); res.Status != http.StatusForbidden {
		t.Errorf("finance runs a non-billing job: %d, want 403", res.Status)
	}
	if res := cl["finance"].Get("/admin/jobs/sessions.purge"); res.Status != http.StatusOK || strings.Contains(res.Body, `id="run-now"`) {
		t.Errorf("finance reads a non-billing job's history: %d (run button must not show)", res.Status)
	}
	if rec := jobRuns(t, tt.DB, "billing.test_invoice_run")[0]; rec.Outcome != jobs.Succeeded || rec.Trigger != jobs.TriggerUI ||
		rec.ActorLabel != "finance@jobs.test" || rec.Figures["invoices_created"] != 4 {
		t.Errorf("finance's run: %+v", rec)
	}

	// Auditor: reads, never runs.
	for _, path := range []string{"/admin/jobs", "/admin/jobs/billing.test_invoice_run", "/admin/jobs/billing.test_invoice_run/live"} {
		res := cl["auditor"].Get(path)
		if res.Status != http.StatusOK || strings.Contains(res.Body, "Run now") {
			t.Errorf("auditor GET %s: %d", path, res.Status)
		}
	}
	if res := cl["auditor"].PostForm("/admin/jobs/billing.test_invoice_run/run", nil); res.Status != http.StatusForbidden {
		t.Errorf("auditor run: %d, want 403", res.Status)
	}
	// Support and partner managers: no access at all.
	for _, role := range []string{policies.RoleSupport, policies.RolePartnerManager} {
		for _, path := range []string{"/admin/jobs", "/admin/jobs/sessions.purge", "/admin/jobs/sessions.purge/live", "/admin/outbox"} {
			if res := cl[role].Get(path); res.Status != http.StatusForbidden {
				t.Errorf("%s GET %s: %d, want 403", role, path, res.Status)
			}
		}
		if res := cl[role].PostForm("/admin/jobs/sessions.purge/run", nil); res.Status != http.StatusForbidden {
			t.Errorf("%s run: %d, want 403", role, res.Status)
		}
		if strings.Contains(cl[role].Get("/admin").Body, `href="/admin/jobs"`) {
			t.Errorf("%s sees the Jobs navigation item", role)
		}
	}
	// CSRF is required; unknown jobs are 404.
	if res := cl["admin"].PostRawForm("/admin/jobs/sessions.purge/run", url.Values{}); res.Status != http.StatusForbidden {
		t.Errorf("run without CSRF token: %d", res.Status)
	}
	if res := cl["admin"].Get("/admin/jobs/no.such_job"); res.Status != http.StatusNotFound {
		t.Errorf("unknown job: %d", res.Status)
	}
	if res := cl["admin"].PostForm("/admin/jobs/no.such_job/run", nil); res.Status != http.StatusNotFound {
		t.Errorf("run unknown job: %d", res.Status)
	}

	// Exactly the two accepted runs happened, and both are audited.
	if invoiceRuns.Load() != 1 || len(jobRuns(t, tt.DB, "sessions.purge")) != 1 {
		t.Errorf("runs: invoice %d, sessions %d", invoiceRuns.Load(), len(jobRuns(t, tt.DB, "sessions.purge")))
	}
	entries, _, err := audit.List(context.Background(), tt.DB, audit.Filter{Action: "job.run"})
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit entries: %d, %v", len(entries), err)
	}
	actors := entries[0].ActorLabel + " " + entries[1].ActorLabel
	if !strings.Contains(actors, "admin@jobs.test") || !strings.Contains(actors, "finance@jobs.test") {
		t.Errorf("audited actors: %s", actors)
	}
}

// The job page shows a running run's progress, and the fragment it polls
// (data-poll) follows the run to its end.
func TestJobPageShowsLiveProgress(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	release := make(chan struct{})
	if err := tt.App.Jobs.Register(jobs.Job{Name: "test.progress", Title: "Progress test", Run: func(ctx context.Context, r *jobs.Run) error {
		r.Add("items", 3)
		r.Progress(ctx, 3, 10, "third item of ten")
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.Progress(ctx, 10, 10, "done")
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	tt.MustCreateStaff(t, "ada@jobs.test", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@jobs.test")
	if res := c.PostForm("/admin/jobs/test.progress/run", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("run: %d", res.Status)
	}
	waitFor(t, "progress saved", func() bool {
		r := jobRuns(t, tt.DB, "test.progress")
		return len(r) == 1 && r[0].ProgressDone == 3
	})
	page := c.Get("/admin/jobs/test.progress")
	for _, want := range []string{`data-poll="/admin/jobs/test.progress/live"`, `<progress max="10" value="3">`, "third item of ten", "3 of 10 (30%)", "items: 3"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	// A second click while it runs is refused with a message, not a second run.
	res := c.PostForm("/admin/jobs/test.progress/run", nil)
	if res.Status != http.StatusSeeOther || !strings.Contains(c.Get("/admin/jobs/test.progress").Body, "running right now") {
		t.Errorf("second run while running: %d", res.Status)
	}
	live := c.Get("/admin/jobs/test.progress/live")
	if live.Status != http.StatusOK || strings.Contains(live.Body, "<html") || !strings.Contains(live.Body, "running") {
		t.Fatalf("live fragment: %d\n%s", live.Status, live.Body)
	}
	close(release)
	waitFor(t, "run finished", finished(t, tt.DB, "test.progress", 1))
	live = c.Get("/admin/jobs/test.progress/live")
	if !strings.Contains(live.Body, "Not running") || !strings.Contains(live.Body, "succeeded") {
		t.Errorf("live fragment after the run:\n%s", live.Body)
	}
	if n := len(jobRuns(t, tt.DB, "test.progress")); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

func TestOutboxPages(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	srv := smtptest.Start(t)
	srv.OnRcpt = func(rcpt string) (int, string) {
		if strings.HasPrefix(rcpt, "nobody@") {
			return 550, "5.1.1 no such user"
		}
		return 250, "ok"
	}
	err := tt.DB.Transaction(func(tx *gorm.DB) error {
		for _, m := range []jobs.Message{
			{Kind: "provider.approved", To: "anna@alpen.test", Subject: "Your registration is approved", Body: "Welcome aboard.\nLine two."},
			{Kind: "provider.rejected", To: "nobody@alpen.test", Subject: "Registration rejected", Body: "Sorry."},
			{Kind: "ticket.reply", To: "dev@alpen.test", Subject: "Re: stale data", Body: "Fixed."},
		} {
			if err := jobs.Enqueue(tt.Ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &jobs.Outbox{DB: tt.DB, Transport: &jobs.SMTPTransport{Host: srv.Host, Port: srv.Port, From: "noreply@cardata.test"},
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	if _, err := o.ProcessDue(context.Background(), 2); err != nil { // the third stays pending
		t.Fatal(err)
	}
	var failed jobs.Email
	tt.DB.Where("to_addr = ?", "nobody@alpen.test").Take(&failed)
	if failed.Status != jobs.EmailFailed {
		t.Fatalf("setup: %+v", failed)
	}
	tt.MustCreateStaff(t, "ada@outbox.test", policies.RoleAdmin)
	tt.MustCreateStaff(t, "otto@outbox.test", policies.RoleAuditor)
	tt.MustCreateStaff(t, "fiona@outbox.test", policies.RoleFinance)
	admin, auditor, finance := tt.LoginStaff(t, "ada@outbox.test"), tt.LoginStaff(t, "otto@outbox.test"), tt.LoginStaff(t, "fiona@outbox.test")

	res := admin.Get("/admin/outbox")
	for _, want := range []string{"anna@alpen.test", "Your registration is approved", "nobody@alpen.test", "5.1.1 no such user", "Re: stale data", ">sent<", ">failed<", ">pending<"} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("outbox list lacks %q", want)
		}
	}
	res = admin.Get("/admin/outbox?status=failed")
	if !strings.Contains(res.Body, "nobody@alpen.test") || strings.Contains(res.Body, "anna@alpen.test") {
		t.Errorf("status filter")
	}
	if res := admin.Get("/admin/outbox?q=stale"); !strings.Contains(res.Body, "dev@alpen.test") || strings.Contains(res.Body, "anna@alpen.test") {
		t.Errorf("search")
	}
	show := fmt.Sprintf("/admin/outbox/%d", failed.ID)
	res = admin.Get(show)
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "Sorry.") || !strings.Contains(res.Body, `id="retry"`) {
		t.Fatalf("admin show: %d", res.Status)
	}
	if res := auditor.Get(show); res.Status != http.StatusOK || strings.Contains(res.Body, `id="retry"`) {
		t.Errorf("auditor show: %d (no retry button)", res.Status)
	}
	if res := auditor.PostForm(show+"/retry", nil); res.Status != http.StatusForbidden {
		t.Errorf("auditor retry: %d", res.Status)
	}
	if res := finance.Get("/admin/outbox"); res.Status != http.StatusForbidden {
		t.Errorf("finance outbox: %d", res.Status)
	}
	res = admin.PostForm(show+"/retry", nil)
	if res.Status != http.StatusSeeOther {
		t.Fatalf("retry: %d %s", res.Status, res.Body)
	}
	if e, _ := jobs.FindEmail(context.Background(), tt.DB, failed.ID); e.Status != jobs.EmailPending {
		t.Errorf("after retry: %s", e.Status)
	}
	if res := admin.PostForm(show+"/retry", nil); res.Status != http.StatusConflict {
		t.Errorf("retrying a pending e-mail: %d, want 409", res.Status)
	}
	if entries, _, _ := audit.List(context.Background(), tt.DB, audit.Filter{Action: "email.retry"}); len(entries) != 1 || entries[0].ActorLabel != "ada@outbox.test" {
		t.Errorf("retry audit: %+v", entries)
	}
	if res := admin.Get("/admin/outbox/999999"); res.Status != http.StatusNotFound {
		t.Errorf("unknown e-mail: %d", res.Status)
	}
}

// Each platform job's body, on its own.
func TestSessionAndLoginAttemptCleanUpJobs(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	u := tt.MustCreateStaff(t, "sam@jobs.test", policies.RoleSupport)
	now := time.Now().UTC()
	for _, s := range []session.Session{
		{TokenHash: []byte("expired"), SubjectKind: "staff", SubjectID: u.ID, CreatedAt: now.Add(-13 * time.Hour), LastSeenAt: now.Add(-time.Minute), ExpiresAt: now.Add(-time.Hour)},
		{TokenHash: []byte("idle"), SubjectKind: "staff", SubjectID: u.ID, CreatedAt: now.Add(-2 * time.Hour), LastSeenAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(time.Hour)},
		{TokenHash: []byte("live"), SubjectKind: "staff", SubjectID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := tt.DB.Create(&s).Error; err != nil {
			t.Fatal(err)
		}
	}
	rec, err := tt.App.Jobs.RunAndWait(tt.Ctx, "sessions.purge")
	if err != nil || rec.Figures["sessions_removed"] != 2 {
		t.Fatalf("sessions.purge: %+v, %v", rec, err)
	}
	var left []string
	tt.DB.Raw("SELECT convert_from(token_hash, 'UTF8') FROM sessions").Scan(&left)
	if len(left) != 1 || left[0] != "live" {
		t.Errorf("sessions left: %v", left)
	}

	if err := tt.DB.Exec(`INSERT INTO login_attempts (email, client_addr, succeeded, at) VALUES
		('a@x.test', '10.0.0.1', false, now() - interval '31 days'),
		('a@x.test', '10.0.0.1', true, now() - interval '40 days'),
		('a@x.test', '10.0.0.1', false, now() - interval '29 days'),
		('a@x.test', '10.0.0.1', false, now())`).Error; err != nil {
		t.Fatal(err)
	}
	rec, err = tt.App.Jobs.RunAndWait(tt.Ctx, "login_attempts.purge")
	if err != nil || rec.Figures["attempts_removed"] != 2 {
		t.Fatalf("login_attempts.purge: %+v, %v", rec, err)
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM login_attempts").Scan(&n)
	if n != 2 {
		t.Errorf("%d attempts left, want 2", n)
	}
}

func TestAuditVerificationJobAlertsAdminsOnce(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@jobs.test", policies.RoleAdmin)
	tt.MustCreateStaff(t, "alan@jobs.test", policies.RoleAdmin, policies.RoleAuditor)
	tt.MustCreateStaff(t, "fiona@jobs.test", policies.RoleFinance)
	gone := tt.MustCreateStaff(t, "gone@jobs.test", policies.RoleAdmin)
	if err := tt.DB.Exec("UPDATE staff_users SET active = false WHERE id = ?", gone.ID).Error; err != nil {
		t.Fatal(err)
	}
	rec, err := tt.App.Jobs.RunAndWait(tt.Ctx, "audit.verify")
	if err != nil || rec.Outcome != jobs.Succeeded || rec.Figures["entries_checked"] < 4 {
		t.Fatalf("intact chain: %+v, %v", rec, err)
	}

	// Tamper with an entry the way only a database superuser could.
	su, err := db.Open(dbtest.SuperuserURL(t, tt.DBURL), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(su)
	var id int64
	su.Raw("SELECT id FROM audit_entries ORDER BY id OFFSET 1 LIMIT 1").Scan(&id)
	if err := su.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SET LOCAL session_replication_role = replica").Error; err != nil {
			return err
		}
		return tx.Exec("UPDATE audit_entries SET summary = 'nothing happened' WHERE id = ?", id).Error
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second run the same day does not alert again
		rec, err = tt.App.Jobs.RunAndWait(tt.Ctx, "audit.verify")
		if err == nil || rec.Outcome != jobs.Failed || !strings.Contains(rec.Error, fmt.Sprintf("broken at entry %d", id)) || rec.Figures["alerts_enqueued"] != 2 {
			t.Fatalf("broken chain: %+v, %v", rec, err)
		}
	}
	var alerts []jobs.Email
	tt.DB.Where("kind = 'audit.chain_broken'").Order("to_addr").Find(&alerts)
	if len(alerts) != 2 || alerts[0].ToAddr != "ada@jobs.test" || alerts[1].ToAddr != "alan@jobs.test" ||
		!strings.Contains(alerts[0].Subject, fmt.Sprintf("entry %d", id)) || alerts[0].ObjectID != fmt.Sprint(id) {
		t.Fatalf("alerts: %+v", alerts)
	}
}

// Two instances of the whole application (as two `cardata serve` processes
// behind a load balancer) on one database with SMTP configured: every
// scheduled tick runs once, every e-mail is delivered once, and the
// platform jobs' catch-up runs happen once.
func TestTwoInstancesOnOneDatabase(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	srv.OnData = func(smtptest.Message) (int, string) { time.Sleep(5 * time.Millisecond); return 250, "queued" }
	smtp := func(c *config.Config) { c.SMTPHost, c.SMTPPort = srv.Host, srv.Port }
	first := apptest.New(t, smtp)
	cfg := apptest.Config(t, first.DBURL)
	smtp(&cfg)
	gdb, err := db.Open(first.DBURL, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(gdb) })
	second, err := app.New(cfg, gdb, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var ticks atomic.Int32
	for _, a := range []*app.App{first.App, second} {
		if err := a.Jobs.Register(jobs.Job{Name: "test.every_second", Spec: "* * * * * *", Run: func(context.Context, *jobs.Run) error {
			ticks.Add(1)
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
	}
	const total = 30
	err = first.DB.Transaction(func(tx *gorm.DB) error {
		for i := range total {
			if err := jobs.Enqueue(first.Ctx, tx, jobs.Message{Kind: "test", To: fmt.Sprintf("p%d@example.test", i), Subject: fmt.Sprint("n", i), Body: "b"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, a := range []*app.App{first.App, second} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- a.ServeListener(ctx, ln, nil) }()
	}
	waitFor(t, "all e-mails sent", func() bool {
		var n int64
		first.DB.Model(&jobs.Email{}).Where("status = 'sent'").Count(&n)
		return n == total
	})
	// Both instances keep running until two ticks have succeeded and the
	// platform jobs have caught up, however long that takes on this machine.
	waitFor(t, "two ticks and the catch-up runs", func() bool {
		var ticked, caughtUp int64
		first.DB.Model(&jobs.RunRecord{}).Where("job = 'test.every_second' AND outcome = 'succeeded'").Count(&ticked)
		first.DB.Model(&jobs.RunRecord{}).Where("job IN ('audit.verify', 'login_attempts.purge') AND outcome <> 'running'").Count(&caughtUp)
		return ticked >= 2 && caughtUp >= 2
	})
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Messages(); len(got) != total {
		t.Errorf("SMTP server received %d messages, want %d", len(got), total)
	}
	runs := jobRuns(t, first.DB, "test.every_second")
	seen := map[time.Time]bool{}
	succeeded := 0
	for _, r := range runs {
		if seen[*r.ScheduledFor] {
			t.Errorf("tick %s recorded twice", r.ScheduledFor)
		}
		seen[*r.ScheduledFor] = true
		switch r.Outcome {
		case jobs.Succeeded:
			succeeded++
		case jobs.Skipped: // a run outlasting its second under load, or a tick at shutdown
			t.Logf("tick %s skipped: %s", r.ScheduledFor, r.Error)
		default:
			t.Errorf("tick %s: %s %s", r.ScheduledFor, r.Outcome, r.Error)
		}
	}
	if succeeded < 2 || int(ticks.Load()) != succeeded {
		t.Errorf("%d successful tick rows (%d in all), %d bodies ran", succeeded, len(runs), ticks.Load())
	}
	for _, name := range []string{"audit.verify", "login_attempts.purge"} {
		if r := jobRuns(t, first.DB, name); len(r) != 1 || r[0].Trigger != jobs.TriggerSchedule || r[0].Outcome != jobs.Succeeded {
			t.Errorf("catch-up of %s: %+v", name, r)
		}
	}
}
