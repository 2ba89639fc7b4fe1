// Package webhooks is the push side of the provider API: a provider's
// endpoints, the events created for it, one delivery per event and
// endpoint, and every attempt made. Messages are signed per the Standard
// Webhooks specification (webhook-id, webhook-timestamp, webhook-signature
// "v1,<base64 HMAC-SHA256>" with a "whsec_" secret), sent at least once with
// a stable event id, retried with exponential backoff and jitter for up to
// three days, then dead-lettered. Endpoints that keep failing are disabled
// and the provider is told by e-mail.
//
// It also declares the provider's read view of its delivery ledger and
// usage (ledger.go), shown by the API, the portal and the staff pages.
//
// Billing is not imported (it sits above onboarding), nor is the consent
// module's service: the service takes functions (Recipients, ConsentActive,
// RecordPush) that app wires to them; the recipients' types are the consent
// module's (policies/consent), one set for both.
package webhooks

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"cardata/onboarding/catalog"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// Event types a provider can subscribe to.
const (
	TypeTelematicsUpdated = "telematics.updated"
	TypeServiceCall       = "vehicle.serviceCall"
	TypePositionUpdated   = "vehicle.positionUpdated"
	TypeConsentGranted    = "consent.granted"
	TypeConsentRevoked    = "consent.revoked"
	TypeContainerApproved = "container.approved"
	TypeContainerRejected = "container.rejected"
	// TypeTest is sent by "send test event"; every endpoint gets it on request.
	TypeTest = "webhook.test"
)

// EventTypes are the subscribable types, in display order.
var EventTypes = []string{TypeTelematicsUpdated, TypeServiceCall, TypePositionUpdated,
	TypeConsentGranted, TypeConsentRevoked, TypeContainerApproved, TypeContainerRejected}

// TypeForPushEvent maps a catalog vehicle event type to the event type
// providers subscribe to, as the catalog's events section says: positions
// and service calls have their own types, the others are telematics
// updates (so is a type the catalog no longer lists).
func TypeForPushEvent(pushEvent string) string {
	if e, ok := catalog.Default().Event(pushEvent); ok {
		return e.WebhookType
	}
	return TypeTelematicsUpdated
}

// Endpoint statuses.
const (
	EndpointActive   = "active"
	EndpointDisabled = "disabled" // kept failing (or disabled by hand); can be enabled again
	EndpointDeleted  = "deleted"  // kept for the attempt history only
)

// Endpoint is a provider's push receiver.
type Endpoint struct {
	ID                  int64        `gorm:"primaryKey" json:"id"`
	ProviderID          int64        `json:"-"`
	URL                 string       `json:"url"`
	Description         string       `json:"description"`
	EventTypes          TypeList     `gorm:"type:text[]" json:"eventTypes"`
	Secret              SealedSecret `gorm:"serializer:sealed" json:"-"` // encrypted at rest under Service.Secrets (sealed.go)
	Status              string       `json:"status"`
	StatusReason        string       `json:"statusReason,omitempty"`
	ConsecutiveFailures int          `json:"consecutiveFailures"`
	FailingSince        *time.Time   `json:"failingSince,omitempty"`
	LastSuccessAt       *time.Time   `json:"lastSuccessAt,omitempty"`
	// Sandbox: a sandbox endpoint (created by a sandbox client). It gets the
	// events of the simulated fleet and sandbox containers, and only those.
	Sandbox   bool      `json:"sandbox"`
	CreatedBy string    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"-"`
}

func (Endpoint) TableName() string { return "webhook_endpoints" }

// SecretHint is the end of the secret, to tell secrets apart.
func (e *Endpoint) SecretHint() string {
	if len(e.Secret) < 4 {
		return ""
	}
	return string(e.Secret[len(e.Secret)-4:])
}

// Subscribed reports whether the endpoint wants events of type t.
func (e *Endpoint) Subscribed(t string) bool {
	return t == TypeTest || slices.Contains(e.EventTypes, t)
}

// Event is one message for one provider.
type Event struct {
	ID               string          `gorm:"primaryKey" json:"id"`
	ProviderID       int64           `json:"-"`
	Type             string          `json:"type"`
	VIN              string          `gorm:"column:vin" json:"vin,omitempty"`
	ContainerID      int64           `json:"containerId,omitempty"`
	ContainerVersion int             `json:"-"`
	ConsentID        int64           `json:"-"`
	KeysCount        int             `json:"-"`
	KeyIDs           sqlarray.Int16s `gorm:"column:key_ids" json:"-"` // the catalog keys a data-carrying event carries
	SourceEventID    *int64          `json:"-"`
	Payload          json.RawMessage `gorm:"type:jsonb" json:"data"`
	CreatedAt        time.Time       `json:"timestamp"`
}

func (Event) TableName() string { return "webhook_events" }

// DataCarrying reports whether the event carries telematics values: those
// are checked against the consent at send time and billed when accepted.
func (e *Event) DataCarrying() bool { return e.KeysCount > 0 }

// Delivery statuses.
const (
	DeliveryPending   = "pending"   // waiting for its (next) attempt
	DeliverySucceeded = "succeeded" // a 2xx answer
	DeliveryDead      = "dead"      // gave up (3 days of failures, or the endpoint was disabled); redeliver by hand
	DeliveryDropped   = "dropped"   // not sent on purpose: the consent ended, or the endpoint was deleted
)

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID             int64      `gorm:"primaryKey" json:"id"`
	EventID        string     `json:"eventId"`
	EndpointID     int64      `json:"endpointId"`
	ProviderID     int64      `json:"-"`
	Status         string     `json:"status"`
	StatusReason   string     `json:"statusReason,omitempty"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  time.Time  `json:"nextAttemptAt"`
	GiveUpAt       time.Time  `json:"-"`
	LeaseUntil     *time.Time `json:"-"`
	LeaseToken     *string    `json:"-"`
	LastStatusCode *int       `json:"lastStatusCode,omitempty"`
	LastError      string     `json:"lastError,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	FinishedAt     *time.Time `json:"finishedAt,omitempty"`

	EventType string    `gorm:"->;-:migration" json:"eventType"`
	Tries     []Attempt `gorm:"-" json:"attemptLog"`
}

func (Delivery) TableName() string { return "webhook_deliveries" }

// Attempt is one HTTP request made for a delivery.
type Attempt struct {
	ID         int64     `gorm:"primaryKey" json:"-"`
	DeliveryID int64     `json:"-"`
	Attempt    int       `json:"attempt"`
	Manual     bool      `json:"manual"`
	StartedAt  time.Time `json:"startedAt"`
	DurationMS int       `json:"durationMs"`
	StatusCode *int      `json:"statusCode,omitempty"`
	Error      string    `json:"error,omitempty"`
	Response   string    `json:"-"`
}

func (Attempt) TableName() string { return "webhook_attempts" }

// RecipientsFunc finds the recipients of each vehicle event, in order,
// each with the event's keys its container allows (the consent module
// answers it, consent.Service.RecipientsOf, in the caller's transaction,
// in one query). The types are the consent module's own: onboarding sits
// above policies, so there is one set of them and nothing to copy.
type RecipientsFunc func(ctx context.Context, tx *gorm.DB, events []consent.VehicleEvent) ([][]consent.Recipient, error)

// ConsentCheck names what a data-carrying push flows under.
type ConsentCheck struct {
	ProviderID  int64
	ConsentID   int64
	VIN         string
	ContainerID int64
	Sandbox     bool // the receiving endpoint is a sandbox endpoint
}

// ConsentActiveFunc says, at send time, whether a data-carrying push may
// still go out under its consent (the full data-access decision); reason
// is the decision's code when not.
type ConsentActiveFunc func(ctx context.Context, c ConsentCheck) (ok bool, reason string, err error)

// PushRecord is an accepted data-carrying push, for the delivery ledger.
type PushRecord struct {
	ProviderID       int64
	VIN              string
	ContainerID      int64
	ContainerVersion int
	ConsentID        int64
	KeyIDs           []int16 // the catalog keys whose values the push carried
	EventID          string  // the push event (evt_...) and its type
	EventType        string
	Bytes            int64
	RequestID        string // event id + ":" + endpoint id: a redelivery is recorded once
	At               time.Time
	// Sandbox: the push went to a sandbox endpoint; it is recorded as a
	// sandbox delivery, never billed.
	Sandbox bool
}

// RecordPushFunc writes r with tx, the transaction that marks the delivery
// succeeded; if it fails, the delivery stays unfinished and is sent again.
type RecordPushFunc func(ctx context.Context, tx *gorm.DB, r PushRecord) error

// Options tune delivery; zero values take the defaults.
type Options struct {
	Timeout      time.Duration // per attempt (10 s)
	RetryFor     time.Duration // give up after (3 days)
	BaseBackoff  time.Duration // first retry delay (10 s), doubled per attempt
	MaxBackoff   time.Duration // longest delay between attempts (6 h)
	Lease        time.Duration // how long a claimed delivery is reserved (Timeout + 50 s)
	DisableAfter time.Duration // an endpoint failing for this long ... (24 h)
	DisableMin   int           // ... with at least this many failures in a row is disabled (10)
	Concurrency  int           // attempts in flight per replica (8)
	Poll         time.Duration // idle wait between scans (1 s)
	// AllowLoopback accepts receivers on loopback addresses (development);
	// without it they are accepted only while PUBLIC_URL is a loopback
	// address. Plain http is accepted for loopback only; private and
	// reserved addresses are never reached (ssrf.go).
	AllowLoopback bool
	// DBConcurrency bounds the attempts using the database at once (their
	// consent check and their record; never the HTTP call): the push
	// worker's share of the pool budget less the loop's own connection.
	// 0: no bound besides Concurrency.
	DBConcurrency int
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.RetryFor, 72*time.Hour)
	def(&o.BaseBackoff, 10*time.Second)
	def(&o.MaxBackoff, 6*time.Hour)
	def(&o.Lease, o.Timeout+50*time.Second)
	def(&o.DisableAfter, 24*time.Hour)
	def(&o.Poll, time.Second)
	if o.DisableMin <= 0 {
		o.DisableMin = 10
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	return o
}

// Service manages endpoints and delivers events.
type Service struct {
	DB            *gorm.DB
	Opt           Options
	Recipients    RecipientsFunc    // nil: vehicle events are left for later
	ConsentActive ConsentActiveFunc // nil: data-carrying pushes are not sent (dropped)
	RecordPush    RecordPushFunc    // records an accepted data-carrying push in the delivery ledger (billing)
	HTTP          *http.Client      // nil: a client with Opt.Timeout that follows no redirects
	Log           *slog.Logger
	PublicURL     string
	Now           func() time.Time
	// Secrets seals the signing secrets at rest (SECRETS_KEY; nil: stored
	// in clear). Every statement of the service carries it (s.db).
	Secrets *Secrets
	metrics *metrics // Register sets it; nil: nothing counted

	kickOnce sync.Once
	kick     chan struct{}
	httpOnce sync.Once
	dbOnce   sync.Once
	dbSlots  chan struct{}
	httpc    *http.Client
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) opt() Options { return s.Opt.withDefaults() }

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Kick wakes the local worker (a new event or a redelivery).
func (s *Service) Kick() {
	select {
	case s.kickChan() <- struct{}{}:
	default:
	}
}

// TypeList is a text[] column of event types (plain identifiers, so the
// array literal needs no quoting).
type TypeList []string

// Value writes the PostgreSQL array literal.
func (l TypeList) Value() (driver.Value, error) { return "{" + strings.Join(l, ",") + "}", nil }

// Scan reads the PostgreSQL array literal.
func (l *TypeList) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		*l = nil
		return nil
	default:
		return fmt.Errorf("event types: unexpected %T", src)
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	*l = TypeList{}
	if s == "" {
		return nil
	}
	for _, t := range strings.Split(s, ",") {
		*l = append(*l, strings.Trim(t, `"`))
	}
	return nil
}

func randomID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewSecret returns a fresh "whsec_" signing secret (24 random bytes).
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// NewEndpoint is what a provider submits.
type NewEndpoint struct {
	URL         string   `json:"url"`
	Description string   `json:"description"`
	EventTypes  []string `json:"eventTypes"`
	// Sandbox is set from the caller (a sandbox client), never from the body.
	Sandbox bool `json:"-"`
}

// CheckURL enforces HTTPS, with plain HTTP allowed only for loopback hosts
// (development receivers).
func CheckURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("a URL like https://example.com/hooks is required (no credentials, no fragment)")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("plain http is allowed only for loopback addresses (127.0.0.1, ::1, localhost); use https")
	}
	return errors.New("the URL must use https")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (in *NewEndpoint) validate() error {
	var v errs.Validation
	in.URL = strings.TrimSpace(in.URL)
	if len(in.URL) > 2000 {
		v.Add("url", "url_invalid", "the URL is longer than 2000 characters")
	} else if err := CheckURL(in.URL); err != nil {
		v.Add("url", "url_invalid", "%s", err.Error())
	}
	in.Description = strings.TrimSpace(in.Description)
	if len(in.Description) > 200 {
		v.Add("description", "description_too_long", "the description has at most 200 characters")
	}
	if len(in.EventTypes) == 0 {
		v.Add("eventTypes", "event_types_required", "choose at least one event type")
	}
	seen := map[string]bool{}
	var types []string
	for _, t := range in.EventTypes {
		if !slices.Contains(EventTypes, t) {
			v.Add("eventTypes", "event_type_unknown", "unknown event type %q (known: %s)", clip(t, 40), strings.Join(EventTypes, ", "))
			break
		}
		if !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	in.EventTypes = types
	return v.Err()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// MaxEndpoints bounds a provider's live endpoints.
const MaxEndpoints = 20

// CreateEndpoint registers an endpoint and returns it with its secret
// (shown to the provider; it needs it to verify signatures).
func (s *Service) CreateEndpoint(ctx context.Context, providerID int64, in NewEndpoint) (*Endpoint, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if err := s.checkTarget(in.URL); err != nil {
		return nil, err
	}
	e := &Endpoint{ProviderID: providerID, URL: in.URL, Description: in.Description, EventTypes: TypeList(in.EventTypes),
		Secret: SealedSecret(NewSecret()), Status: EndpointActive, CreatedBy: policies.ActorOf(ctx, nil).Label, CreatedAt: s.now(), UpdatedAt: s.now(),
		Sandbox: in.Sandbox}
	err := s.db(ctx).Transaction(func(tx *gorm.DB) error {
		var status string
		if err := tx.Raw("SELECT status FROM providers WHERE id = ? FOR SHARE", providerID).Scan(&status).Error; err != nil {
			return errs.Wrap(err, "load provider")
		}
		pending := status == "submitted" || status == "in_review" || status == "info_requested"
		if status != "active" && !(in.Sandbox && pending) {
			return errs.New(errs.Conflict, "provider_not_active", "webhook endpoints can be added only while the provider is active")
		}
		var n int64
		if err := tx.Model(&Endpoint{}).Where("provider_id = ? AND status <> ?", providerID, EndpointDeleted).Count(&n).Error; err != nil {
			return errs.Wrap(err, "count endpoints")
		}
		if n >= MaxEndpoints {
			return errs.New(errs.Conflict, "too_many_endpoints", "a provider has at most %d webhook endpoints; delete one first", MaxEndpoints)
		}
		if err := tx.Create(e).Error; err != nil {
			return errs.Wrap(err, "create endpoint")
		}
		return audit.Recordf(ctx, tx, "webhook.create", "provider", fmt.Sprint(providerID),
			"added webhook endpoint %d (%s) for %s", e.ID, e.URL, strings.Join(e.EventTypes, ", "))
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// FindEndpoints lists a provider's endpoints (deleted ones only when asked).
func (s *Service) FindEndpoints(ctx context.Context, providerID int64, withDeleted bool) ([]Endpoint, error) {
	q := s.db(ctx).Where("provider_id = ?", providerID)
	if !withDeleted {
		q = q.Where("status <> ?", EndpointDeleted)
	}
	var out []Endpoint
	err := q.Order("id").Find(&out).Error
	return out, errs.Wrap(err, "list endpoints")
}

// ErrEndpointNotFound hides other providers' endpoints.
var ErrEndpointNotFound = errs.New(errs.NotFound, "webhook_endpoint_not_found", "no such webhook endpoint")

// FindEndpoint returns one live endpoint of the provider.
func (s *Service) FindEndpoint(ctx context.Context, providerID, id int64) (*Endpoint, error) {
	return findEndpoint(s.db(ctx), providerID, id)
}

// findEndpoint is FindEndpoint on db (inside a transaction: the transaction).
func findEndpoint(db *gorm.DB, providerID, id int64) (*Endpoint, error) {
	var e Endpoint
	err := db.Where("provider_id = ? AND id = ? AND status <> ?", providerID, id, EndpointDeleted).Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrEndpointNotFound
	}
	if err != nil {
		return nil, errs.Wrap(err, "find endpoint")
	}
	return &e, nil
}

// DeleteEndpoint removes an endpoint; its queued deliveries are dropped and
// its history is kept.
func (s *Service) DeleteEndpoint(ctx context.Context, providerID, id int64) error {
	return s.db(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Endpoint{}).Where("provider_id = ? AND id = ? AND status <> ?", providerID, id, EndpointDeleted).
			Updates(map[string]any{"status": EndpointDeleted, "status_reason": "deleted by " + policies.ActorOf(ctx, nil).Label, "updated_at": s.now()})
		if res.Error != nil {
			return errs.Wrap(res.Error, "delete endpoint")
		}
		if res.RowsAffected == 0 {
			return ErrEndpointNotFound
		}
		if err := tx.Exec(`UPDATE webhook_deliveries SET status = 'dropped', status_reason = 'endpoint_deleted', finished_at = now(),
			lease_until = NULL, lease_token = NULL WHERE endpoint_id = ? AND status = 'pending'`, id).Error; err != nil {
			return errs.Wrap(err, "drop deliveries")
		}
		return audit.Recordf(ctx, tx, "webhook.delete", "provider", fmt.Sprint(providerID), "deleted webhook endpoint %d", id)
	})
}

// EnableEndpoint turns a disabled endpoint back on (its failure count restarts).
func (s *Service) EnableEndpoint(ctx context.Context, providerID, id int64) error {
	return s.db(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Endpoint{}).Where("provider_id = ? AND id = ? AND status = ?", providerID, id, EndpointDisabled).
			Updates(map[string]any{"status": EndpointActive, "status_reason": "", "consecutive_failures": 0, "failing_since": nil, "updated_at": s.now()})
		if res.Error != nil {
			return errs.Wrap(res.Error, "enable endpoint")
		}
		if res.RowsAffected == 0 {
			return errs.New(errs.Conflict, "webhook_endpoint_not_disabled", "only a disabled endpoint can be enabled")
		}
		return audit.Recordf(ctx, tx, "webhook.enable", "provider", fmt.Sprint(providerID), "enabled webhook endpoint %d", id)
	})
}

// NewEvent is an event to create for one provider.
type NewEvent struct {
	ProviderID       int64
	Type             string
	VIN              string
	ContainerID      int64
	ContainerVersion int
	ConsentID        int64   // required when KeysCount > 0
	KeysCount        int     // telematics values carried (billable when accepted); len(KeyIDs)
	KeyIDs           []int16 // the catalog keys of those values (required when KeysCount > 0)
	SourceEventID    *int64
	Data             any   // the "data" object of the message
	OnlyEndpoint     int64 // send to this endpoint only (test events)
	// Sandbox: an event of the sandbox (a simulated vehicle, a sandbox
	// container): only the provider's sandbox endpoints get it, and only
	// they; production endpoints get only production events.
	Sandbox bool
}

// Emit creates the event in tx and a delivery for every active endpoint of
// the provider subscribed to its type. It creates nothing when no endpoint
// wants it, and returns the event id ("" then). Modules call it in the
// transaction of the change the event reports (consent granted, container
// approved, ...), so the event exists exactly when the change commits.
func (s *Service) Emit(ctx context.Context, tx *gorm.DB, in NewEvent) (string, error) {
	if in.KeysCount > 0 && in.ConsentID <= 0 {
		return "", errs.Wrap(errors.New("a data-carrying event needs its consent"), "emit event")
	}
	if in.KeysCount != len(in.KeyIDs) {
		return "", errs.Wrap(errors.New("a data-carrying event names the keys it carries"), "emit event")
	}
	var eps []Endpoint
	q := tx.WithContext(ctx).Where("provider_id = ? AND status = ?", in.ProviderID, EndpointActive)
	if in.OnlyEndpoint != 0 {
		q = q.Where("id = ?", in.OnlyEndpoint)
	} else {
		q = q.Where("? = ANY(event_types) AND sandbox = ?", in.Type, in.Sandbox)
	}
	if err := q.Find(&eps).Error; err != nil {
		return "", errs.Wrap(err, "endpoints for event")
	}
	if len(eps) == 0 {
		return "", nil
	}
	data, err := json.Marshal(in.Data)
	if err != nil {
		return "", errs.Wrap(err, "encode event")
	}
	now := s.now()
	ev := Event{ID: randomID("evt_", 12), ProviderID: in.ProviderID, Type: in.Type, VIN: in.VIN, ContainerID: in.ContainerID,
		ContainerVersion: in.ContainerVersion, ConsentID: in.ConsentID, KeysCount: in.KeysCount, SourceEventID: in.SourceEventID,
		Payload: data, CreatedAt: now}
	var keyIDs any // NULL for events that carry no telematics values
	if len(in.KeyIDs) > 0 {
		ev.KeyIDs = in.KeyIDs
		keyIDs = ev.KeyIDs
	}
	res := tx.WithContext(ctx).Exec(`INSERT INTO webhook_events (id, provider_id, type, vin, container_id, container_version, consent_id,
		keys_count, key_ids, source_event_id, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::smallint[], ?, ?, ?) ON CONFLICT DO NOTHING`,
		ev.ID, ev.ProviderID, ev.Type, ev.VIN, ev.ContainerID, ev.ContainerVersion, ev.ConsentID, ev.KeysCount, keyIDs, ev.SourceEventID,
		string(ev.Payload), ev.CreatedAt)
	if res.Error != nil {
		return "", errs.Wrap(res.Error, "create event")
	}
	if res.RowsAffected == 0 { // this vehicle event was fanned out to this consent before
		return "", nil
	}
	giveUp := now.Add(s.opt().RetryFor)
	for _, e := range eps {
		d := Delivery{EventID: ev.ID, EndpointID: e.ID, ProviderID: in.ProviderID, Status: DeliveryPending,
			NextAttemptAt: now, GiveUpAt: giveUp, CreatedAt: now}
		if err := tx.WithContext(ctx).Omit("EventType").Create(&d).Error; err != nil {
			return "", errs.Wrap(err, "create delivery")
		}
	}
	return ev.ID, nil
}

// SendTest queues a webhook.test event for one endpoint and returns its id.
func (s *Service) SendTest(ctx context.Context, providerID, endpointID int64) (string, error) {
	var id string
	err := s.db(ctx).Transaction(func(tx *gorm.DB) error {
		e, err := findEndpoint(tx, providerID, endpointID)
		if err != nil {
			return err
		}
		if e.Status != EndpointActive {
			return errs.New(errs.Conflict, "webhook_endpoint_disabled", "the endpoint is disabled; enable it first")
		}
		id, err = s.Emit(ctx, tx, NewEvent{ProviderID: providerID, Type: TypeTest, OnlyEndpoint: endpointID,
			Data: map[string]any{"message": "This is a test event from CarData.", "endpointId": endpointID}})
		return err
	})
	if err == nil {
		s.Kick()
	}
	return id, err
}

// Redeliver queues a delivery again by hand (any status but pending): one
// more attempt now; if it fails it is dead again. A data-carrying event is
// checked against its consent again and billed at most once.
func (s *Service) Redeliver(ctx context.Context, providerID, deliveryID int64) (*Delivery, error) {
	err := s.db(ctx).Transaction(func(tx *gorm.DB) error {
		var d Delivery
		err := tx.Raw(`SELECT d.* FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.id = ? AND d.provider_id = ? AND e.status <> 'deleted' FOR UPDATE OF d`, deliveryID, providerID).Scan(&d).Error
		if err != nil {
			return errs.Wrap(err, "find delivery")
		}
		if d.ID == 0 {
			return errs.New(errs.NotFound, "webhook_delivery_not_found", "no such delivery")
		}
		if d.Status == DeliveryPending {
			return errs.New(errs.Conflict, "webhook_delivery_pending", "the delivery is still queued; it will be attempted at %s", d.NextAttemptAt.Format(time.RFC3339))
		}
		now := s.now()
		if err := tx.Exec(`UPDATE webhook_deliveries SET status = 'pending', status_reason = 'redelivery by hand', next_attempt_at = ?,
			give_up_at = ?, finished_at = NULL, lease_until = NULL, lease_token = NULL WHERE id = ?`, now, now, d.ID).Error; err != nil {
			return errs.Wrap(err, "redeliver")
		}
		return audit.Recordf(ctx, tx, "webhook.redeliver", "provider", fmt.Sprint(providerID),
			"queued delivery %d of event %s again", d.ID, d.EventID)
	})
	if err != nil {
		return nil, err
	}
	s.Kick()
	return s.FindDelivery(ctx, providerID, deliveryID)
}

// FindDelivery returns one delivery of the provider with its attempts.
func (s *Service) FindDelivery(ctx context.Context, providerID, id int64) (*Delivery, error) {
	var d Delivery
	err := s.db(ctx).Raw(`SELECT d.*, ev.type AS event_type FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
		WHERE d.id = ? AND d.provider_id = ?`, id, providerID).Scan(&d).Error
	if err != nil {
		return nil, errs.Wrap(err, "find delivery")
	}
	if d.ID == 0 {
		return nil, errs.New(errs.NotFound, "webhook_delivery_not_found", "no such delivery")
	}
	if err := s.db(ctx).Where("delivery_id = ?", d.ID).Order("id").Find(&d.Tries).Error; err != nil {
		return nil, errs.Wrap(err, "attempts")
	}
	return &d, nil
}

// DeliveryFilter selects deliveries of one provider, newest first.
type DeliveryFilter struct {
	EndpointID int64  // 0: all endpoints
	Status     string // "": any
	Before     int64  // cursor: deliveries with a smaller id
	Limit      int
}

// FindDeliveries lists deliveries with their attempts; next is the cursor
// for the following page (0 at the end).
func (s *Service) FindDeliveries(ctx context.Context, providerID int64, f DeliveryFilter) (out []Delivery, next int64, err error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q := `SELECT d.*, ev.type AS event_type FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id WHERE d.provider_id = ?`
	args := []any{providerID}
	if f.EndpointID != 0 {
		q += " AND d.endpoint_id = ?"
		args = append(args, f.EndpointID)
	}
	if f.Status != "" {
		q += " AND d.status = ?"
		args = append(args, f.Status)
	}
	if f.Before > 0 {
		q += " AND d.id < ?"
		args = append(args, f.Before)
	}
	q += " ORDER BY d.id DESC LIMIT ?"
	args = append(args, f.Limit+1)
	if err := s.db(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, 0, errs.Wrap(err, "list deliveries")
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	if len(out) == 0 {
		return out, 0, nil
	}
	ids := make([]int64, len(out))
	for i := range out {
		ids[i] = out[i].ID
	}
	var atts []Attempt
	if err := s.db(ctx).Where("delivery_id IN ?", ids).Order("id").Find(&atts).Error; err != nil {
		return nil, 0, errs.Wrap(err, "attempts")
	}
	byID := map[int64]*Delivery{}
	for i := range out {
		out[i].Tries = []Attempt{}
		byID[out[i].ID] = &out[i]
	}
	for _, a := range atts {
		if d := byID[a.DeliveryID]; d != nil {
			d.Tries = append(d.Tries, a)
		}
	}
	return out, next, nil
}

// DropForConsent drops the queued deliveries of data-carrying events that
// flow under a consent that has ended (revoked, expired). The send-time
// check catches any that are in flight; this makes the drop visible at once.
func (s *Service) DropForConsent(ctx context.Context, tx *gorm.DB, consentID int64, reason string) (int64, error) {
	res := tx.WithContext(ctx).Exec(`UPDATE webhook_deliveries d SET status = 'dropped', status_reason = ?, finished_at = ?
		FROM webhook_events ev WHERE ev.id = d.event_id AND ev.consent_id = ? AND d.status = 'pending' AND d.lease_token IS NULL`,
		reason, s.now(), consentID)
	return res.RowsAffected, errs.Wrap(res.Error, "drop deliveries of consent")
}

// DropForContainer drops the queued deliveries of every event about a
// purged data container (containers.purge-withdrawn), in tx, the purge's
// transaction. Endpoints subscribe to event types, not to containers, so
// no subscription refers to a container alone and none is touched; dead
// and delivered pushes stay as the delivery history.
func (s *Service) DropForContainer(ctx context.Context, tx *gorm.DB, providerID, containerID int64, reason string) (int64, error) {
	now := s.now() // a delivery being sent right now (leased) finishes; one whose lease ran out (a crash) is dropped
	res := tx.WithContext(ctx).Exec(`UPDATE webhook_deliveries d SET status = 'dropped', status_reason = ?, finished_at = ?
		FROM webhook_events ev WHERE ev.id = d.event_id AND ev.provider_id = ? AND ev.container_id = ?
		AND d.status = 'pending' AND (d.lease_token IS NULL OR d.lease_until < ?)`,
		reason, now, providerID, containerID, now)
	return res.RowsAffected, errs.Wrap(res.Error, "drop deliveries of container")
}

// DeadLetters counts a provider's dead deliveries (shown on its pages).
func (s *Service) DeadLetters(ctx context.Context, providerID int64) (int64, error) {
	var n int64
	err := s.db(ctx).Model(&Delivery{}).Where("provider_id = ? AND status = ?", providerID, DeliveryDead).Count(&n).Error
	return n, errs.Wrap(err, "count dead letters")
}
