package providerapi

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"cardata/onboarding/webhooks"
	"cardata/policies/errs"
)

// IdempotencyTTL is how long a key's answer is kept for replay.
const IdempotencyTTL = 24 * time.Hour

type idemRow struct {
	RequestHash  []byte
	Status       *int
	ContentType  string
	Location     string
	ResponseBody []byte
}

// idempotent runs a POST under an Idempotency-Key (stored in PostgreSQL,
// per API client): the first request runs and its answer is stored; a
// retry with the same key and the same method, path and body gets that
// answer again (Idempotency-Replayed: true); the same key with a different
// request is refused with 422; a retry while the first is still running
// gets 409. Answers with a 5xx status are not kept, so the client may retry.
func (h *Handler) idempotent(c *fiber.Ctx, clientID int64, key string) (err error) {
	if len(key) > 255 || key == "" {
		return errs.New(errs.BadRequest, "idempotency_key_invalid", "Idempotency-Key must have 1 to 255 characters")
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e {
			return errs.New(errs.BadRequest, "idempotency_key_invalid", "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	sum := sha256.New()
	sum.Write([]byte(c.Method() + " " + c.OriginalURL() + "\n"))
	sum.Write(c.Body())
	hash := hex.EncodeToString(sum.Sum(nil))
	db := h.DB.WithContext(c.UserContext())
	res := db.Exec(`INSERT INTO api_idempotency_keys (client_id, key, request_hash) VALUES (?, ?, decode(?, 'hex')) ON CONFLICT DO NOTHING`,
		clientID, key, hash)
	if res.Error != nil {
		return errs.Wrap(res.Error, "idempotency key")
	}
	if res.RowsAffected == 0 {
		return h.replay(c, clientID, key, hash)
	}
	done := false
	defer func() {
		if !done { // a panic or an error we could not render: let the client retry
			_ = h.DB.Exec("DELETE FROM api_idempotency_keys WHERE client_id = ? AND key = ?", clientID, key).Error
		}
	}()
	if herr := c.Next(); herr != nil {
		if rerr := c.App().ErrorHandler(c, herr); rerr != nil {
			return rerr
		}
	}
	status := c.Response().StatusCode()
	if status >= 500 {
		return nil // deferred delete
	}
	body := c.Response().Body()
	if secret, _ := c.Locals(secretAnswerKey).(bool); secret {
		if body, err = h.sealAnswer(body); err != nil {
			return errs.Wrap(err, "seal idempotent answer")
		}
	}
	err = h.DB.Exec(`UPDATE api_idempotency_keys SET status = ?, content_type = ?, location = ?, response_body = decode(?, 'hex')
		WHERE client_id = ? AND key = ?`, status, string(c.Response().Header.ContentType()),
		c.GetRespHeader(fiber.HeaderLocation), hex.EncodeToString(body), clientID, key).Error
	if err != nil {
		return errs.Wrap(err, "store idempotent answer")
	}
	done = true
	return nil
}

func (h *Handler) replay(c *fiber.Ctx, clientID int64, key string, hash string) error {
	var row idemRow
	err := h.DB.WithContext(c.UserContext()).Raw(`SELECT request_hash, status, content_type, location, response_body
		FROM api_idempotency_keys WHERE client_id = ? AND key = ?`, clientID, key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errs.New(errs.Conflict, "idempotency_request_in_progress", "a request with this Idempotency-Key just failed or is running; retry")
	}
	if err != nil {
		return errs.Wrap(err, "idempotency replay")
	}
	if hex.EncodeToString(row.RequestHash) != hash {
		return errs.New(errs.Invalid, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	}
	if row.Status == nil {
		return errs.New(errs.Conflict, "idempotency_request_in_progress", "the first request with this Idempotency-Key is still running; retry shortly")
	}
	if row.Location != "" {
		c.Set(fiber.HeaderLocation, row.Location)
	}
	body, err := h.openAnswer(row.ResponseBody)
	if err != nil {
		// The key that sealed the answer is gone (a restart without
		// SECRETS_KEY, or a new SECRETS_KEY): the first request did its
		// work, so point at what it made rather than run it again.
		return errs.New(errs.Conflict, "idempotency_answer_unavailable",
			"the first request with this Idempotency-Key succeeded (HTTP %d) but its answer carried a secret and can no longer be replayed; read the resource at its Location", *row.Status)
	}
	c.Set("Idempotency-Replayed", "true")
	c.Set(fiber.HeaderContentType, row.ContentType)
	return c.Status(*row.Status).Send(body)
}

// An answer that carries a secret (the signing secret a new webhook
// endpoint is shown once) is never stored in clear for replay. It is sealed
// with AES-256-GCM under SECRETS_KEY, the key that seals the signing
// secrets in webhook_endpoints, so any replica replays it whole. Without
// SECRETS_KEY (development: the configuration requires the key whenever
// PUBLIC_URL is not a loopback address) the signing secrets themselves stay
// in clear, but we still do not copy one into a second table that is easy
// to overlook in a dump: the answer is sealed under a key made when the
// process starts and kept only in its memory. A replay by the same process
// gets the whole answer; after a restart, on another replica or after
// SECRETS_KEY changed the answer cannot be opened and the replay gets 409
// idempotency_answer_unavailable with the Location of what was made (GET
// /api/v1/webhooks/{id} shows the secret again).

// secretAnswerKey marks, in c.Locals, an answer that carries a secret.
const secretAnswerKey = "providerapi.secretAnswer"

// answerPurpose is the additional data of a sealed answer.
const answerPurpose = "idempotent-answer"

// Prefixes of a sealed response_body; a clear one is JSON and starts with
// '{' or '['.
var (
	sealedWithSecretsKey = []byte("enc1:")
	sealedWithMemoryKey  = []byte("mem1:")
)

// markSecretAnswer tells idempotent that the answer carries a secret.
func markSecretAnswer(c *fiber.Ctx) { c.Locals(secretAnswerKey, true) }

// memoryAEAD is this process's key for answers sealed without SECRETS_KEY.
func (h *Handler) memoryAEAD() (cipher.AEAD, error) {
	h.memKeyOnce.Do(func() {
		key := make([]byte, 32)
		if _, h.memKeyErr = rand.Read(key); h.memKeyErr == nil {
			h.memKey, h.memKeyErr = webhooks.NewAEAD(key)
		}
	})
	return h.memKey, h.memKeyErr
}

// secretsAEAD is the app's SECRETS_KEY (the one its webhook service seals
// signing secrets under), nil without one.
func (h *Handler) secretsAEAD() cipher.AEAD {
	if h.Webhooks == nil {
		return nil
	}
	return h.Webhooks.Secrets.AEAD()
}

func (h *Handler) sealAnswer(body []byte) ([]byte, error) {
	prefix, aead := sealedWithSecretsKey, h.secretsAEAD()
	if aead == nil {
		var err error
		if aead, err = h.memoryAEAD(); err != nil {
			return nil, err
		}
		prefix = sealedWithMemoryKey
	}
	sealed, err := webhooks.SealBytes(aead, body, answerPurpose)
	if err != nil {
		return nil, err
	}
	return append(bytes.Clone(prefix), sealed...), nil
}

// openAnswer returns a stored answer in clear (one stored in clear as is).
func (h *Handler) openAnswer(stored []byte) ([]byte, error) {
	var aead cipher.AEAD
	var prefix []byte
	switch {
	case bytes.HasPrefix(stored, sealedWithSecretsKey):
		aead, prefix = h.secretsAEAD(), sealedWithSecretsKey
	case bytes.HasPrefix(stored, sealedWithMemoryKey):
		aead, _ = h.memoryAEAD()
		prefix = sealedWithMemoryKey
	default:
		return stored, nil
	}
	if aead == nil {
		return nil, errors.New("no key for a sealed answer")
	}
	return webhooks.OpenBytes(aead, stored[len(prefix):], answerPurpose)
}

// PurgeIdempotencyKeys deletes answers older than IdempotencyTTL.
func PurgeIdempotencyKeys(ctx context.Context, db *gorm.DB, now time.Time) (int64, error) {
	res := db.WithContext(ctx).Exec("DELETE FROM api_idempotency_keys WHERE created_at < ?", now.Add(-IdempotencyTTL))
	return res.RowsAffected, errs.Wrap(res.Error, "purge idempotency keys")
}
