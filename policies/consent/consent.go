// Package consent is the customer's consent: a provider asks for one
// vehicle and one version of one of its data containers, the vehicle's
// primary holder grants or denies, and may revoke a grant at any time. Every
// change is kept in the consent's changelog (state, time, actor). The
// package also gathers, in one SQL round trip, the facts the one
// data-access decision (policies.Decide) needs on every provider read, and
// produces the customer's data and transaction reports.
//
// It sits in policies, below onboarding in the import graph: providers,
// containers and vehicles are read with SQL by id, never through their
// packages. onboarding (containers, provider suspension) calls down into it
// to end consents in its own transactions.
package consent

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/lifecycle"
	"cardata/policies/signin"
	"cardata/templates/i18n"
)

// State is where a consent stands.
type State string

// The states. Superseded is a grant replaced by the customer's grant of a
// newer version of the same container (which needed new consent because it
// added keys).
const (
	Requested  State = "requested"
	Granted    State = "granted"
	Denied     State = "denied"
	Revoked    State = "revoked"
	Expired    State = "expired"
	Superseded State = "superseded"
)

// States in life-cycle order (for filters).
var States = []State{Requested, Granted, Denied, Revoked, Expired, Superseded}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return slices.Contains(States, s) }

// Live reports whether the consent is still open or in force.
func (s State) Live() bool { return s == Requested || s == Granted }

// Tone names the badge colour (ok, warn, bad, off).
func (s State) Tone() string {
	switch s {
	case Granted:
		return "ok"
	case Requested:
		return "warn"
	case Denied, Revoked:
		return "bad"
	}
	return "off"
}

// Label is the state in words, for customers.
func (s State) Label() string {
	switch s {
	case Requested:
		return "waiting for your answer"
	case Superseded:
		return "replaced by a newer version"
	}
	return string(s)
}

// Action moves a consent between states.
type Action string

// The actions.
const (
	ActRequest   Action = "request"
	ActGrant     Action = "grant"
	ActDeny      Action = "deny"
	ActRevoke    Action = "revoke"
	ActExpire    Action = "expire"
	ActSupersede Action = "supersede"
	ActCarryOver Action = "carry_over" // to a container version that only removed keys; the state stays
)

// Transition is one row of the transition table.
type Transition struct {
	Action Action
	From   State
	To     State
	// By names the kinds of principal that may take it; system covers jobs
	// and the cascades from containers and providers.
	By []string
}

// transitions is the consent life cycle: the only moves a consent can make.
var transitions = []Transition{
	{ActGrant, Requested, Granted, []string{policies.KindCustomer}},
	{ActDeny, Requested, Denied, []string{policies.KindCustomer}},
	{ActExpire, Requested, Expired, []string{policies.KindSystem}}, // unanswered for 30 days, container deprecated or withdrawn, provider stopped
	{ActRevoke, Granted, Revoked, []string{policies.KindCustomer, policies.KindSystem}},
	{ActExpire, Granted, Expired, []string{policies.KindSystem}}, // end date reached
	{ActSupersede, Granted, Superseded, []string{policies.KindCustomer}},
}

// Transitions returns the consent life cycle, the only moves a consent can
// make (a copy: the table cannot be changed from outside).
func Transitions() []Transition {
	return lifecycle.All(transitions, Transition.clone)
}

func (t Transition) clone() Transition {
	t.By = slices.Clone(t.By)
	return t
}

// transitionFor finds the row for action from state.
func transitionFor(a Action, from State) (Transition, bool) {
	return lifecycle.Find(transitions, func(t Transition) bool { return t.Action == a && t.From == from }, Transition.clone)
}

// RequestTTL is how long a request waits for the customer before it expires.
const RequestTTL = 30 * 24 * time.Hour

// Consent is one row, with the names the pages and the API show.
type Consent struct {
	ID                 int64 `gorm:"primaryKey"`
	ProviderID         int64
	ContainerID        int64
	ContainerVersionID int64
	VehicleID          int64
	VIN                string `gorm:"column:vin"`
	AccountID          int64
	State              State
	EndsAt             *time.Time
	RequestedBy        string
	RequestedAt        time.Time
	DecidedAt          *time.Time
	EndedAt            *time.Time
	UpdatedAt          time.Time

	// Read from joins (never written).
	Version        int    `gorm:"->;-:migration"`
	ContainerName  string `gorm:"->;-:migration"`
	Purpose        string `gorm:"->;-:migration"`
	PurposeCode    string `gorm:"->;-:migration"`
	ContainerState string `gorm:"->;-:migration"`
	ProviderName   string `gorm:"->;-:migration"`
	Model          string `gorm:"->;-:migration"`
	Brand          string `gorm:"->;-:migration"`
}

func (Consent) TableName() string { return "consents" }

// PurposeLabel names the container's purpose code in words.
func (c *Consent) PurposeLabel() string { return PurposeLabel(c.PurposeCode) }

// ExpiresAt is when an open request lapses unanswered.
func (c *Consent) ExpiresAt() time.Time { return c.RequestedAt.Add(RequestTTL) }

// Change is one changelog entry.
type Change struct {
	ID         int64 `gorm:"primaryKey"`
	ConsentID  int64
	At         time.Time
	FromState  State
	ToState    State
	Version    int
	ActorKind  string
	ActorID    *int64
	ActorLabel string
	// ActorSubject is the identity subject that made the decision when the
	// actor signed in through an identity provider (a vehicle owner through
	// the customer identity); empty otherwise.
	ActorSubject string
	Note         string
}

func (Change) TableName() string { return "consent_changes" }

// Event tells the provider API what happened, so it can push webhooks
// (consent.granted, consent.revoked, container.approved, ...).
type Event struct {
	Type        string // "consent.granted", "consent.denied", "consent.revoked", "consent.expired", "container.approved", "container.rejected", ...
	ProviderID  int64
	ConsentID   int64 // 0 for container events
	VIN         string
	ContainerID int64
	Version     int
	State       string
	At          time.Time
	// Sandbox: the event is about a sandbox container (and so a simulated
	// vehicle); it goes to the provider's sandbox webhook endpoints only.
	// notify sets it from the container.
	Sandbox bool
}

// Notifier is called in the transaction that makes the change; an error
// rolls the change back. app wires the provider API's webhook queue in.
type Notifier func(ctx context.Context, tx *gorm.DB, e Event) error

// Mail is one e-mail to queue.
type Mail struct {
	Kind, To, Subject, Body string
	ObjectType, ObjectID    string
	DedupeKey               string
}

// Mailer queues m in tx, so it is sent exactly when the change commits.
type Mailer func(ctx context.Context, tx *gorm.DB, m Mail) error

// Service is the consent domain. Every method owns its transaction; methods
// for a provider or a customer take its id and use it inside each query.
type Service struct {
	DB *gorm.DB
	// IsEU reports whether a market is in the EU (MINI rule); app passes
	// onboarding.IsEU (policies may not import onboarding).
	IsEU func(code string) bool
	// PublicURL is the base of links in e-mails.
	PublicURL string
	// Notify, when set, receives every consent and container event.
	Notify Notifier
	// Mailer queues e-mails in the caller's transaction; app passes the
	// jobs outbox (policies sits below jobs and may not import it). Nil
	// sends nothing.
	Mailer Mailer
	// Eligibility says why a vehicle could never deliver any of keys (the
	// capability service's reason codes; none: eligible). app passes the
	// vehicle registry's capability service (policies may not import
	// onboarding). Nil checks only that the vehicle has a primary holder.
	Eligibility EligibilityFunc
	// DropPushes drops, in tx, the queued and retrying pushes of consents
	// that just ended (reason: the consent_* code), so the provider's
	// delivery list shows them dropped when the change commits. app passes
	// the webhook queue's (policies may not import onboarding). Nil drops
	// nothing here; the send-time check still stops them.
	DropPushes DropPushesFunc
	// Transfers reads the delivery ledger for transaction reports.
	Transfers TransferSource
	// BcryptCost and Throttle govern customer sign-in.
	BcryptCost int
	Throttle   signin.Throttle
	// Location renders times for people in reports (nil: UTC).
	Location *time.Location
	Now      func() time.Time

	reportDead prometheus.Counter // cardata_report_dead_letters_total; Register sets it
}

// Ineligibility is one reason a vehicle cannot take part, as the
// capability service names it.
type Ineligibility struct {
	Code string
	Text string
}

// EligibilityFunc answers Service.Eligibility.
// db is the caller's transaction (or the pool), so that a request holds
// one connection, not two.
type EligibilityFunc func(ctx context.Context, db *gorm.DB, vin string, keys []string, at time.Time) ([]Ineligibility, error)

// DropPushesFunc answers Service.DropPushes.
type DropPushesFunc func(ctx context.Context, tx *gorm.DB, consentID int64, reason string) error

// ErrVehicleNotEligible is the code of a refused consent request for a
// vehicle that can deliver nothing; its fields (all "vin") carry the
// capability service's reason codes.
const ErrVehicleNotEligible = "vehicle_not_eligible"

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) link(path string) string { return strings.TrimRight(s.PublicURL, "/") + path }

func (s *Service) notify(ctx context.Context, tx *gorm.DB, e Event) error {
	if s.Notify == nil {
		return nil
	}
	if e.ContainerID != 0 {
		if err := tx.Raw("SELECT sandbox FROM containers WHERE id = ?", e.ContainerID).Scan(&e.Sandbox).Error; err != nil {
			return errs.Wrap(err, "container realm")
		}
	}
	return s.Notify(ctx, tx, e)
}

func (s *Service) mail(ctx context.Context, tx *gorm.DB, m Mail) error {
	if s.Mailer == nil {
		return nil
	}
	return s.Mailer(ctx, tx, m)
}

var vinRe = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)

// ErrNotFound is returned for unknown consents and those of others.
var ErrNotFound = errs.New(errs.NotFound, "consent_not_found", "consent not found")

// selectView is the joined select behind every Consent shown to people.
const selectView = `c.*, cv.version, cv.name AS container_name, cv.purpose, cv.purpose_code, cv.state AS container_state,
	p.legal_name AS provider_name, COALESCE(v.model, '') AS model, COALESCE(v.brand, '') AS brand`

func (s *Service) view(tx *gorm.DB) *gorm.DB { return s.from(tx).Select(selectView) }

// from is the join behind view, without the select (for counting).
func (s *Service) from(tx *gorm.DB) *gorm.DB {
	return tx.Table("consents c").
		Joins("JOIN container_versions cv ON cv.id = c.container_version_id").
		Joins("JOIN providers p ON p.id = c.provider_id").
		Joins("LEFT JOIN vehicles v ON v.id = c.vehicle_id")
}

// NewRequest is a provider's consent request.
type NewRequest struct {
	VIN         string
	ContainerID int64
	// Sandbox: the request comes from a sandbox client: the container must
	// be one of the provider's sandbox containers and the vehicle one of its
	// simulated fleet; a production request finds neither (they read as
	// unknown, as the other realm's vehicles and containers always do).
	Sandbox bool
	// EndsAt optionally limits the consent (e.g. the insurance term); the
	// customer sees it and may shorten it when granting.
	EndsAt *time.Time
}

// Request records a provider's request for consent and tells the customer.
// The request goes to the container's one approved version and to the
// vehicle's primary holder; an unknown VIN and a vehicle without a holder
// are answered alike, so the request reveals nothing about vehicles.
func (s *Service) Request(ctx context.Context, providerID int64, in NewRequest) (*Consent, error) {
	now := s.now()
	in.VIN = policies.NormalizeVIN(in.VIN)
	var v errs.Validation
	if !vinRe.MatchString(in.VIN) {
		v.Add("vin", "vin_invalid", "a VIN has 17 characters: digits and capital letters except I, O and Q")
	}
	if in.ContainerID <= 0 {
		v.Add("containerId", "container_required", "name the data container (containerId)")
	}
	if in.EndsAt != nil {
		e := in.EndsAt.UTC()
		in.EndsAt = &e
		if !e.After(now.Add(time.Hour)) {
			v.Add("validUntil", "valid_until_past", "the end of the consent must lie in the future")
		} else if e.After(now.AddDate(10, 0, 0)) {
			v.Add("validUntil", "valid_until_too_far", "a consent can be asked for at most 10 years")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var out Consent
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var status string
		if err := tx.Raw("SELECT status FROM providers WHERE id = ? FOR SHARE", providerID).Scan(&status).Error; err != nil {
			return errs.Wrap(err, "provider status")
		}
		if status != "active" && !(in.Sandbox && sandboxOpen(status)) {
			return errs.New(errs.Conflict, "provider_not_active", "only an active provider can ask for consent")
		}
		var ver struct {
			ID      int64
			Version int
			State   string
			Name    string
		}
		// A purged container (withdrawn and purged by the containers.purge-withdrawn job) is not found.
		err := tx.Raw(`SELECT id, version, state, name FROM container_versions WHERE container_id = ? AND provider_id = ?
			AND NOT EXISTS (SELECT 1 FROM containers k WHERE k.id = container_versions.container_id AND k.purged_at IS NOT NULL)
			AND sandbox = ?
			ORDER BY (state = 'approved') DESC, version DESC LIMIT 1`, in.ContainerID, providerID, in.Sandbox).Scan(&ver).Error
		if err != nil {
			return errs.Wrap(err, "container version")
		}
		if ver.ID == 0 {
			var fv errs.Validation
			fv.Add("containerId", "container_not_found", "you have no data container %d", in.ContainerID)
			return fv.Err()
		}
		if ver.State != "approved" {
			return errs.New(errs.Conflict, "container_not_approved",
				"data container %d has no approved version (latest: %s); consent can only be asked for an approved container", in.ContainerID, errs.Term(ver.State))
		}
		var veh struct {
			ID        int64
			AccountID *int64
			SandboxOf int64
		}
		err = tx.Raw(`SELECT v.id, h.account_id, COALESCE(v.sandbox_provider_id, 0) AS sandbox_of FROM vehicles v
			LEFT JOIN vehicle_holders h ON h.vehicle_id = v.id AND h.role = 'primary' WHERE v.vin = ?`, in.VIN).Scan(&veh).Error
		if err != nil {
			return errs.Wrap(err, "vehicle")
		}
		realm := int64(0)
		if in.Sandbox {
			realm = providerID
		}
		if veh.SandboxOf != realm { // the other realm's vehicle reads as unknown
			veh = struct {
				ID        int64
				AccountID *int64
				SandboxOf int64
			}{}
		}
		if veh.ID == 0 || (veh.AccountID == nil && s.Eligibility == nil) {
			var fv errs.Validation
			fv.Add("vin", "vehicle_not_found", "no customer can be asked for consent for VIN %s", in.VIN)
			return fv.Err()
		}
		if err := s.eligible(ctx, tx, in.VIN, ver.ID, now); err != nil {
			return err
		}
		if veh.AccountID == nil {
			var fv errs.Validation
			fv.Add("vin", "vehicle_not_found", "no customer can be asked for consent for VIN %s", in.VIN)
			return fv.Err()
		}
		var existing Consent
		err = tx.Where("vehicle_id = ? AND container_version_id = ? AND state IN ?", veh.ID, ver.ID, []State{Requested, Granted}).
			Take(&existing).Error
		switch {
		case err == nil && existing.State == Granted:
			return errs.New(errs.Conflict, "consent_exists", "consent %d for this vehicle and container version is already granted", existing.ID)
		case err == nil:
			return errs.New(errs.Conflict, "consent_request_pending", "consent request %d for this vehicle and container version is waiting for the customer", existing.ID)
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return errs.Wrap(err, "existing consent")
		}
		label := policies.ActorOf(ctx, nil).Name
		out = Consent{ProviderID: providerID, ContainerID: in.ContainerID, ContainerVersionID: ver.ID, VehicleID: veh.ID,
			VIN: in.VIN, AccountID: *veh.AccountID, State: Requested, EndsAt: in.EndsAt, RequestedBy: label,
			RequestedAt: now, UpdatedAt: now}
		if err := tx.Create(&out).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "consent_request_pending", "a consent request for this vehicle and container version already exists")
			}
			return errs.Wrap(err, "create consent")
		}
		if err := s.logChange(ctx, tx, &out, "", Requested, ver.Version, ""); err != nil {
			return err
		}
		if err := s.mailCustomer(ctx, tx, &out, ver.Name); err != nil {
			return err
		}
		return s.notify(ctx, tx, Event{Type: "consent.requested", ProviderID: providerID, ConsentID: out.ID, VIN: out.VIN,
			ContainerID: out.ContainerID, Version: ver.Version, State: string(Requested), At: now})
	})
	if err != nil {
		return nil, err
	}
	return s.FindProviderConsent(ctx, providerID, out.ID)
}

// eligible refuses a request for a vehicle that could never deliver any
// key of container version versionID: not telematics-capable, SIM
// inactive, no customer account, a MINI outside the EU, a market that is
// not served, or no connected service enabling any of the keys. The
// capability service answers the same to any provider, so the reasons
// reveal nothing a provider could not ask for anyway.
func (s *Service) eligible(ctx context.Context, tx *gorm.DB, vin string, versionID int64, now time.Time) error {
	if s.Eligibility == nil {
		return nil
	}
	var keys []string
	err := tx.Raw(`SELECT k.key FROM container_version_keys ck JOIN catalog_keys k ON k.id = ck.key_id
		WHERE ck.version_id = ? ORDER BY ck.position`, versionID).Scan(&keys).Error
	if err != nil {
		return errs.Wrap(err, "container keys")
	}
	reasons, err := s.Eligibility(ctx, tx, vin, keys, now)
	if err != nil || len(reasons) == 0 {
		return err
	}
	e := errs.New(errs.Invalid, ErrVehicleNotEligible,
		"vehicle %s cannot deliver data for this container, so no consent can be asked for it", vin)
	for _, r := range reasons {
		e.Fields = append(e.Fields, errs.FieldError{Field: "vin", Code: r.Code, Message: r.Text})
	}
	return e
}

// mailCustomer tells the primary holder a provider asks for consent.
func (s *Service) mailCustomer(ctx context.Context, tx *gorm.DB, c *Consent, container string) error {
	var acc struct{ Email, Name, Lang string }
	if err := tx.Raw("SELECT email, name, lang FROM customer_accounts WHERE id = ?", c.AccountID).Scan(&acc).Error; err != nil {
		return errs.Wrap(err, "customer e-mail")
	}
	if _, err := mail.ParseAddress(acc.Email); err != nil {
		return nil // nobody to tell; the request still shows in /my
	}
	var provider string
	if err := tx.Raw("SELECT legal_name FROM providers WHERE id = ?", c.ProviderID).Scan(&provider).Error; err != nil {
		return errs.Wrap(err, "provider name")
	}
	// In the customer's remembered language (English until they chose).
	lang, _ := i18n.Parse(acc.Lang)
	z := i18n.MailLocale(lang)
	subject, body := z.Mail("consent.requested", "Name", acc.Name, "Provider", provider, "VIN", c.VIN, "Service", container,
		"Link", s.link(fmt.Sprintf("/my/consents/%d", c.ID)), "Expires", z.Date(c.ExpiresAt()))
	return s.mail(ctx, tx, Mail{Kind: "consent.requested", To: acc.Email,
		Subject: subject, Body: body, ObjectType: "consent", ObjectID: fmt.Sprint(c.ID),
		DedupeKey: fmt.Sprintf("consent-requested-%d", c.ID)})
}

// logChange appends a changelog entry for c.
func (s *Service) logChange(ctx context.Context, tx *gorm.DB, c *Consent, from, to State, version int, note string) error {
	act := policies.ActorOf(ctx, nil)
	kind, id, label := act.Kind, act.ID, act.Name
	ch := Change{ConsentID: c.ID, At: s.now(), FromState: from, ToState: to, Version: version,
		ActorKind: kind, ActorID: id, ActorLabel: label, Note: note}
	if p := policies.PrincipalFrom(ctx); p != nil {
		ch.ActorSubject = p.Subject
	}
	return errs.Wrap(tx.Create(&ch).Error, "consent change")
}

// lockForCustomer loads a consent of a vehicle the account holds, locked.
// Anyone holding the vehicle sees it; only the primary holder it was asked
// of may decide (checked by the caller via mayDecide).
func (s *Service) lockForCustomer(tx *gorm.DB, accountID, consentID int64) (*Consent, error) {
	var c Consent
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("id = ? AND vehicle_id IN (SELECT vehicle_id FROM vehicle_holders WHERE account_id = ?)", consentID, accountID).
		Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &c, errs.Wrap(err, "lock consent")
}

// ErrOnlyPrimaryHolder refuses decisions by anyone but the primary holder.
var ErrOnlyPrimaryHolder = errs.New(errs.Forbidden, "only_primary_holder",
	"only the vehicle's primary account holder can decide on consents for it")

func mayDecide(tx *gorm.DB, c *Consent, accountID int64) error {
	var primary int64
	err := tx.Raw("SELECT account_id FROM vehicle_holders WHERE vehicle_id = ? AND role = 'primary'", c.VehicleID).Scan(&primary).Error
	if err != nil {
		return errs.Wrap(err, "primary holder")
	}
	if primary != accountID || c.AccountID != accountID {
		return ErrOnlyPrimaryHolder
	}
	return nil
}

func transitionConflict(a Action, from State) error {
	return errs.New(errs.Conflict, "transition_not_allowed", "a consent that is %s cannot be %s", errs.Term(from), errs.Term(past(a)))
}

// past is the action's past participle ("a consent ... cannot be granted"),
// a word the error catalogs translate.
func past(a Action) string {
	switch a {
	case ActDeny:
		return "denied"
	case ActCarryOver:
		return "carried over"
	case ActGrant, ActRevoke, ActExpire, ActSupersede:
		return strings.TrimSuffix(string(a), "e") + "ed"
	}
	return strings.ReplaceAll(string(a), "_", " ") + "ed"
}

// move applies one transition to a locked consent and logs it.
func (s *Service) move(ctx context.Context, tx *gorm.DB, c *Consent, a Action, note string, upd map[string]any) error {
	t, ok := transitionFor(a, c.State)
	if !ok {
		return transitionConflict(a, c.State)
	}
	if p := policies.PrincipalFrom(ctx); p == nil || !slices.Contains(t.By, p.Kind) {
		return errs.New(errs.Forbidden, "not_allowed", "this consent cannot be %s by you", errs.Term(past(a)))
	}
	now := s.now()
	if upd == nil {
		upd = map[string]any{}
	}
	upd["state"], upd["updated_at"] = t.To, now
	switch t.To {
	case Granted, Denied:
		upd["decided_at"] = now
	case Revoked, Expired, Superseded:
		upd["ended_at"] = now
	}
	if err := tx.Model(&Consent{}).Where("id = ?", c.ID).Updates(upd).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return errs.New(errs.Conflict, "consent_exists", "another consent for this vehicle and container is in force")
		}
		return errs.Wrap(err, "update consent")
	}
	var version int
	if err := tx.Raw("SELECT version FROM container_versions WHERE id = ?", c.ContainerVersionID).Scan(&version).Error; err != nil {
		return errs.Wrap(err, "container version")
	}
	from := c.State
	c.State = t.To
	if err := s.logChange(ctx, tx, c, from, t.To, version, note); err != nil {
		return err
	}
	if from == Granted {
		if err := s.dropPushes(ctx, tx, c.ID, t.To); err != nil {
			return err
		}
	}
	return s.notify(ctx, tx, Event{Type: "consent." + string(t.To), ProviderID: c.ProviderID, ConsentID: c.ID, VIN: c.VIN,
		ContainerID: c.ContainerID, Version: version, State: string(t.To), At: now})
}

// dropPushes drops the queued and retrying pushes of a grant that ended
// (to: revoked, expired or superseded) in tx, the transaction that ends it.
func (s *Service) dropPushes(ctx context.Context, tx *gorm.DB, consentID int64, to State) error {
	if s.DropPushes == nil {
		return nil
	}
	reason := policies.ReasonConsentRevoked // superseded: what the send-time check answers too
	if to == Expired {
		reason = policies.ReasonConsentExpired
	}
	return s.DropPushes(ctx, tx, consentID, reason)
}

// Grant is the primary holder's yes. endsAt optionally ends the consent
// earlier than (or, without a requested end, at all) the provider asked.
// A grant for a newer version of a container replaces the customer's
// grant of an older one.
func (s *Service) Grant(ctx context.Context, accountID, consentID int64, endsAt *time.Time) error {
	now := s.now()
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		c, err := s.lockForCustomer(tx, accountID, consentID)
		if err != nil {
			return err
		}
		if err := mayDecide(tx, c, accountID); err != nil {
			return err
		}
		if c.State != Requested {
			return transitionConflict(ActGrant, c.State)
		}
		var ver struct {
			State   string
			Version int
			Sandbox bool
		}
		if err := tx.Raw("SELECT state, version, sandbox FROM container_versions WHERE id = ?", c.ContainerVersionID).Scan(&ver).Error; err != nil {
			return errs.Wrap(err, "container state")
		}
		if ver.State != "approved" {
			return errs.New(errs.Conflict, "container_not_approved", "this data container no longer takes new consents")
		}
		var status string
		if err := tx.Raw("SELECT status FROM providers WHERE id = ?", c.ProviderID).Scan(&status).Error; err != nil {
			return errs.Wrap(err, "provider status")
		}
		if status != "active" && !(ver.Sandbox && sandboxOpen(status)) {
			return errs.New(errs.Conflict, "provider_not_active", "this provider cannot receive data at the moment")
		}
		end := c.EndsAt
		if endsAt != nil {
			e := endsAt.UTC()
			var v errs.Validation
			switch {
			case !e.After(now):
				v.Add("ends_at", "ends_at_past", "the end date must lie in the future")
			case c.EndsAt != nil && e.After(*c.EndsAt):
				v.Add("ends_at", "ends_at_after_request", "the provider asked until %s; you can only choose an earlier end", errs.Day{T: *c.EndsAt})
			}
			if err := v.Err(); err != nil {
				return err
			}
			end = &e
		}
		// An older grant for the same container gives way to this one.
		var older []Consent
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("vehicle_id = ? AND container_id = ? AND state = ? AND id <> ?", c.VehicleID, c.ContainerID, Granted, c.ID).
			Find(&older).Error; err != nil {
			return errs.Wrap(err, "older grants")
		}
		for i := range older {
			if err := s.move(ctx, tx, &older[i], ActSupersede, fmt.Sprintf("replaced by consent %d for version %d", c.ID, ver.Version), nil); err != nil {
				return err
			}
		}
		return s.move(ctx, tx, c, ActGrant, "", map[string]any{"ends_at": end})
	})
}

// Deny is the primary holder's no.
func (s *Service) Deny(ctx context.Context, accountID, consentID int64) error {
	return s.customerMove(ctx, accountID, consentID, ActDeny, Requested)
}

// Revoke ends a grant at once: the very next provider read is refused.
func (s *Service) Revoke(ctx context.Context, accountID, consentID int64) error {
	return s.customerMove(ctx, accountID, consentID, ActRevoke, Granted)
}

func (s *Service) customerMove(ctx context.Context, accountID, consentID int64, a Action, from State) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		c, err := s.lockForCustomer(tx, accountID, consentID)
		if err != nil {
			return err
		}
		if err := mayDecide(tx, c, accountID); err != nil {
			return err
		}
		if c.State != from {
			return transitionConflict(a, c.State)
		}
		return s.move(ctx, tx, c, a, "", nil)
	})
}

// ConsentFilter narrows the provider's consent list.
type ConsentFilter struct {
	VIN         string
	State       State
	ContainerID int64
	Before      int64 // keyset paging: consents with a smaller id (0: from the newest)
	Limit       int
	// Sandbox lists the consents of the provider's sandbox (sandbox
	// containers, simulated vehicles) instead of its production ones.
	Sandbox bool
}

// FindProviderConsents lists a provider's own consents, newest first, a
// page of f.Limit after f.Before; more reports whether another page follows.
func (s *Service) FindProviderConsents(ctx context.Context, providerID int64, f ConsentFilter) (out []Consent, more bool, err error) {
	q := s.from(s.DB.WithContext(ctx)).Where("c.provider_id = ? AND cv.sandbox = ?", providerID, f.Sandbox)
	if f.VIN != "" {
		q = q.Where("c.vin = ?", policies.NormalizeVIN(f.VIN))
	}
	if f.State != "" {
		q = q.Where("c.state = ?", f.State)
	}
	if f.ContainerID != 0 {
		q = q.Where("c.container_id = ?", f.ContainerID)
	}
	if f.Before > 0 {
		q = q.Where("c.id < ?", f.Before)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	err = q.Select(selectView).Order("c.id DESC").Limit(f.Limit + 1).Find(&out).Error
	if len(out) > f.Limit {
		out, more = out[:f.Limit], true
	}
	return out, more, errs.Wrap(err, "list consents")
}

// FindProviderConsent returns one of the provider's consents.
func (s *Service) FindProviderConsent(ctx context.Context, providerID, id int64) (*Consent, error) {
	var c Consent
	err := s.view(s.DB.WithContext(ctx)).Where("c.id = ? AND c.provider_id = ?", id, providerID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &c, errs.Wrap(err, "find consent")
}

// FindCustomerConsents lists the consents of every vehicle the account
// holds (primary or secondary), newest first.
func (s *Service) FindCustomerConsents(ctx context.Context, accountID int64) ([]Consent, error) {
	var out []Consent
	err := s.view(s.DB.WithContext(ctx)).
		Where("c.vehicle_id IN (SELECT vehicle_id FROM vehicle_holders WHERE account_id = ?)", accountID).
		Order("c.updated_at DESC, c.id DESC").Limit(2000).Find(&out).Error
	return out, errs.Wrap(err, "customer consents")
}

// FindCustomerConsent returns one consent of a vehicle the account holds.
func (s *Service) FindCustomerConsent(ctx context.Context, accountID, id int64) (*Consent, error) {
	var c Consent
	err := s.view(s.DB.WithContext(ctx)).
		Where("c.id = ? AND c.vehicle_id IN (SELECT vehicle_id FROM vehicle_holders WHERE account_id = ?)", id, accountID).
		Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &c, errs.Wrap(err, "find consent")
}

// FindConsentsOfAccount lists the consents the account was asked for (it
// decided them or still may): the customer's own consent history for reports.
func (s *Service) FindConsentsOfAccount(ctx context.Context, accountID int64) ([]Consent, error) {
	var out []Consent
	err := s.view(s.DB.WithContext(ctx)).Where("c.account_id = ?", accountID).Order("c.vin, c.id").Find(&out).Error
	return out, errs.Wrap(err, "account consents")
}

// Changes returns the changelog of the given consents, oldest first.
func (s *Service) Changes(ctx context.Context, consentIDs ...int64) (map[int64][]Change, error) {
	out := map[int64][]Change{}
	if len(consentIDs) == 0 {
		return out, nil
	}
	var rows []Change
	if err := s.DB.WithContext(ctx).Where("consent_id IN ?", consentIDs).Order("consent_id, id").Find(&rows).Error; err != nil {
		return nil, errs.Wrap(err, "consent changes")
	}
	for _, r := range rows {
		out[r.ConsentID] = append(out[r.ConsentID], r)
	}
	return out, nil
}

// Key is a catalog key as a customer reads it.
type Key struct {
	VersionID     int64
	Key           string
	Category      string
	Sensitivity   string
	Unit          string
	DescriptionEN string
	DescriptionDE string
}

// Sensitive reports whether the key carries location or driving-behaviour data.
func (k Key) Sensitive() bool { return k.Sensitivity != "normal" }

// KeysOfVersions returns the keys of container versions, in their order.
func (s *Service) KeysOfVersions(ctx context.Context, versionIDs ...int64) (map[int64][]Key, error) {
	out := map[int64][]Key{}
	if len(versionIDs) == 0 {
		return out, nil
	}
	var rows []Key
	err := s.DB.WithContext(ctx).Raw(`SELECT ck.version_id, k.key, k.category, k.sensitivity, k.unit, k.description_en, k.description_de
		FROM container_version_keys ck JOIN catalog_keys k ON k.id = ck.key_id
		WHERE ck.version_id IN ? ORDER BY ck.version_id, ck.position`, versionIDs).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "container keys")
	}
	for _, r := range rows {
		out[r.VersionID] = append(out[r.VersionID], r)
	}
	return out, nil
}
