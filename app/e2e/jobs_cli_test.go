package e2e

import (
	"strings"
	"testing"

	"cardata/app/demo"
	"cardata/jobs"
)

// CLI tests set DATABASE_URL in the environment and therefore don't run in parallel.
func TestJobsCLIAndDemo(t *testing.T) {
	gdb, _ := cliDatabase(t)

	code, out, errOut := runCLI(t, "", "jobs", "list")
	if code != 0 || !strings.Contains(out, "sessions.purge") || !strings.Contains(out, "every 15 minutes") ||
		!strings.Contains(out, "audit.verify") || !strings.Contains(out, "never") || !strings.Contains(out, "Europe/Berlin") {
		t.Fatalf("jobs list: %d\n%s\n%s", code, out, errOut)
	}
	// The run's own "job.run" audit entry is the one entry checked.
	code, out, errOut = runCLI(t, "", "jobs", "run", "audit.verify")
	if code != 0 || !strings.Contains(out, "audit.verify succeeded") || !strings.Contains(out, "entries_checked=1") {
		t.Fatalf("jobs run: %d\n%s\n%s", code, out, errOut)
	}
	var runs []jobs.RunRecord
	gdb.Where("job = 'audit.verify'").Find(&runs)
	if len(runs) != 1 || runs[0].Trigger != jobs.TriggerCLI || runs[0].ActorLabel != "cli" {
		t.Fatalf("recorded: %+v", runs)
	}
	if code, out, _ := runCLI(t, "", "jobs", "list"); code != 0 || !strings.Contains(out, "succeeded") {
		t.Errorf("jobs list after a run: %s", out)
	}
	if code, _, errOut := runCLI(t, "", "jobs", "run", "no.such_job"); code != 1 || !strings.Contains(errOut, `no job named "no.such_job"`) {
		t.Errorf("unknown job: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "jobs", "run"); code != 1 || !strings.Contains(errOut, "usage") {
		t.Errorf("no name: %d %s", code, errOut)
	}
	if code, out, _ := runCLI(t, "", "jobs", "run", "--help"); code != 0 || !strings.Contains(out, "Usage: cardata jobs run [flags] NAME") {
		t.Errorf("help: %d %s", code, out)
	}

	// Demo data: real runs of the platform jobs and welcome e-mails, once.
	for range 2 {
		if code, out, errOut := runCLI(t, "", "demo"); code != 0 {
			t.Fatalf("demo: %d %s %s", code, out, errOut)
		}
	}
	var n int64
	gdb.Model(&jobs.RunRecord{}).Count(&n)
	if n != 3 { // audit.verify ran above; the demo adds the two others
		t.Errorf("%d runs after demo, want 3", n)
	}
	gdb.Model(&jobs.Email{}).Where("kind = 'staff.welcome'").Count(&n)
	if want := int64(len(demo.Staff)); n != want { // one per demo staff user, not one per run
		t.Errorf("%d welcome e-mails after two demo runs, want %d", n, want)
	}
}
