package e2e

import (
	"strings"
	"testing"
)

// invoice.send_finalized is in the registry: `cardata jobs list` shows it
// with its Berlin schedule and `cardata jobs run` runs it with its figures.
// (CLI tests set the environment: not parallel.)
func TestSendFinalizedJobCLI(t *testing.T) {
	cliDatabase(t)

	code, out, errOut := runCLI(t, "", "jobs", "list")
	if code != 0 || !strings.Contains(out, "invoice.send_finalized") || !strings.Contains(out, "on weekdays hourly 08:00–18:00") ||
		!strings.Contains(out, "invoice.reminders") {
		t.Fatalf("jobs list: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "jobs", "run", "invoice.send_finalized")
	if code != 0 || !strings.Contains(out, "invoice.send_finalized succeeded") || !strings.Contains(out, "sent=0") || !strings.Contains(out, "skipped=0") {
		t.Fatalf("jobs run invoice.send_finalized: %d\n%s\n%s", code, out, errOut)
	}
}
