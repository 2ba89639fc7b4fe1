package webhooks

import (
	"context"
	"strings"
	"testing"

	"cardata/app/db/dbtest"
	"cardata/policies"
)

// With SECRETS_KEY set, signing secrets are stored encrypted and read back
// in clear; secrets stored in clear before are sealed by SealStoredSecrets;
// a wrong key cannot read them.
func TestSigningSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	var provider int64
	if err := gdb.Raw(`INSERT INTO providers (legal_name, legal_form, street, postal_code, city, country, vat_id, register_number,
		contact_name, contact_email, billing_email, intended_services, terms_version, terms_accepted_at, terms_client_addr, status)
		SELECT 'Sealed GmbH', 'GmbH', 'Weg 1', '80331', 'München', 'DE', 'DE129273398', 'HRB 1', 'Sam', 'sam@x.example', 'sam@x.example',
		       'tests', version, now(), '127.0.0.1', 'active' FROM terms_versions ORDER BY version LIMIT 1 RETURNING id`).Scan(&provider).Error; err != nil || provider == 0 {
		t.Fatalf("provider: %v", err)
	}
	// Made before a key was set: stored in clear.
	s := &Service{DB: gdb}
	ctx := policies.WithPrincipal(context.Background(), policies.System("test"))
	old, err := s.CreateEndpoint(ctx, provider, NewEndpoint{URL: "https://old.example/hook", EventTypes: []string{"consent.granted"}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	s.Secrets = key
	if n, err := SealStoredSecrets(ctx, gdb, key); err != nil || n != 1 {
		t.Fatalf("sealed %d: %v", n, err)
	}
	e, err := s.CreateEndpoint(ctx, provider, NewEndpoint{URL: "https://new.example/hook", EventTypes: []string{"consent.granted"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(e.Secret), "whsec_") {
		t.Fatalf("the caller gets the secret in clear: %q", e.Secret)
	}
	for _, want := range []*Endpoint{old, e} {
		var raw string
		gdb.Raw(`SELECT secret FROM webhook_endpoints WHERE id = ?`, want.ID).Scan(&raw)
		if !strings.HasPrefix(raw, "enc1:") || strings.Contains(raw, string(want.Secret)[6:]) {
			t.Fatalf("stored in clear: %q", raw)
		}
		got, err := s.FindEndpoint(ctx, provider, want.ID)
		if err != nil || got.Secret != want.Secret || got.SecretHint() != want.SecretHint() {
			t.Fatalf("read back: %v %q", err, got.Secret)
		}
	}
	if n, err := SealStoredSecrets(ctx, gdb, key); err != nil || n != 0 {
		t.Fatalf("sealed again: %d %v", n, err)
	}
	wrong, err := NewSecrets([]byte("another key of thirty-two bytes!"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Service{DB: gdb, Secrets: wrong}).FindEndpoint(ctx, provider, e.ID); err == nil {
		t.Fatal("a wrong key read the secret")
	}
	if _, err := (&Service{DB: gdb}).FindEndpoint(ctx, provider, e.ID); err == nil {
		t.Fatal("a service without key read the sealed secret")
	}
	// The service with the key still reads it: the other services' keys are theirs.
	if got, err := s.FindEndpoint(ctx, provider, e.ID); err != nil || got.Secret != e.Secret {
		t.Fatalf("read back after other keys were used: %v %q", err, got.Secret)
	}
}
