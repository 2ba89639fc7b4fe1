package e2e

import (
	"net/http"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/jobs"
	"cardata/policies"
)

// The retention jobs are in the registry: `cardata jobs list` shows them
// with their Berlin schedule and `cardata jobs run` runs them; outbox.purge
// honours OUTBOX_RETENTION. (CLI tests set the environment: not parallel.)
func TestRetentionJobsCLI(t *testing.T) {
	gdb, _ := cliDatabase(t)
	t.Setenv("OUTBOX_RETENTION", "30d")

	code, out, errOut := runCLI(t, "", "jobs", "list")
	if code != 0 || !strings.Contains(out, "containers.purge-withdrawn") || !strings.Contains(out, "daily at 04:30") ||
		!strings.Contains(out, "outbox.purge") || !strings.Contains(out, "daily at 03:50") {
		t.Fatalf("jobs list: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "jobs", "run", "containers.purge-withdrawn")
	if code != 0 || !strings.Contains(out, "containers.purge-withdrawn succeeded") || !strings.Contains(out, "containers_purged=0") {
		t.Fatalf("jobs run containers.purge-withdrawn: %d\n%s\n%s", code, out, errOut)
	}

	for _, row := range []struct{ to, status, age string }{
		{"sent-31d@test", "sent", "31 days"}, {"local-31d@test", "local", "31 days"},
		{"sent-29d@test", "sent", "29 days"}, {"failed-31d@test", "failed", ""}, {"pending-31d@test", "pending", ""},
	} {
		sent := "NULL"
		if row.age != "" {
			sent = "now() - interval '" + row.age + "'"
		}
		if err := gdb.Exec(`INSERT INTO email_outbox (kind, to_addr, subject, body_text, status, created_at, sent_at)
			VALUES ('test', ?, 's', 'b', ?, now() - interval '40 days', `+sent+`)`, row.to, row.status).Error; err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runCLI(t, "", "jobs", "run", "outbox.purge")
	if code != 0 || !strings.Contains(out, "outbox.purge succeeded") || !strings.Contains(out, "emails_deleted=2") {
		t.Fatalf("jobs run outbox.purge: %d\n%s\n%s", code, out, errOut)
	}
	var left []string
	gdb.Model(&jobs.Email{}).Where("kind = 'test'").Order("to_addr").Pluck("to_addr", &left)
	if strings.Join(left, ",") != "failed-31d@test,pending-31d@test,sent-29d@test" {
		t.Fatalf("left: %v", left)
	}
}

// Admins see both jobs on the jobs page and may run them; finance may not.
func TestRetentionJobsAdminPage(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "admin-ret@test.local", policies.RoleAdmin)
	tt.MustCreateStaff(t, "finance-ret@test.local", policies.RoleFinance)
	admin := tt.LoginStaff(t, "admin-ret@test.local")
	page := admin.Get("/admin/jobs")
	csContains(t, page.Body, "Purge of withdrawn containers", `action="/admin/jobs/containers.purge-withdrawn/run"`,
		"E-mail outbox clean-up", `action="/admin/jobs/outbox.purge/run"`, "90 days")
	if res := admin.PostForm("/admin/jobs/containers.purge-withdrawn/run", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("admin runs the purge: %d %s", res.Status, res.Body)
	}
	finance := tt.LoginStaff(t, "finance-ret@test.local")
	if res := finance.PostForm("/admin/jobs/containers.purge-withdrawn/run", nil); res.Status != http.StatusForbidden {
		t.Fatalf("finance runs the purge: %d", res.Status)
	}
}
