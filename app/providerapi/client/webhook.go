package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file is written by hand (the document describes requests, not the
// pushes CarData sends): it verifies a push the way the Standard Webhooks
// specification says, with nothing beyond the standard library.

// WebhookMessage is the body of every push: the event type, when the event
// was created, and its data (its shape depends on Type). ID is the push's
// webhook-id header: the event's stable id, the same on every retry, so a
// receiver can drop a push it has already handled.
type WebhookMessage struct {
	ID        string          `json:"-"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// WebhookTolerance is how far a push's webhook-timestamp may lie from the
// receiver's clock: an older push is refused so that a recorded one cannot
// be replayed later.
const WebhookTolerance = 5 * time.Minute

// ErrWebhookSignature is returned for a push whose headers or signature do
// not verify with the endpoint's secret: answer it 401 and do not act on it.
var ErrWebhookSignature = errors.New("webhook: signature does not verify")

// ErrWebhookTimestamp is returned for a push signed too long ago (or in the
// future) for WebhookTolerance.
var ErrWebhookTimestamp = errors.New("webhook: timestamp outside the tolerance")

// VerifyWebhook checks one push against the endpoint's signing secret
// (whsec_..., shown when the endpoint was created) and returns its message.
// The signature is HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>"
// with the secret's key, sent base64 in webhook-signature as "v1,<sig>"
// (several space-separated signatures are accepted: any one must match).
// Pass the body exactly as received, before any JSON decoding; now is the
// receiver's clock (time.Now()).
func VerifyWebhook(secret string, header http.Header, body []byte, now time.Time) (*WebhookMessage, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("webhook: the secret is not a whsec_ secret: %w", err)
	}
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return nil, ErrWebhookSignature
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, ErrWebhookSignature
	}
	if d := now.Sub(time.Unix(unix, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return nil, ErrWebhookTimestamp
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, unix)
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, s := range strings.Fields(sigs) {
		version, sig, found := strings.Cut(s, ",")
		if !found || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return nil, ErrWebhookSignature
	}
	msg := &WebhookMessage{ID: id}
	if err := json.Unmarshal(body, msg); err != nil {
		return nil, fmt.Errorf("webhook: body: %w", err)
	}
	return msg, nil
}
