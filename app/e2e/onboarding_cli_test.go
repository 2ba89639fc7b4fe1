package e2e

import (
	"strings"
	"testing"
)

// CLI tests set DATABASE_URL in the environment and therefore don't run in parallel.
func TestCLIProvidersAndMarkets(t *testing.T) {
	cliDatabase(t)
	if code, out, errOut := runCLI(t, "", "demo"); code != 0 {
		t.Fatalf("demo: %d %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "", "providers", "list", "--status", "active", "--country", "DE")
	if code != 0 || !strings.Contains(out, "Demo Insurance AG") || strings.Contains(out, "Demo Insurance Services SE") {
		t.Fatalf("providers list: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "", "providers", "list", "--status", "happy"); code != 1 || !strings.Contains(errOut, "unknown status") {
		t.Fatalf("bad status: %d %s", code, errOut)
	}
	if code, out, _ := runCLI(t, "", "markets", "pause", "gb"); code != 0 || out != "United Kingdom (GB) is paused\n" {
		t.Fatalf("pause: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", "markets", "list")
	if code != 0 || strings.Count(out, "\n") != 32 || !strings.Contains(out, "paused") {
		t.Fatalf("markets list: %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, "", "markets", "activate", "IS"); code != 1 || !strings.Contains(errOut, "market not found") {
		t.Fatalf("Iceland is no market: %d %s", code, errOut)
	}
}
