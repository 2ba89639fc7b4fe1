package config

import (
	"strings"
	"testing"
	"time"
)

func load(env map[string]string) (Config, error) {
	return LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://postgres@127.0.0.1:5432/cardata?sslmode=disable" || c.ListenAddr != "127.0.0.1:8080" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.BillingTimezone.String() != "Europe/Berlin" || c.SessionIdleTimeout != 30*time.Minute || c.CookieSecure {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"BILLING_TIMEZONE":     {"BILLING_TIMEZONE": "Mars/Olympus"},
		"LISTEN_ADDR":          {"LISTEN_ADDR": "8080"},
		"DATABASE_URL":         {"DATABASE_URL": "mysql://x"},
		"SESSION_IDLE_TIMEOUT": {"SESSION_IDLE_TIMEOUT": "soon"},
		"COOKIE_SECURE":        {"COOKIE_SECURE": "maybe"},
		"BCRYPT_COST":          {"BCRYPT_COST": "99"},
		"LOG_LEVEL":            {"LOG_LEVEL": "loud"},
		"OUTBOX_RETENTION":     {"OUTBOX_RETENTION": "ninety days"},
		"SECRETS_KEY":          {"SECRETS_KEY": "c2hvcnQ="},
	}
	for name, env := range cases {
		_, err := load(env)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestOutboxRetention(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil || c.OutboxRetention != 90*24*time.Hour {
		t.Fatalf("default: %v %v", c.OutboxRetention, err)
	}
	for v, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2160h": 90 * 24 * time.Hour, " 1d ": 24 * time.Hour} {
		c, err := load(map[string]string{"OUTBOX_RETENTION": v})
		if err != nil || c.OutboxRetention != want {
			t.Errorf("%q: %v %v", v, c.OutboxRetention, err)
		}
	}
	for _, v := range []string{"0", "-5d", "d", "1.5d", "12h", "0d", "forever", "9999999d"} {
		_, err := load(map[string]string{"OUTBOX_RETENTION": v})
		if err == nil || !strings.Contains(err.Error(), "OUTBOX_RETENTION") {
			t.Errorf("%q: got %v", v, err)
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	t.Parallel()
	c, err := load(map[string]string{"DATABASE_URL": "postgres://u:hunter2@db/x", "SMTP_PASSWORD": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(func() []string {
		var out []string
		for k, v := range c.Redacted() {
			out = append(out, k+"="+strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", ""), " ", "")))
		}
		return out
	}(), ",")
	if strings.Contains(s, "hunter2") || strings.Contains(s, "s3cret") {
		t.Fatalf("secret leaked: %s", s)
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

// Outside development (a PUBLIC_URL that is not loopback) the key that seals
// webhook signing secrets is required; given, it must be 32 bytes.
func TestSecretsKey(t *testing.T) {
	t.Parallel()
	if _, err := load(map[string]string{"PUBLIC_URL": "https://cardata.example"}); err == nil || !strings.Contains(err.Error(), "SECRETS_KEY") {
		t.Fatalf("production without a key: %v", err)
	}
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	c, err := load(map[string]string{"PUBLIC_URL": "https://cardata.example", "SECRETS_KEY": key})
	if err != nil || len(c.SecretsKey) != 32 || c.Redacted()["secrets_key_set"] != true {
		t.Fatalf("with a key: %v %d", err, len(c.SecretsKey))
	}
	if c, err := load(nil); err != nil || c.SecretsKey != nil {
		t.Fatalf("development needs no key: %v", err)
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := load(map[string]string{"TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "::1/128"}
	if len(c.TrustedProxies) != len(want) {
		t.Fatalf("proxies %v", c.TrustedProxies)
	}
	for i, p := range c.TrustedProxies {
		if p.String() != want[i] {
			t.Fatalf("proxies %v, want %v", c.TrustedProxies, want)
		}
	}
	if c, _ := load(nil); len(c.TrustedProxies) != 0 {
		t.Fatalf("default trusts %v", c.TrustedProxies)
	}
	if _, err := load(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}); err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXIES") {
		t.Fatalf("a host name was accepted: %v", err)
	}
}
