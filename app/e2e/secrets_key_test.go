package e2e

import (
	"encoding/base64"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/onboarding/webhooks"
)

// SECRETS_KEY belongs to the app instance: two apps in one process with
// different keys each seal under their own, and booting the second does
// not change what the first seals or can read.
func TestTwoAppsKeepTheirOwnSecretsKey(t *testing.T) {
	t.Parallel()
	const keyA, keyB = "0123456789abcdef0123456789abcdef", "another key of thirty-two bytes!"
	a := apptest.New(t, secretsKey(keyA))
	pa := mustActiveProvider(t, a, "Schlüssel A Versicherung AG", "AT", "ATU13585627")
	epA, err := a.App.Webhooks.CreateEndpoint(a.Ctx, pa.Provider.ID, webhooks.NewEndpoint{URL: "https://a.example/hook", EventTypes: []string{"consent.granted"}})
	if err != nil {
		t.Fatal(err)
	}
	b := apptest.New(t, secretsKey(keyB)) // booted second: it used to replace the process's key
	pb := mustActiveProvider(t, b, "Schlüssel B Versicherung AG", "AT", "ATU13585627")
	epB, err := b.App.Webhooks.CreateEndpoint(b.Ctx, pb.Provider.ID, webhooks.NewEndpoint{URL: "https://b.example/hook", EventTypes: []string{"consent.granted"}})
	if err != nil {
		t.Fatal(err)
	}
	// A endpoint created by A after B booted is sealed under A's key too.
	epA2, err := a.App.Webhooks.CreateEndpoint(a.Ctx, pa.Provider.ID, webhooks.NewEndpoint{URL: "https://a.example/hook2", EventTypes: []string{"consent.granted"}})
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		tt       *apptest.T
		pid      int64
		ep       *webhooks.Endpoint
		own, not string
	}{{a, pa.Provider.ID, epA, keyA, keyB}, {a, pa.Provider.ID, epA2, keyA, keyB}, {b, pb.Provider.ID, epB, keyB, keyA}} {
		got, err := c.tt.App.Webhooks.FindEndpoint(c.tt.Ctx, c.pid, c.ep.ID)
		if err != nil || got.Secret != c.ep.Secret || !strings.HasPrefix(string(got.Secret), "whsec_") {
			t.Fatalf("endpoint %d read back by its app: %v %+v", c.ep.ID, err, got)
		}
		var raw string
		c.tt.DB.Raw(`SELECT secret FROM webhook_endpoints WHERE id = ?`, c.ep.ID).Scan(&raw)
		sealed, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(raw, "enc1:"))
		if !strings.HasPrefix(raw, "enc1:") || err != nil {
			t.Fatalf("endpoint %d stored as %q", c.ep.ID, raw)
		}
		for key, opens := range map[string]bool{c.own: true, c.not: false} {
			aead, err := webhooks.NewAEAD([]byte(key))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := webhooks.OpenBytes(aead, sealed, "webhook-secret")
			if opens && (err != nil || string(plain) != string(c.ep.Secret)) {
				t.Fatalf("endpoint %d: its app's key does not open it: %v", c.ep.ID, err)
			}
			if !opens && err == nil {
				t.Fatalf("endpoint %d opens under the other app's key", c.ep.ID)
			}
		}
	}
}
