package onboarding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/jobs"
	"cardata/onboarding/vat"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/policies/lifecycle"
	"cardata/policies/listsort"
)

// Status is where a provider stands in its life cycle.
type Status string

// The statuses. An approved provider is active.
const (
	StatusSubmitted     Status = "submitted"
	StatusInReview      Status = "in_review"
	StatusInfoRequested Status = "info_requested"
	StatusActive        Status = "active"
	StatusRejected      Status = "rejected"
	StatusSuspended     Status = "suspended"
	StatusTerminated    Status = "terminated"
)

// Statuses in life-cycle order (for filters).
var Statuses = []Status{StatusSubmitted, StatusInReview, StatusInfoRequested, StatusActive, StatusRejected, StatusSuspended, StatusTerminated}

// Label is the status in words.
func (s Status) Label() string {
	switch s {
	case StatusInReview:
		return "in review"
	case StatusInfoRequested:
		return "information requested"
	}
	return string(s)
}

// Tone names the badge colour of a status (ok, warn, bad, off).
func (s Status) Tone() string {
	switch s {
	case StatusActive:
		return "ok"
	case StatusSubmitted, StatusInReview, StatusInfoRequested:
		return "warn"
	case StatusRejected, StatusSuspended:
		return "bad"
	}
	return "off"
}

// Open reports whether the provider blocks its VAT ID for new applications.
func (s Status) Open() bool { return s != StatusRejected && s != StatusTerminated }

// Provider is a company that applied for, or has, access to vehicle data.
type Provider struct {
	ID               int64 `gorm:"primaryKey"`
	LegalName        string
	LegalForm        string
	Street           string
	PostalCode       string
	City             string
	Country          string
	VATID            string `gorm:"column:vat_id"`
	RegisterNumber   string
	ContactName      string
	ContactEmail     string
	ContactPhone     string
	BillingEmail     string
	IntendedServices string
	Status           Status
	StatusReason     string
	ReviewerID       *int64
	ReviewerName     string `gorm:"->;-:migration"` // filled by queries that join staff_users
	ReviewFlags      string
	TermsVersion     string
	TermsAcceptedAt  time.Time
	TermsClientAddr  string
	SubmittedAt      time.Time
	WaitingSince     time.Time
	ApprovedAt       *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

func (Provider) TableName() string { return "providers" }

// CountryName is the seat country in words.
func (p *Provider) CountryName() string { return CountryName(p.Country) }

// Flags splits the reviewer flags into lines.
func (p *Provider) Flags() []string {
	if p.ReviewFlags == "" {
		return nil
	}
	return strings.Split(p.ReviewFlags, "\n")
}

// Waiting is how long the provider has been waiting for a decision.
func (p *Provider) Waiting(now time.Time) time.Duration { return now.Sub(p.WaitingSince) }

// Event is one entry of a provider's review history.
type Event struct {
	ID         int64 `gorm:"primaryKey"`
	ProviderID int64
	At         time.Time
	Action     Action
	FromStatus Status
	ToStatus   Status
	ActorKind  string
	ActorID    *int64
	ActorLabel string
	Note       string
}

func (Event) TableName() string { return "provider_events" }

// ActionLabel is the event's action for people ("claimed for review"), an
// id of the templates' catalogs.
func (e Event) ActionLabel() string {
	if e.Action == ActionSubmit {
		return "submitted"
	}
	if t, ok := TransitionFor(e.Action); ok {
		return t.Past
	}
	return strings.ReplaceAll(string(e.Action), "_", " ")
}

// Action is a verb that moves a provider between statuses.
type Action string

// The review actions.
const (
	ActionSubmit      Action = "submit"
	ActionClaim       Action = "claim"
	ActionRequestInfo Action = "request_info"
	ActionAnswer      Action = "answer"
	ActionApprove     Action = "approve"
	ActionReject      Action = "reject"
	ActionSuspend     Action = "suspend"
	ActionReactivate  Action = "reactivate"
	ActionTerminate   Action = "terminate"
)

// Transition is one row of the transition table.
type Transition struct {
	Action Action
	From   []Status // nil: every status except To
	To     Status
	// Note names the text the action requires ("reason", "question",
	// "answer"), or is empty when none is needed.
	Note string
	// NoteLabel is the label of the note's box on the staff page, specific
	// to the action ("Reason for the rejection"), so that two boxes on one
	// page never read alike.
	NoteLabel string
	// ByProvider marks the action as the provider's (answering a question);
	// all others are partner managers'.
	ByProvider bool
	Label      string // button text
	Past       string // for the timeline and e-mails: "approved"
}

// transitions is the review workflow: the only moves a provider can make.
var transitions = []Transition{
	{Action: ActionClaim, From: []Status{StatusSubmitted}, To: StatusInReview, Label: "Claim for review", Past: "claimed for review"},
	{Action: ActionRequestInfo, From: []Status{StatusInReview}, To: StatusInfoRequested, Note: "question", NoteLabel: "Question to the provider", Label: "Ask the provider", Past: "asked a question"},
	{Action: ActionAnswer, From: []Status{StatusInfoRequested}, To: StatusInReview, Note: "answer", ByProvider: true, Label: "Send answer", Past: "answered"},
	{Action: ActionApprove, From: []Status{StatusInReview}, To: StatusActive, Label: "Approve", Past: "approved"},
	{Action: ActionReject, From: []Status{StatusInReview}, To: StatusRejected, Note: "reason", NoteLabel: "Reason for the rejection (sent to the provider)", Label: "Reject", Past: "rejected"},
	{Action: ActionSuspend, From: []Status{StatusActive}, To: StatusSuspended, Note: "reason", NoteLabel: "Reason for the suspension (sent to the provider)", Label: "Suspend", Past: "suspended"},
	{Action: ActionReactivate, From: []Status{StatusSuspended}, To: StatusActive, Label: "Reactivate", Past: "reactivated"},
	// An application (submitted, in review, question open) is rejected,
	// not terminated: only a provider with a contract (active or
	// suspended) is terminated.
	{Action: ActionTerminate, From: []Status{StatusActive, StatusSuspended}, To: StatusTerminated, Note: "reason", NoteLabel: "Reason for the termination (sent to the provider)", Label: "Terminate", Past: "terminated"},
}

// Transitions returns the review workflow, the only moves a provider can
// make (a copy: the table cannot be changed from outside).
func Transitions() []Transition {
	return lifecycle.All(transitions, Transition.clone)
}

func (t Transition) clone() Transition {
	t.From = slices.Clone(t.From)
	return t
}

// TransitionFor returns the table row of an action.
func TransitionFor(a Action) (Transition, bool) {
	return lifecycle.Find(transitions, func(t Transition) bool { return t.Action == a }, Transition.clone)
}

// allows reports whether t may start from s.
func (t Transition) allows(s Status) bool {
	if t.From == nil {
		return s != t.To
	}
	return slices.Contains(t.From, s)
}

// StaffActions lists the partner-manager actions allowed from the provider's status.
func (p *Provider) StaffActions() []Transition {
	return lifecycle.Filter(transitions, func(t Transition) bool { return !t.ByProvider && t.allows(p.Status) }, Transition.clone)
}

// ErrProviderNotFound is returned for unknown ids (and other providers' ids).
var ErrProviderNotFound = errs.New(errs.NotFound, "provider_not_found", "provider not found")

// FindProviderByID returns one provider with its reviewer's name.
func (s *Service) FindProviderByID(ctx context.Context, id int64) (*Provider, error) {
	var p Provider
	err := s.DB.WithContext(ctx).Table("providers").
		Select("providers.*, COALESCE(staff_users.name, '') AS reviewer_name").
		Joins("LEFT JOIN staff_users ON staff_users.id = providers.reviewer_id").
		Where("providers.id = ?", id).Take(&p).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrProviderNotFound
		}
		return nil, errs.Wrap(err, "find provider")
	}
	return &p, nil
}

// FindEvents returns a provider's review history, oldest first.
func (s *Service) FindEvents(ctx context.Context, providerID int64) ([]Event, error) {
	var out []Event
	err := s.DB.WithContext(ctx).Where("provider_id = ?", providerID).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "provider events")
}

// ProviderFilter narrows FindProviders.
type ProviderFilter struct {
	Status  Status
	Country string
	Market  string // providers with approved access to this market
	Query   string // legal name or VAT ID contains
	// Order is the list's sort (ProviderSort); the zero value is by name.
	Order  listsort.Order
	Offset int
	Limit  int
}

// ProviderSort is the provider list's sort whitelist.
var ProviderSort = listsort.Spec{
	Columns: map[string]string{
		"name":       "lower(providers.legal_name)",
		"seat":       "providers.country",
		"vat":        "providers.vat_id",
		"status":     "providers.status",
		"reviewer":   "lower(staff_users.name)",
		"registered": "providers.submitted_at",
	},
	Tiebreak: "providers.id",
	Default:  listsort.Order{Key: "name"},
}

// FindProvidersByIDs loads the given providers (unknown ids are left out).
func (s *Service) FindProvidersByIDs(ctx context.Context, ids []int64) ([]Provider, error) {
	var out []Provider
	if len(ids) == 0 {
		return nil, nil
	}
	err := s.DB.WithContext(ctx).Table("providers").Where("id IN ?", ids).Find(&out).Error
	return out, errs.Wrap(err, "find providers")
}

func (s *Service) providerQuery(ctx context.Context, f ProviderFilter) *gorm.DB {
	q := s.DB.WithContext(ctx).Table("providers")
	if f.Status != "" {
		q = q.Where("providers.status = ?", f.Status)
	}
	if f.Country != "" {
		q = q.Where("providers.country = ?", strings.ToUpper(f.Country))
	}
	if f.Market != "" {
		q = q.Where("providers.id IN (SELECT provider_id FROM market_access WHERE market = ? AND status = 'approved')", strings.ToUpper(f.Market))
	}
	if term := strings.TrimSpace(f.Query); term != "" {
		like := "%" + escapeLike(term) + "%"
		compact := "%" + escapeLike(vat.Compact(term)) + "%"
		q = q.Where("providers.legal_name ILIKE ? OR providers.vat_id ILIKE ?", like, compact)
	}
	return q
}

func providerRows(q *gorm.DB, f ProviderFilter) *gorm.DB {
	return q.Select("providers.*, COALESCE(staff_users.name, '') AS reviewer_name").
		Joins("LEFT JOIN staff_users ON staff_users.id = providers.reviewer_id").
		Order(ProviderSort.SQL(f.Order))
}

// FindProviders lists providers in f's order (by name unless chosen) and
// the total matching.
func (s *Service) FindProviders(ctx context.Context, f ProviderFilter) ([]Provider, int64, error) {
	q := s.providerQuery(ctx, f)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count providers")
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 25
	}
	var out []Provider
	err := providerRows(q, f).Offset(f.Offset).Limit(f.Limit).Find(&out).Error
	return out, total, errs.Wrap(err, "list providers")
}

// EachProvider calls fn for every provider matching f (offset and limit
// ignored), in f's order, reading them one at a time (the CSV export).
func (s *Service) EachProvider(ctx context.Context, f ProviderFilter, fn func(*Provider) error) error {
	return listsort.Each[Provider](providerRows(s.providerQuery(ctx, f), f), fn)
}

// FindReviewQueue returns the applications waiting for a partner manager
// (submitted or in review), longest waiting first, and those waiting for
// the provider's answer.
func (s *Service) FindReviewQueue(ctx context.Context) (waiting, withProvider []Provider, err error) {
	return s.FindReviewQueueSorted(ctx, listsort.Order{}, listsort.Order{})
}

// AnswerSort is the whitelist of the queue's second table (applications
// waiting for the provider's answer); its keys differ from QueueSort's so
// one ?sort names one table on the page.
var AnswerSort = listsort.Spec{
	Columns: map[string]string{
		"answer_asked":    "providers.updated_at",
		"answer_name":     "lower(providers.legal_name)",
		"answer_reviewer": "lower(staff_users.name)",
	},
	Tiebreak:   "providers.id",
	DefaultSQL: "providers.waiting_since, providers.id",
}

// QueueSort is the review queue's sort whitelist (longest waiting first).
var QueueSort = listsort.Spec{
	Columns: map[string]string{
		"waiting":  "providers.waiting_since",
		"name":     "lower(providers.legal_name)",
		"seat":     "providers.country",
		"vat":      "providers.vat_id",
		"status":   "providers.status",
		"reviewer": "lower(staff_users.name)",
	},
	Tiebreak: "providers.id",
	Default:  listsort.Order{Key: "waiting"},
}

// FindReviewQueueSorted is FindReviewQueue with the waiting applications
// in o's order (QueueSort).
// The applications waiting for the provider's answer are in wo's order (AnswerSort).
func (s *Service) FindReviewQueueSorted(ctx context.Context, o, wo listsort.Order) (waiting, withProvider []Provider, err error) {
	base := func() *gorm.DB {
		return s.DB.WithContext(ctx).Table("providers").
			Select("providers.*, COALESCE(staff_users.name, '') AS reviewer_name").
			Joins("LEFT JOIN staff_users ON staff_users.id = providers.reviewer_id")
	}
	if err := base().Where("providers.status IN ?", []Status{StatusSubmitted, StatusInReview}).
		Order(QueueSort.SQL(o)).Limit(500).Find(&waiting).Error; err != nil {
		return nil, nil, errs.Wrap(err, "review queue")
	}
	if err := base().Where("providers.status = ?", StatusInfoRequested).
		Order(AnswerSort.SQL(wo)).Limit(500).Find(&withProvider).Error; err != nil {
		return nil, nil, errs.Wrap(err, "review queue")
	}
	return waiting, withProvider, nil
}

// CountByStatus returns how many providers are in each status.
func (s *Service) CountByStatus(ctx context.Context) (map[Status]int64, error) {
	var rows []struct {
		Status Status
		N      int64
	}
	err := s.DB.WithContext(ctx).Table("providers").Select("status, count(*) AS n").Group("status").Scan(&rows).Error
	out := map[Status]int64{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, errs.Wrap(err, "count providers")
}

// Review performs a partner manager's action on a provider (claim, approve,
// reject, request_info, suspend, reactivate, terminate). note is the reason
// or question where the action needs one.
func (s *Service) Review(ctx context.Context, providerID int64, action Action, note string) (*Provider, error) {
	t, ok := TransitionFor(action)
	if !ok || t.ByProvider || action == ActionSubmit {
		return nil, errs.New(errs.BadRequest, "unknown_action", "unknown review action %q", action)
	}
	if p := policies.PrincipalFrom(ctx); p == nil || (p.Kind != policies.KindStaff && p.Kind != policies.KindSystem) {
		return nil, errs.New(errs.Forbidden, "staff_only", "only partner managers review providers")
	}
	return s.transition(ctx, providerID, t, note)
}

// AnswerQuestion is the provider's answer to an open question; it returns
// the application to review. providerID must be the caller's own.
func (s *Service) AnswerQuestion(ctx context.Context, providerID int64, answer string) (*Provider, error) {
	t, _ := TransitionFor(ActionAnswer)
	return s.transition(ctx, providerID, t, answer)
}

func (s *Service) transition(ctx context.Context, providerID int64, t Transition, note string) (*Provider, error) {
	note = strings.TrimSpace(note)
	if t.Note != "" {
		var v errs.Validation
		if note == "" {
			v.Add(t.Note, t.Note+"_required", "enter the %s", errs.Term(t.Note))
		} else if len(note) > 4000 {
			v.Add(t.Note, t.Note+"_too_long", "use at most 4000 characters")
		}
		if err := v.Err(); err != nil {
			return nil, err
		}
	} else {
		note = ""
	}
	var p Provider
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&p, providerID).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrProviderNotFound
			}
			return errs.Wrap(err, "lock provider")
		}
		if !t.allows(p.Status) {
			return transitionConflict(t, p.Status)
		}
		from := p.Status
		now := s.now()
		act := policies.ActorOf(ctx, nil)
		kind, actorID, label := act.Kind, act.ID, act.Name
		upd := map[string]any{"status": t.To, "updated_at": now}
		switch t.Action {
		case ActionClaim:
			if kind == policies.KindStaff {
				upd["reviewer_id"] = actorID
			}
		case ActionAnswer:
			upd["waiting_since"] = now // the provider answered: now it waits for us again
		case ActionApprove:
			upd["approved_at"] = now
		}
		if t.Note != "" {
			upd["status_reason"] = note
		} else if t.Action != ActionClaim {
			upd["status_reason"] = ""
		}
		if err := tx.Model(&Provider{}).Where("id = ?", p.ID).Updates(upd).Error; err != nil {
			return errs.Wrap(err, "update provider")
		}
		ev := Event{ProviderID: p.ID, At: now, Action: t.Action, FromStatus: from, ToStatus: t.To,
			ActorKind: kind, ActorID: actorID, ActorLabel: label, Note: note}
		if err := tx.Create(&ev).Error; err != nil {
			return errs.Wrap(err, "record provider event")
		}
		if t.To == StatusSuspended || t.To == StatusTerminated { // its customers' consents end with it
			if _, err := consent.EndForProvider(ctx, tx, p.ID, string(t.To), note); err != nil {
				return err
			}
		}
		item := audit.ItemOf("provider."+string(t.Action), "provider", fmt.Sprint(p.ID),
			"%s %s: %s -> %s", p.LegalName, errs.Term(t.Past), errs.Term(from), errs.Term(t.To))
		if note != "" {
			item = audit.ItemOf("provider."+string(t.Action), "provider", fmt.Sprint(p.ID),
				"%s %s: %s -> %s (%s: %s)", p.LegalName, errs.Term(t.Past), errs.Term(from), errs.Term(t.To), errs.Term(t.Note), note)
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		return s.notifyTransition(ctx, tx, &p, t, note, ev.ID)
	})
	if err != nil {
		return nil, err
	}
	return s.FindProviderByID(ctx, providerID)
}

func transitionConflict(t Transition, from Status) error {
	allowed := make([]string, 0, len(t.From))
	for _, s := range t.From {
		allowed = append(allowed, s.Label())
	}
	if from == StatusTerminated {
		return errs.New(errs.Conflict, "provider_terminated", "the provider is terminated; that is final")
	}
	if t.From == nil {
		return errs.New(errs.Conflict, "transition_not_allowed", "the provider is already %s", errs.Term(from.Label()))
	}
	return errs.New(errs.Conflict, "transition_not_allowed",
		"cannot %s a provider that is %s (only from: %s)", errs.Term(strings.ReplaceAll(string(t.Action), "_", " ")), errs.Term(from.Label()), errs.Terms(", ", allowed...))
}

// notifyTransition queues the e-mail that tells the provider (or, for an
// answer, the reviewer) what happened.
func (s *Service) notifyTransition(ctx context.Context, tx *gorm.DB, p *Provider, t Transition, note string, eventID int64) error {
	dedupe := fmt.Sprintf("provider-event-%d", eventID)
	switch t.Action {
	case ActionClaim, ActionRequestInfo, ActionApprove, ActionReject, ActionSuspend, ActionReactivate, ActionTerminate:
	case ActionAnswer:
		if p.ReviewerID == nil {
			return nil
		}
		var email string
		if err := tx.Raw("SELECT email FROM staff_users WHERE id = ?", *p.ReviewerID).Scan(&email).Error; err != nil {
			return errs.Wrap(err, "reviewer e-mail")
		}
		if email == "" {
			return nil
		}
		z, err := jobs.MailLocale(tx, email, "")
		if err != nil {
			return err
		}
		subject, body := z.Mail("provider.answered", "Company", p.LegalName, "Note", note,
			"Link", s.link(fmt.Sprintf("/admin/providers/%d", p.ID)))
		return enqueueMail(ctx, tx, "provider.answered", email, subject, body, p.ID, dedupe)
	default:
		return nil
	}
	z, err := jobs.ProviderMailLocale(tx, p.ContactEmail, p.ID)
	if err != nil {
		return err
	}
	subject, body := z.Mail("provider."+string(t.Action), "Name", p.ContactName, "Company", p.LegalName,
		"Note", note, "Portal", s.link("/portal"))
	return enqueueMail(ctx, tx, "provider."+string(t.Action), p.ContactEmail, subject, body, p.ID, dedupe)
}
