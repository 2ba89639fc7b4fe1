package providerapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

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
	err = h.DB.Exec(`UPDATE api_idempotency_keys SET status = ?, content_type = ?, location = ?, response_body = decode(?, 'hex')
		WHERE client_id = ? AND key = ?`, status, string(c.Response().Header.ContentType()),
		c.GetRespHeader(fiber.HeaderLocation), hex.EncodeToString(c.Response().Body()), clientID, key).Error
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
	c.Set("Idempotency-Replayed", "true")
	if row.Location != "" {
		c.Set(fiber.HeaderLocation, row.Location)
	}
	c.Set(fiber.HeaderContentType, row.ContentType)
	return c.Status(*row.Status).Send(row.ResponseBody)
}

// PurgeIdempotencyKeys deletes answers older than IdempotencyTTL.
func (h *Handler) PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int64, error) {
	res := h.DB.WithContext(ctx).Exec("DELETE FROM api_idempotency_keys WHERE created_at < ?", now.Add(-IdempotencyTTL))
	return res.RowsAffected, errs.Wrap(res.Error, "purge idempotency keys")
}
