package providerapi

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// The developer page shows the changelog from an embedded copy; it must be
// the one in docs/.
func TestChangelogCopyIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("../../docs/API-CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(changelog, want) {
		t.Fatal("app/providerapi/changelog.md differs from docs/API-CHANGELOG.md: run `go generate ./app/providerapi`")
	}
	h := string(ChangelogHTML())
	if !strings.Contains(h, "<h3>Deprecation policy") || strings.Contains(h, "<h1>") || !strings.Contains(h, "<h4>One JSON style") || !strings.Contains(h, "<code>Sunset") || strings.Contains(h, "<script") {
		t.Fatalf("rendered changelog: %.400s", h)
	}
}

// The page's limits are the handler's own.
func TestLimitsAreTheHandlers(t *testing.T) {
	t.Parallel()
	h := &Handler{Limiter: NewLimiter(7, 42), Tokens: &Tokens{TTL: 9 * time.Minute}}
	l := h.Limits()
	if l.RatePerSecond != 7 || l.Burst != 42 || l.TokenTTL != 9*time.Minute || l.PageMax != 500 || l.AuthFailures != failureLimit ||
		l.AuthWindow != failureWindow || l.IdempotencyKept != IdempotencyTTL {
		t.Fatalf("limits: %+v", l)
	}
	if !strings.Contains(ExampleSource, "client.VerifyWebhook") || !strings.Contains(ExampleSource, "clientcredentials.Config") {
		t.Fatal("the embedded example is not the example program")
	}
}
