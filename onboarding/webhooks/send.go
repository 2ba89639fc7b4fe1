package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// Sign computes the Standard Webhooks signature header value for a message:
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)),
// where key is the base64 part of the "whsec_" secret.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", msgID, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Message is the JSON body of every push (the Standard Webhooks payload
// shape): the type, the time the event was created and its data. It is the
// same for every attempt.
type Message struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (ev *Event) body() []byte {
	b, _ := json.Marshal(Message{Type: ev.Type, Timestamp: ev.CreatedAt.UTC(), Data: ev.Payload})
	return b
}

// claimed is a delivery this replica holds the lease of.
type claimed struct {
	Delivery
	token string
	ev    Event
	ep    Endpoint
}

// claimDue leases up to n due deliveries of active endpoints of active
// providers. SKIP LOCKED lets replicas claim side by side; the lease keeps
// a claimed row away from them until it ends, which only happens when the
// holder died (a lease outlives the attempt's timeout by far).
func (s *Service) claimDue(ctx context.Context, n int) ([]claimed, error) {
	if n <= 0 {
		return nil, nil
	}
	now := s.now()
	token := randomID("", 8)
	var ds []Delivery
	err := s.db(ctx).Raw(`WITH due AS (
		SELECT d.id FROM webhook_deliveries d
		JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'active'
		JOIN providers p ON p.id = d.provider_id
			AND (p.status = 'active' OR (e.sandbox AND p.status IN ('submitted','in_review','info_requested')))
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)
		ORDER BY d.next_attempt_at LIMIT ? FOR UPDATE OF d SKIP LOCKED)
	UPDATE webhook_deliveries d SET lease_until = ?, lease_token = ? FROM due WHERE d.id = due.id RETURNING d.*`,
		now, now, n, now.Add(s.opt().Lease), token).Scan(&ds).Error
	if err != nil || len(ds) == 0 {
		return nil, errs.Wrap(err, "claim deliveries")
	}
	evIDs, epIDs := make([]string, len(ds)), make([]int64, len(ds))
	for i, d := range ds {
		evIDs[i], epIDs[i] = d.EventID, d.EndpointID
	}
	var evs []Event
	var eps []Endpoint
	if err := s.db(ctx).Where("id IN ?", evIDs).Find(&evs).Error; err != nil {
		return nil, errs.Wrap(err, "claimed events")
	}
	if err := s.db(ctx).Where("id IN ?", epIDs).Find(&eps).Error; err != nil {
		return nil, errs.Wrap(err, "claimed endpoints")
	}
	evBy, epBy := map[string]Event{}, map[int64]Endpoint{}
	for _, e := range evs {
		evBy[e.ID] = e
	}
	for _, e := range eps {
		epBy[e.ID] = e
	}
	out := make([]claimed, len(ds))
	for i, d := range ds {
		out[i] = claimed{Delivery: d, token: token, ev: evBy[d.EventID], ep: epBy[d.EndpointID]}
	}
	return out, nil
}

func (s *Service) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	s.httpOnce.Do(func() {
		s.httpc = &http.Client{Timeout: s.opt().Timeout, Transport: s.transport(),
			// A redirect is a failed attempt: the signature was made for this URL's owner.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return s.httpc
}

// outcome of one attempt.
type outcome struct {
	status   int
	err      string
	response string
	started  time.Time
	took     time.Duration
	bytes    int64
}

func (o outcome) ok() bool { return o.err == "" && o.status >= 200 && o.status < 300 }

// deliver makes one attempt for c and records it.
func (s *Service) deliver(ctx context.Context, c claimed) error {
	manual := c.StatusReason == "redelivery by hand"
	if c.ev.DataCarrying() {
		ok, reason := false, "consent_unverifiable"
		if s.ConsentActive != nil {
			var err error
			done := s.dbTurn()
			ok, reason, err = s.ConsentActive(ctx, ConsentCheck{ProviderID: c.ProviderID, ConsentID: c.ev.ConsentID,
				VIN: c.ev.VIN, ContainerID: c.ev.ContainerID, Sandbox: c.ep.Sandbox})
			done()
			if err != nil {
				return s.release(ctx, c, err)
			}
		}
		if !ok {
			return s.finish(ctx, c, DeliveryDropped, reason)
		}
	}
	body := c.ev.body()
	o := s.post(ctx, c, body)
	if ctx.Err() != nil && !o.ok() { // shutting down: not an attempt, another replica (or the next start) sends it
		return s.release(context.WithoutCancel(ctx), c, ctx.Err())
	}
	o.bytes = int64(len(body))
	return s.record(context.WithoutCancel(ctx), c, o, manual)
}

func (s *Service) post(ctx context.Context, c claimed, body []byte) outcome {
	o := outcome{started: s.now()}
	sig, err := Sign(string(c.ep.Secret), c.ev.ID, o.started, body)
	if err != nil {
		return s.failed(c, o, FailureSigning, err)
	}
	rctx, cancel := context.WithTimeout(ctx, s.opt().Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.ep.URL, bytes.NewReader(body))
	if err != nil {
		return s.failed(c, o, FailureInvalidURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "CarData-Webhooks/1")
	req.Header.Set("webhook-id", c.ev.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(o.started.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	start := time.Now()
	res, err := s.client().Do(req)
	o.took = time.Since(start)
	if err != nil {
		if ctx.Err() != nil { // shutting down: deliver releases the delivery, nothing is shown
			o.err = ctx.Err().Error()
			return o
		}
		return s.failed(c, o, failureCategory(err), err)
	}
	defer res.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	o.status = res.StatusCode
	o.response = strings.ToValidUTF8(string(excerpt), "")
	if !o.ok() {
		o.err = fmt.Sprintf("HTTP %d", res.StatusCode)
	}
	return o
}

// failed records a failed attempt as its category (see failure.go) and
// logs the error itself, which may name internal addresses.
func (s *Service) failed(c claimed, o outcome, category string, err error) outcome {
	o.err = category
	s.log().Warn("webhook attempt failed", "delivery", c.ID, "endpoint", c.EndpointID, "event", c.EventID,
		"category", category, "error", err.Error())
	return o
}

// Backoff is the delay before retry number n (1-based): exponential from
// BaseBackoff, capped at MaxBackoff, with "equal jitter" (half fixed, half
// random) so failing receivers are not hit in lockstep.
func (o Options) Backoff(n int) time.Duration {
	o = o.withDefaults()
	d := o.BaseBackoff
	for i := 1; i < n && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxBackoff)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// record stores the attempt and moves the delivery on, in one transaction
// guarded by the lease token: a holder whose lease was taken over records
// nothing.
func (s *Service) record(ctx context.Context, c claimed, o outcome, manual bool) error {
	defer s.dbTurn()()
	now := s.now()
	return s.db(ctx).Transaction(func(tx *gorm.DB) error {
		var code *int
		if o.status != 0 {
			code = &o.status
		}
		upd := map[string]any{"attempts": gorm.Expr("attempts + 1"), "last_status_code": code, "last_error": o.err,
			"lease_until": nil, "lease_token": nil}
		deadReason := ""
		switch {
		case o.ok():
			upd["status"], upd["finished_at"], upd["status_reason"] = DeliverySucceeded, now, ""
		case !now.Before(c.GiveUpAt):
			deadReason = fmt.Sprintf("gave up after %d attempts", c.Attempts+1)
			if manual {
				deadReason = "redelivery by hand failed"
			}
			upd["status"], upd["finished_at"], upd["status_reason"] = DeliveryDead, now, deadReason
		default:
			upd["next_attempt_at"] = now.Add(s.opt().Backoff(c.Attempts + 1))
			upd["status_reason"] = ""
		}
		res := tx.Model(&Delivery{}).Where("id = ? AND lease_token = ?", c.ID, c.token).Updates(upd)
		if res.Error != nil {
			return errs.Wrap(res.Error, "record attempt")
		}
		if res.RowsAffected == 0 {
			return nil // the lease ran out and another replica took over
		}
		a := Attempt{DeliveryID: c.ID, Attempt: c.Attempts + 1, Manual: manual, StartedAt: o.started,
			DurationMS: int(o.took.Milliseconds()), StatusCode: code, Error: o.err, Response: clip(o.response, 1000)}
		if err := tx.Create(&a).Error; err != nil {
			return errs.Wrap(err, "store attempt")
		}
		if o.ok() {
			if err := tx.Exec(`UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL, last_success_at = ? WHERE id = ?`,
				now, c.EndpointID).Error; err != nil {
				return errs.Wrap(err, "endpoint success")
			}
			if c.ev.DataCarrying() {
				if s.RecordPush == nil {
					return errs.Wrap(errors.New("no ledger wired"), "record push")
				}
				return s.RecordPush(ctx, tx, PushRecord{ProviderID: c.ProviderID, VIN: c.ev.VIN, ContainerID: c.ev.ContainerID,
					ContainerVersion: c.ev.ContainerVersion, ConsentID: c.ev.ConsentID, KeyIDs: c.ev.KeyIDs,
					EventID: c.ev.ID, EventType: c.ev.Type,
					Bytes: o.bytes, RequestID: fmt.Sprintf("%s:%d", c.ev.ID, c.EndpointID), At: now, Sandbox: c.ep.Sandbox})
			}
			return nil
		}
		return s.endpointFailed(ctx, tx, c.EndpointID, now)
	})
}

// endpointFailed counts a failure and disables an endpoint that has failed
// DisableMin times in a row over at least DisableAfter; the provider is
// told by e-mail and its queued deliveries to it are dead-lettered.
func (s *Service) endpointFailed(ctx context.Context, tx *gorm.DB, id int64, now time.Time) error {
	var e Endpoint
	err := tx.Raw(`UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
		failing_since = COALESCE(failing_since, ?) WHERE id = ? RETURNING *`, now, id).Scan(&e).Error
	if err != nil {
		return errs.Wrap(err, "endpoint failure")
	}
	o := s.opt()
	if e.Status != EndpointActive || e.ConsecutiveFailures < o.DisableMin || e.FailingSince == nil || now.Sub(*e.FailingSince) < o.DisableAfter {
		return nil
	}
	reason := fmt.Sprintf("disabled automatically after %d failed attempts in a row since %s", e.ConsecutiveFailures,
		e.FailingSince.UTC().Format("2006-01-02 15:04 MST"))
	if err := tx.Exec(`UPDATE webhook_endpoints SET status = 'disabled', status_reason = ?, updated_at = ? WHERE id = ?`, reason, now, id).Error; err != nil {
		return errs.Wrap(err, "disable endpoint")
	}
	if err := tx.Exec(`UPDATE webhook_deliveries SET status = 'dead', status_reason = 'endpoint_disabled', finished_at = ?,
		lease_until = NULL, lease_token = NULL WHERE endpoint_id = ? AND status = 'pending'`, now, id).Error; err != nil {
		return errs.Wrap(err, "dead-letter deliveries")
	}
	var to struct{ ContactEmail, LegalName string }
	if err := tx.Raw("SELECT contact_email, legal_name FROM providers WHERE id = ?", e.ProviderID).Scan(&to).Error; err != nil {
		return errs.Wrap(err, "provider contact")
	}
	if to.ContactEmail != "" {
		z, err := jobs.ProviderMailLocale(tx, to.ContactEmail, e.ProviderID)
		if err != nil {
			return err
		}
		subject, body := z.Mail("webhook.endpoint_disabled", "Company", to.LegalName, "URL", e.URL, "ID", e.ID,
			"Failures", e.ConsecutiveFailures, "Since", z.DateTime(*e.FailingSince), "Link", s.PublicURL+"/portal/webhooks")
		err = jobs.Enqueue(ctx, tx, jobs.Message{Kind: "webhook.endpoint_disabled", To: to.ContactEmail,
			ObjectType: "webhook_endpoint", ObjectID: strconv.FormatInt(id, 10), Subject: subject, Body: body,
			DedupeKey: fmt.Sprintf("webhook.endpoint_disabled:%d:%d", id, e.FailingSince.Unix())})
		if err != nil {
			return err
		}
	}
	return audit.Recordf(ctx, tx, "webhook.disable", "provider", strconv.FormatInt(e.ProviderID, 10),
		"webhook endpoint %d disabled automatically after %d failed attempts in a row since %s", id, e.ConsecutiveFailures,
		e.FailingSince.UTC().Format("2006-01-02 15:04 MST"))
}

// finish ends a delivery without an attempt (dropped: consent gone).
func (s *Service) finish(ctx context.Context, c claimed, status, reason string) error {
	defer s.dbTurn()()
	err := s.db(ctx).Exec(`UPDATE webhook_deliveries SET status = ?, status_reason = ?, finished_at = ?,
		lease_until = NULL, lease_token = NULL WHERE id = ? AND lease_token = ?`, status, reason, s.now(), c.ID, c.token).Error
	return errs.Wrap(err, "finish delivery")
}

// release gives a claimed delivery back without counting an attempt.
func (s *Service) release(ctx context.Context, c claimed, cause error) error {
	defer s.dbTurn()()
	err := s.db(ctx).Exec(`UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL
		WHERE id = ? AND lease_token = ?`, c.ID, c.token).Error
	if err != nil {
		return errs.Wrap(err, "release delivery")
	}
	return cause
}

// dbTurn waits until an attempt may use the database (Opt.DBConcurrency)
// and returns the function that gives the turn back. Attempts take it
// around each of their short database steps, holding no connection while
// they wait; the wait is not cancelled, so a delivery claimed before a
// shutdown is still released or recorded.
func (s *Service) dbTurn() func() {
	s.dbOnce.Do(func() {
		if n := s.opt().DBConcurrency; n > 0 {
			s.dbSlots = make(chan struct{}, n)
		}
	})
	if s.dbSlots == nil {
		return func() {}
	}
	s.dbSlots <- struct{}{}
	return func() { <-s.dbSlots }
}

func (s *Service) kickChan() chan struct{} {
	s.kickOnce.Do(func() { s.kick = make(chan struct{}, 1) })
	return s.kick
}

// Run is the push worker (a continuous app worker): it fans vehicle events
// out to consented providers and sends due deliveries, up to
// Opt.Concurrency at a time, until ctx ends; then it waits for the
// attempts in flight.
func (s *Service) Run(ctx context.Context) {
	o := s.opt()
	kick := s.kickChan()
	slots := make(chan struct{}, o.Concurrency)
	freed := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		fanned, err := s.FanOut(ctx, 2000)
		if err != nil && ctx.Err() == nil {
			s.log().Error("webhook fan-out failed", "error", err.Error())
		}
		cs, err := s.claimDue(ctx, cap(slots)-len(slots))
		if err != nil && ctx.Err() == nil {
			s.log().Error("webhook claim failed", "error", err.Error())
		}
		for _, c := range cs {
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() {
					<-slots
					wg.Done()
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
				if err := s.deliver(ctx, c); err != nil && ctx.Err() == nil {
					s.log().Error("webhook delivery failed", "delivery", c.ID, "error", err.Error())
					if err := s.processingFailed(ctx, c, err); err != nil && ctx.Err() == nil {
						s.log().Error("webhook delivery failure not recorded", "delivery", c.ID, "error", err.Error())
					}
				}
			}()
		}
		if fanned > 0 || (len(cs) > 0 && len(slots) < cap(slots)) {
			continue
		}
		select {
		case <-ctx.Done():
		case <-kick:
		case <-freed:
		case <-time.After(o.Poll):
		}
	}
}

// Pending counts deliveries waiting (tests and metrics).
func (s *Service) Pending(ctx context.Context) (int64, error) {
	var n int64
	err := s.db(ctx).Model(&Delivery{}).Where("status = ?", DeliveryPending).Count(&n).Error
	return n, errs.Wrap(err, "count pending")
}

// DeliverDue sends every due delivery once, in this goroutine (CLI and
// tests); it returns how many were attempted. A delivery whose processing
// fails is handled as in Run (back-off, then dead-lettered).
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		cs, err := s.claimDue(ctx, 50)
		if err != nil || len(cs) == 0 {
			return n, err
		}
		for _, c := range cs {
			if err := s.deliver(ctx, c); err != nil {
				if ctx.Err() != nil {
					return n, err
				}
				// One delivery that cannot be processed stops no other.
				if err := s.processingFailed(ctx, c, err); err != nil {
					return n, err
				}
			}
			n++
		}
	}
}
