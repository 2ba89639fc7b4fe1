package client_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"cardata/app/providerapi/client"
	"cardata/onboarding/webhooks"
)

// VerifyWebhook accepts exactly what the server's signer (the one every
// push goes through) signs, and refuses a changed body, another secret, a
// stale timestamp and missing headers.
func TestVerifyWebhookAgreesWithTheServersSigner(t *testing.T) {
	t.Parallel()
	secret, other := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ="
	body := []byte(`{"type":"vehicle.serviceCall","timestamp":"2026-12-05T09:00:00Z","data":{"vin":"WBA00000000000001"}}`)
	now := time.Now()
	signed := func(at time.Time, b []byte, sigs ...string) http.Header {
		sig, err := webhooks.Sign(secret, "msg_1", at, b)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", "msg_1")
		h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
		for _, s := range sigs {
			sig = s + " " + sig
		}
		h.Set("webhook-signature", sig)
		return h
	}
	msg, err := client.VerifyWebhook(secret, signed(now, body), body, now)
	if err != nil || msg.ID != "msg_1" || msg.Type != "vehicle.serviceCall" || string(msg.Data) != `{"vin":"WBA00000000000001"}` {
		t.Fatalf("a signed push: %+v %v", msg, err)
	}
	// Several signatures (a secret in rotation): one must match.
	if _, err := client.VerifyWebhook(secret, signed(now, body, "v1,bm90LWl0", "v2,xyz"), body, now); err != nil {
		t.Fatalf("one of several signatures: %v", err)
	}
	changed := []byte(`{"type":"vehicle.serviceCall","timestamp":"2026-12-05T09:00:00Z","data":{"vin":"WBA00000000000002"}}`)
	for name, try := range map[string]func() error{
		"changed body": func() error { _, err := client.VerifyWebhook(secret, signed(now, body), changed, now); return err },
		"other secret": func() error { _, err := client.VerifyWebhook(other, signed(now, body), body, now); return err },
		"no signature": func() error {
			h := signed(now, body)
			h.Del("webhook-signature")
			_, err := client.VerifyWebhook(secret, h, body, now)
			return err
		},
		"another id": func() error {
			h := signed(now, body)
			h.Set("webhook-id", "msg_2")
			_, err := client.VerifyWebhook(secret, h, body, now)
			return err
		},
	} {
		if err := try(); !errors.Is(err, client.ErrWebhookSignature) {
			t.Errorf("%s: %v, want ErrWebhookSignature", name, err)
		}
	}
	old := now.Add(-client.WebhookTolerance - time.Minute)
	if _, err := client.VerifyWebhook(secret, signed(old, body), body, now); !errors.Is(err, client.ErrWebhookTimestamp) {
		t.Errorf("a stale push: %v, want ErrWebhookTimestamp", err)
	}
	if _, err := client.VerifyWebhook("not-a-secret!", signed(now, body), body, now); err == nil {
		t.Error("a malformed secret verified")
	}
}
