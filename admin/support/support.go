// Package support is the B2B support desk: tickets that providers open in
// the portal or through the API (or that staff open on their behalf), their
// life cycle in one transition table, service levels measured in business
// hours, the conversation with public replies and internal notes, booked
// time, and the billable items it hands to billing exactly once.
//
// Visibility is decided here, not in handlers: every method reads the
// principal from the context. A provider principal only ever reaches its own
// provider's tickets (provider_id is a condition of every query) and never
// an internal note, internal event or internal attachment.
package support

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/errs"
)

// Status is where a ticket stands in its life cycle.
type Status string

// The statuses, in life-cycle order.
const (
	StatusNew      Status = "new"
	StatusOpen     Status = "open"
	StatusWaiting  Status = "waiting_on_provider"
	StatusResolved Status = "resolved"
	StatusClosed   Status = "closed"
)

// Statuses lists the statuses for filters.
var Statuses = []Status{StatusNew, StatusOpen, StatusWaiting, StatusResolved, StatusClosed}

// Label is the status in words.
func (s Status) Label() string {
	if s == StatusWaiting {
		return "waiting on provider"
	}
	return string(s)
}

// Tone names the badge colour (ok, warn, bad, off).
func (s Status) Tone() string {
	switch s {
	case StatusNew:
		return "bad"
	case StatusOpen:
		return "warn"
	case StatusWaiting:
		return "off"
	}
	return "ok"
}

// Active reports whether the desk still works on the ticket.
func (s Status) Active() bool { return s == StatusNew || s == StatusOpen || s == StatusWaiting }

// Priority is P1 (production down) to P4.
type Priority string

// The priorities.
const (
	P1 Priority = "P1"
	P2 Priority = "P2"
	P3 Priority = "P3"
	P4 Priority = "P4"
)

// Priorities lists the priorities, highest first.
var Priorities = []Priority{P1, P2, P3, P4}

// Label is the priority with its meaning.
func (p Priority) Label() string {
	switch p {
	case P1:
		return "P1 – production down"
	case P2:
		return "P2 – major impact"
	case P3:
		return "P3 – minor impact"
	case P4:
		return "P4 – question"
	}
	return string(p)
}

// Category is what a ticket is about.
type Category string

// The categories.
const (
	CategoryOnboarding  Category = "onboarding"
	CategoryAPIData     Category = "api_data"
	CategoryDataQuality Category = "data_quality"
	CategoryBilling     Category = "billing"
	CategoryOther       Category = "other"
)

// Categories lists the categories for forms and filters.
var Categories = []Category{CategoryOnboarding, CategoryAPIData, CategoryDataQuality, CategoryBilling, CategoryOther}

// Label is the category in words.
func (c Category) Label() string {
	switch c {
	case CategoryOnboarding:
		return "Onboarding"
	case CategoryAPIData:
		return "API and data"
	case CategoryDataQuality:
		return "Data quality"
	case CategoryBilling:
		return "Billing"
	case CategoryOther:
		return "Other"
	}
	return string(c)
}

// BillableByRule is the published rule of the price list's support items:
// technical assistance with the API and with data quality is billable (case
// fee by priority plus booked time); questions about onboarding, about our
// invoices and anything else are free. Support may decide otherwise per
// case, with a reason.
func BillableByRule(c Category) bool { return c == CategoryAPIData || c == CategoryDataQuality }

// Channels a ticket arrives through.
const (
	ChannelPortal = "portal"
	ChannelAPI    = "api"
	ChannelStaff  = "staff"
)

// Ticket is one support case of one provider.
type Ticket struct {
	ID                  int64 `gorm:"primaryKey"`
	ProviderID          int64
	ProviderName        string `gorm:"->;-:migration"` // joined from providers
	Subject             string
	Description         string
	Category            Category
	Priority            Priority
	Status              Status
	Channel             string
	ContactName         string
	ContactEmail        string
	OpenedByKind        string
	OpenedByID          *int64
	OpenedByLabel       string
	AssigneeID          *int64
	AssigneeName        string `gorm:"->;-:migration"` // joined from staff_users
	Billable            bool
	BillableSource      string
	BillableReason      string
	CaseBilledAt        *time.Time
	MergedIntoID        *int64
	FirstResponseDue    time.Time
	FirstResponseWarnAt time.Time
	FirstResponseAt     *time.Time
	SLAUsedSeconds      int64      `gorm:"column:sla_used_seconds"`
	SLARunningSince     *time.Time `gorm:"column:sla_running_since"`
	ResolutionDue       *time.Time
	ResolutionWarnAt    *time.Time
	ResolvedAt          *time.Time
	ClosedAt            *time.Time
	ReopenCount         int
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

func (Ticket) TableName() string { return "support_tickets" }

// TicketNumber is the number people use: "T-1042".
func TicketNumber(id int64) string { return "T-" + strconv.FormatInt(id, 10) }

// Number is the ticket's number.
func (t *Ticket) Number() string { return TicketNumber(t.ID) }

// AssignedTo reports whether staffID is the assignee.
func (t *Ticket) AssignedTo(staffID int64) bool {
	return t.AssigneeID != nil && *t.AssigneeID == staffID
}

// Merged reports whether the ticket was closed as a duplicate.
func (t *Ticket) Merged() bool { return t.MergedIntoID != nil }

// ParseNumber reads "T-1042", "t1042" or "1042".
func ParseNumber(s string) (int64, bool) {
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "T"), "-")
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// Service is the support desk's domain service. Each method owns its transaction.
type Service struct {
	DB    *gorm.DB
	Clock *Clock
	// PublicURL prefixes links in e-mails (cfg.PublicURL).
	PublicURL string
	// Links resolves typed links to their targets (wired by app); nil resolves none.
	Resolver LinkResolver
	// Now is the clock (tests and demo data move it); nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) clock() *Clock {
	if s.Clock == nil {
		s.Clock = NewClock(nil)
	}
	return s.Clock
}

// Location is the desk's time zone (Europe/Berlin).
func (s *Service) Location() *time.Location { return s.clock().Location() }

func (s *Service) link(path string) string { return strings.TrimRight(s.PublicURL, "/") + path }

// Errors with stable codes.
var (
	ErrTicketNotFound = errs.New(errs.NotFound, "ticket_not_found", "ticket not found")
	errStaffOnly      = errs.New(errs.Forbidden, "staff_only", "only support staff can do this")
	errNoPrincipal    = errs.New(errs.Unauthorized, "unauthenticated", "sign in first")
)

// viewer is who asks, and what they may see.
type viewer struct {
	p          *policies.Principal
	providerID int64 // non-zero: a provider, restricted to its own tickets
}

func (v viewer) staff() bool    { return v.providerID == 0 }
func (v viewer) provider() bool { return v.providerID != 0 }

// viewerOf reads the principal from ctx. Providers are pinned to their own
// provider id; staff and the system see every ticket; anyone else nothing.
func viewerOf(ctx context.Context) (viewer, error) {
	p := policies.PrincipalFrom(ctx)
	switch {
	case p == nil:
		return viewer{}, errNoPrincipal
	case p.Kind == policies.KindProvider:
		if p.ProviderID == 0 {
			return viewer{}, errs.New(errs.Forbidden, "provider_only", "no provider on this principal")
		}
		return viewer{p: p, providerID: p.ProviderID}, nil
	case p.Kind == policies.KindStaff || p.Kind == policies.KindSystem:
		return viewer{p: p}, nil
	}
	return viewer{}, errs.New(errs.Forbidden, "forbidden", "you are not allowed to do this")
}

// staffOf requires a staff member (or the system) acting.
func staffOf(ctx context.Context) (viewer, error) {
	v, err := viewerOf(ctx)
	if err != nil {
		return v, err
	}
	if !v.staff() {
		return v, errStaffOnly
	}
	return v, nil
}

// ticketQuery selects tickets with the provider's and assignee's names,
// restricted to the viewer's provider.
func ticketQuery(tx *gorm.DB, v viewer) *gorm.DB {
	q := tx.Table("support_tickets t").
		Select("t.*, p.legal_name AS provider_name, COALESCE(s.name, '') AS assignee_name").
		Joins("JOIN providers p ON p.id = t.provider_id").
		Joins("LEFT JOIN staff_users s ON s.id = t.assignee_id")
	if v.provider() {
		q = q.Where("t.provider_id = ?", v.providerID)
	}
	return q
}

// loadTicket reads one ticket the viewer may see; lock takes a row lock
// for a change.
func loadTicket(tx *gorm.DB, v viewer, id int64, lock bool) (*Ticket, error) {
	if lock {
		if err := tx.Exec("SELECT 1 FROM support_tickets WHERE id = ? FOR UPDATE", id).Error; err != nil {
			return nil, errs.Wrap(err, "lock ticket")
		}
	}
	var t Ticket
	err := ticketQuery(tx, v).Where("t.id = ?", id).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrTicketNotFound
	}
	if err != nil {
		return nil, errs.Wrap(err, "find ticket")
	}
	return &t, nil
}

// loadOpenTicket is loadTicket with the row lock for a change that a ticket
// merged into another refuses (the conversation continues there).
func loadOpenTicket(tx *gorm.DB, v viewer, id int64) (*Ticket, error) {
	t, err := loadTicket(tx, v, id, true)
	if err != nil {
		return nil, err
	}
	if t.Merged() {
		return nil, errMerged(t)
	}
	return t, nil
}

// FindTicket returns a ticket the principal may see (404 otherwise).
func (s *Service) FindTicket(ctx context.Context, id int64) (*Ticket, error) {
	v, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	return loadTicket(s.DB.WithContext(ctx), v, id, false)
}

// saveTicket writes the ticket's own columns back.
func saveTicket(tx *gorm.DB, t *Ticket, now time.Time) error {
	t.UpdatedAt = now
	err := tx.Table("support_tickets").Where("id = ?", t.ID).Updates(map[string]any{
		"subject": t.Subject, "category": t.Category, "priority": t.Priority, "status": t.Status,
		"assignee_id": t.AssigneeID, "billable": t.Billable, "billable_source": t.BillableSource,
		"billable_reason": t.BillableReason, "case_billed_at": t.CaseBilledAt, "merged_into_id": t.MergedIntoID,
		"first_response_due": t.FirstResponseDue, "first_response_warn_at": t.FirstResponseWarnAt,
		"first_response_at": t.FirstResponseAt, "sla_used_seconds": t.SLAUsedSeconds,
		"sla_running_since": t.SLARunningSince, "resolution_due": t.ResolutionDue,
		"resolution_warn_at": t.ResolutionWarnAt, "resolved_at": t.ResolvedAt, "closed_at": t.ClosedAt,
		"reopen_count": t.ReopenCount, "updated_at": t.UpdatedAt,
	}).Error
	return errs.Wrap(err, "save ticket")
}

// Event is one entry of a ticket's history besides its messages.
type Event struct {
	ID         int64 `gorm:"primaryKey"`
	TicketID   int64
	At         time.Time
	ActorKind  string
	ActorLabel string
	Action     string
	FromStatus Status
	ToStatus   Status
	// Note is the English text of the desk's note (the audit trail and
	// rows older than NoteID); NoteID and NoteArgs are the same note as
	// a catalog message, which pages say in their reader's language
	// (NoteIn).
	Note     string
	NoteID   string
	NoteArgs NoteArgs `gorm:"type:jsonb"`
	Internal bool
}

func (Event) TableName() string { return "support_events" }

// eventLabels name the events that are not transitions.
var eventLabels = map[string]string{
	"created": "opened the ticket", "assign": "reassigned", "classify": "changed", "time": "booked time",
	"time_removed": "removed time", "time_moved": "moved time", "billing": "handed to billing", "billable": "changed billability",
	"link": "linked", "unlink": "removed a link", "merged_in": "merged a duplicate", "sla_warning": "SLA warning", "sla_breach": "SLA breach",
}

// Label is the event in words: "resolved", "opened the ticket".
func (e Event) Label() string {
	if l, ok := eventLabels[e.Action]; ok {
		return l
	}
	if tr, ok := TransitionFor(Action(e.Action)); ok {
		return tr.Past
	}
	return e.Action
}

// channelNote is the note of a ticket's opening: the channel it came through.
func channelNote(channel string) Note {
	switch channel {
	case ChannelPortal:
		return noteOf("via portal")
	case ChannelAPI:
		return noteOf("via api")
	case ChannelStaff:
		return noteOf("via staff")
	}
	return noteOf("via {{.Channel}}", "Channel", channel)
}

// addEvent records an event in tx.
func addEvent(tx *gorm.DB, a policies.Actor, ticketID int64, action string, from, to Status, note Note, internal bool, now time.Time) error {
	e := Event{TicketID: ticketID, At: now, ActorKind: a.Kind, ActorLabel: a.Name, Action: action,
		FromStatus: from, ToStatus: to, Note: note.English(), NoteID: note.ID, NoteArgs: note.Args, Internal: internal}
	return errs.Wrap(tx.Create(&e).Error, "ticket event")
}

func ticketRef(id int64) string { return strconv.FormatInt(id, 10) }

// Agent is a staff member who can take tickets.
type Agent struct {
	ID    int64
	Name  string
	Email string
}

// Agents lists the active support staff (for assignment and settings).
func (s *Service) Agents(ctx context.Context) ([]Agent, error) {
	var out []Agent
	err := s.DB.WithContext(ctx).Table("staff_users").Select("id, name, email").
		Where("active AND id IN (SELECT user_id FROM staff_user_roles WHERE role = ?)", policies.RoleSupport).
		Order("lower(name), id").Scan(&out).Error
	return out, errs.Wrap(err, "support agents")
}

// ProviderChoice is a provider in a select list.
type ProviderChoice struct {
	ID           int64
	LegalName    string
	ContactEmail string
	Status       string
}

// ProviderChoices lists the providers staff may open a ticket for (every
// provider that is not terminated or rejected), by name.
func (s *Service) ProviderChoices(ctx context.Context) ([]ProviderChoice, error) {
	var out []ProviderChoice
	err := s.DB.WithContext(ctx).Table("providers").Select("id, legal_name, contact_email, status").
		Where("status NOT IN ('terminated','rejected')").Order("lower(legal_name), id").Limit(2000).Scan(&out).Error
	return out, errs.Wrap(err, "provider choices")
}

func clean(s string, max int) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, ""))
	s = strings.Map(func(r rune) rune {
		if r == 0 {
			return -1
		}
		return r
	}, s)
	if len([]rune(s)) > max {
		s = string([]rune(s)[:max])
	}
	return s
}

func validEnum[T ~string](v *errs.Validation, field string, val T, all []T, what string) {
	if !slices.Contains(all, val) {
		names := make([]string, len(all))
		for i, a := range all {
			names[i] = string(a)
		}
		v.Add(field, field+"_invalid", "choose a %s (%s)", errs.Term(what), errs.Terms(", ", names...))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
