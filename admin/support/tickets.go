package support

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// NewTicket is the input of OpenTicket.
type NewTicket struct {
	// ProviderID names the provider when staff open a ticket on its
	// behalf; a provider principal always opens for its own provider.
	ProviderID   int64
	Subject      string
	Description  string
	Category     Category
	Priority     Priority
	ContactName  string // staff and API: whom replies go to (default: the provider's contact)
	ContactEmail string
	Channel      string // portal or api for providers; staff tickets are always "staff"
	AssigneeID   *int64 // staff only: open the ticket assigned at once
	Links        []LinkInput
	Attachments  []Upload
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && strings.Contains(s, "@")
}

// OpenTicket records a new ticket, starts its SLA clocks and confirms it to
// the provider's contact by e-mail.
func (s *Service) OpenTicket(ctx context.Context, in NewTicket) (*Ticket, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	v := &errs.Validation{}
	in.Subject = clean(in.Subject, 1000)
	in.Description = clean(in.Description, 30000)
	switch n := len([]rune(in.Subject)); {
	case n < 3:
		v.Add("subject", "subject_required", "give the ticket a subject (at least 3 characters)")
	case n > 200:
		v.Add("subject", "subject_too_long", "keep the subject under 200 characters")
	}
	switch n := len([]rune(in.Description)); {
	case n == 0:
		v.Add("description", "description_required", "describe the problem")
	case n > 20000:
		v.Add("description", "description_too_long", "keep the description under 20,000 characters")
	}
	validEnum(v, "category", in.Category, Categories, "category")
	validEnum(v, "priority", in.Priority, Priorities, "priority")
	links := checkLinks(v, in.Links)
	files := checkUploads(v, in.Attachments)
	in.ContactName, in.ContactEmail = clean(in.ContactName, 200), strings.TrimSpace(in.ContactEmail)
	if in.ContactEmail != "" && !validEmail(in.ContactEmail) {
		v.Add("contact_email", "contact_email_invalid", "enter a valid e-mail address, or leave it empty for the provider's contact")
	}

	channel := ChannelStaff
	providerID := in.ProviderID
	if vw.provider() {
		providerID = vw.providerID
		channel = ChannelPortal
		if in.Channel == ChannelAPI {
			channel = ChannelAPI
		}
		in.AssigneeID = nil
		if vw.p.Email != "" { // a person in the portal: replies go to them
			in.ContactName, in.ContactEmail = vw.p.Name, vw.p.Email
		}
	} else if providerID <= 0 {
		v.Add("provider_id", "provider_required", "choose the provider the ticket is for")
	}
	var prov ProviderChoice
	if providerID > 0 {
		err := s.DB.WithContext(ctx).Table("providers").Select("id, legal_name, contact_email, status").
			Where("id = ?", providerID).Take(&prov).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && (prov.Status == "terminated" || prov.Status == "rejected")):
			v.Add("provider_id", "provider_invalid", "choose a provider that is registered with us")
		case err != nil:
			return nil, errs.Wrap(err, "find provider")
		}
	}
	if in.AssigneeID != nil {
		if err := s.checkAgent(ctx, *in.AssigneeID); err != nil {
			v.Add("assignee_id", "assignee_invalid", "choose an active support agent")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.ContactEmail == "" {
		in.ContactName, in.ContactEmail = "", prov.ContactEmail
	}

	now := s.now()
	t := &Ticket{ProviderID: providerID, ProviderName: prov.LegalName, Subject: in.Subject, Description: in.Description,
		Category: in.Category, Priority: in.Priority, Status: StatusNew, Channel: channel,
		ContactName: in.ContactName, ContactEmail: in.ContactEmail,
		OpenedByKind: vw.p.Actor().Kind, OpenedByID: vw.p.Actor().ID, OpenedByLabel: vw.p.Actor().Name,
		Billable: BillableByRule(in.Category), BillableSource: "rule", CreatedAt: now, UpdatedAt: now}
	if vw.staff() {
		// Staff opening a ticket on the provider's behalf are already in
		// contact with it: the first response has happened.
		t.FirstResponseAt = &now
	}
	s.clock().moveClock(t, StatusNew, now)
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Omit("ProviderName", "AssigneeName").Create(t).Error; err != nil {
			return errs.Wrap(err, "create ticket")
		}
		if err := addEvent(tx, vw.p.Actor(), t.ID, "created", "", StatusNew, channelNote(channel), false, now); err != nil {
			return err
		}
		if err := storeLinks(tx, t.ID, links, vw.p.Actor().Name, now); err != nil {
			return err
		}
		if err := storeUploads(tx, t.ID, nil, false, files, vw.p.Actor().Name, now); err != nil {
			return err
		}
		if err := audit.Recordf(ctx, tx, "support_ticket.create", "support_ticket", ticketRef(t.ID),
			"%s %s %s for %s: %s", t.Number(), t.Priority, errs.Term(t.Category), prov.LegalName, t.Subject); err != nil {
			return err
		}
		if in.AssigneeID != nil {
			if err := s.assign(ctx, tx, vw, t, *in.AssigneeID, now); err != nil {
				return err
			}
		}
		z, err := jobs.ProviderMailLocale(tx, t.ContactEmail, t.ProviderID)
		if err != nil {
			return err
		}
		subject, body := z.Mail("support.ticket_opened", "Name", t.ContactName, "Number", t.Number(), "Priority", z.T(t.Priority.Label()),
			"Category", z.T(t.Category.Label()), "Subject", t.Subject, "Target", FormatBusiness(targets[t.Priority].FirstResponse),
			"Link", s.link("/portal/tickets/"+ticketRef(t.ID)))
		if err := jobs.Enqueue(ctx, tx, jobs.Message{Kind: "support.ticket_opened", To: t.ContactEmail,
			ObjectType: "support_ticket", ObjectID: ticketRef(t.ID), DedupeKey: "support.ticket_opened:" + ticketRef(t.ID),
			Subject: subject, Body: body}); err != nil {
			return err
		}
		if t.Priority == P1 {
			return s.notifyLead(ctx, tx, t, "support.p1_opened", "Provider", prov.LegalName)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Queue views of the staff list.
const (
	ViewActive     = "active"     // new, open and waiting (default)
	ViewUnassigned = "unassigned" // new, nobody took it yet
	ViewMine       = "mine"       // assigned to the viewer and still active
	ViewBreaching  = "breaching"  // past 80 % of a running target
	ViewAll        = "all"
)

// Views lists the queue views in tab order.
var Views = []string{ViewActive, ViewUnassigned, ViewMine, ViewBreaching, ViewAll}

// Filter narrows ListTickets.
type Filter struct {
	View       string
	Status     Status
	Priority   Priority
	Category   Category
	ProviderID int64 // staff only: providers are pinned to their own
	Query      string
	// Order is a chosen column (TicketSort); the zero value keeps the view's order.
	Order  listsort.Order
	Offset int
	Limit  int
	// Keyset pages by id, newest first, without a total (the provider
	// API's cursor paging): Before is the previous page's last id (0: the
	// first page); Offset is ignored.
	Keyset bool
	Before int64
}

// Listed is a ticket in a list with its SLA standing.
type Listed struct {
	Ticket
	SLA   SLAState
	Alert string // the highest SLA alert sent: warning or breach ("" none)
}

// TicketSort is the ticket lists' sort whitelist; without a chosen key a
// view keeps its own order (what is due first; newest first for "all").
var TicketSort = listsort.Spec{
	Columns: map[string]string{
		"number":   "t.id",
		"subject":  "lower(t.subject)",
		"provider": "lower(p.legal_name)",
		"priority": "t.priority",
		"status":   "t.status",
		"assignee": "lower(s.name)",
		"sla":      ticketDue,
		"opened":   "t.created_at",
	},
	Tiebreak: "t.id",
}

// PortalTicketSort is the providers' subset: never by internal names.
var PortalTicketSort = listsort.Spec{
	Columns: map[string]string{
		"number":   "t.id",
		"subject":  "lower(t.subject)",
		"priority": "t.priority",
		"status":   "t.status",
		"sla":      ticketDue,
		"opened":   "t.created_at",
	},
	Tiebreak: "t.id",
}

// ticketDue is the SLA deadline that runs: the first response, then the resolution.
const ticketDue = "CASE WHEN t.first_response_at IS NULL THEN t.first_response_due ELSE t.resolution_due END"

// listQuery is the tickets f selects for the viewer and their order.
func (s *Service) listQuery(ctx context.Context, vw viewer, f Filter) (*gorm.DB, string) {
	now := s.now()
	q := ticketQuery(s.DB.WithContext(ctx), vw)
	view := f.View
	if vw.provider() {
		view = ViewAll
	}
	order := "t.created_at DESC, t.id DESC"
	due := ticketDue
	switch view {
	case ViewUnassigned:
		q = q.Where("t.status = ?", StatusNew)
		order = due + " ASC NULLS LAST, t.id"
	case ViewMine:
		q = q.Where("t.status IN ? AND t.assignee_id = ?", activeStatuses, vw.p.ID)
		order = due + " ASC NULLS LAST, t.id"
	case ViewBreaching:
		q = q.Where("t.status IN ('new','open') AND ((t.first_response_at IS NULL AND t.first_response_warn_at <= ?) OR t.resolution_warn_at <= ?)", now, now)
		order = due + " ASC NULLS LAST, t.id"
	case ViewAll:
	default:
		q = q.Where("t.status IN ?", activeStatuses)
		order = due + " ASC NULLS LAST, t.id"
	}
	if f.Order.Key != "" {
		order = TicketSort.SQL(f.Order)
	}
	if f.Status != "" {
		q = q.Where("t.status = ?", f.Status)
	}
	if f.Priority != "" {
		q = q.Where("t.priority = ?", f.Priority)
	}
	if f.Category != "" {
		q = q.Where("t.category = ?", f.Category)
	}
	if f.ProviderID > 0 && vw.staff() {
		q = q.Where("t.provider_id = ?", f.ProviderID)
	}
	if term := strings.TrimSpace(f.Query); term != "" {
		like := "%" + escapeLike(term) + "%"
		if id, ok := ParseNumber(term); ok {
			q = q.Where("t.id = ? OR t.subject ILIKE ?", id, like)
		} else {
			q = q.Where("t.subject ILIKE ?", like)
		}
	}
	return q, order
}

// EachTicket calls fn for every ticket f selects that the principal may
// see (a provider only its own), in f's order, one at a time (the CSV export).
func (s *Service) EachTicket(ctx context.Context, f Filter, fn func(*Ticket) error) error {
	vw, err := viewerOf(ctx)
	if err != nil {
		return err
	}
	q, order := s.listQuery(ctx, vw, f)
	return listsort.Each[Ticket](q.Order(order), fn)
}

// ListTickets lists the tickets the principal may see: staff the whole
// desk by view and filters, providers their own. Active views are ordered
// by what is due first unless f.Order chooses a column.
func (s *Service) ListTickets(ctx context.Context, f Filter) ([]Listed, int64, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, 0, err
	}
	now := s.now()
	q, order := s.listQuery(ctx, vw, f)
	var total int64
	if f.Keyset {
		order, f.Offset = "t.id DESC", 0
		if f.Before > 0 {
			q = q.Where("t.id < ?", f.Before)
		}
	} else if err := q.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count tickets")
	}
	maxLimit := 200
	if f.Keyset {
		maxLimit = 501 // an API page of 500 and one more to tell whether another follows
	}
	if f.Limit <= 0 || f.Limit > maxLimit {
		f.Limit = 25
	}
	var rows []Ticket
	if err := q.Order(order).Offset(f.Offset).Limit(f.Limit).Find(&rows).Error; err != nil {
		return nil, 0, errs.Wrap(err, "list tickets")
	}
	alerts := map[int64]string{}
	if vw.staff() && len(rows) > 0 {
		ids := make([]int64, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
		}
		var as []struct {
			TicketID int64
			Level    string
		}
		if err := s.DB.WithContext(ctx).Table("support_sla_alerts").Select("ticket_id, level").
			Where("ticket_id IN ?", ids).Scan(&as).Error; err != nil {
			return nil, 0, errs.Wrap(err, "sla alerts")
		}
		for _, a := range as {
			if alerts[a.TicketID] != LevelBreach {
				alerts[a.TicketID] = a.Level
			}
		}
	}
	out := make([]Listed, len(rows))
	for i := range rows {
		out[i] = Listed{Ticket: rows[i], SLA: s.clock().State(&rows[i], now), Alert: alerts[rows[i].ID]}
	}
	return out, total, nil
}

var activeStatuses = []Status{StatusNew, StatusOpen, StatusWaiting}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SLA returns a ticket's SLA standing now.
func (s *Service) SLA(t *Ticket) SLAState { return s.clock().State(t, s.now()) }

// Counts are the sizes of the staff queue views (for the tabs).
type Counts map[string]int64

// QueueCounts counts the tickets in each staff view.
func (s *Service) QueueCounts(ctx context.Context) (Counts, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var row struct {
		Active, Unassigned, Mine, Breaching int64
	}
	err = s.DB.WithContext(ctx).Raw(`SELECT
		count(*) FILTER (WHERE status IN ('new','open','waiting_on_provider')) AS active,
		count(*) FILTER (WHERE status = 'new') AS unassigned,
		count(*) FILTER (WHERE status IN ('new','open','waiting_on_provider') AND assignee_id = ?) AS mine,
		count(*) FILTER (WHERE status IN ('new','open') AND ((first_response_at IS NULL AND first_response_warn_at <= ?) OR resolution_warn_at <= ?)) AS breaching
		FROM support_tickets`, vw.p.ID, now, now).Scan(&row).Error
	if err != nil {
		return nil, errs.Wrap(err, "queue counts")
	}
	return Counts{ViewActive: row.Active, ViewUnassigned: row.Unassigned, ViewMine: row.Mine, ViewBreaching: row.Breaching}, nil
}

// Classification changes what a ticket is about and how urgent it is.
type Classification struct {
	Priority Priority
	Category Category
	Subject  string
}

// Classify lets support correct a ticket's priority, category and subject;
// the SLA targets follow the new priority. A category change re-applies the
// billing rule unless support decided billability by hand.
func (s *Service) Classify(ctx context.Context, id int64, in Classification) (*Ticket, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	v := &errs.Validation{}
	validEnum(v, "priority", in.Priority, Priorities, "priority")
	validEnum(v, "category", in.Category, Categories, "category")
	in.Subject = clean(in.Subject, 1000)
	if n := len([]rune(in.Subject)); n < 3 || n > 200 {
		v.Add("subject", "subject_invalid", "the subject needs 3 to 200 characters")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	var out *Ticket
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadOpenTicket(tx, vw, id)
		if err != nil {
			return err
		}
		// each change as a note of the ticket's history and as a phrase of
		// the audit summary's list
		var changes []Note
		var said []errs.Phrase
		if t.Priority != in.Priority {
			changes = append(changes, noteOf("priority {{.From}} → {{.To}}", "From", string(t.Priority), "To", string(in.Priority)))
			said = append(said, errs.Phrasef("priority %s → %s", t.Priority, in.Priority))
			t.Priority = in.Priority
		}
		if t.Category != in.Category {
			changes = append(changes, noteOf("category {{.From}} → {{.To}}", "From", term(t.Category.Label()), "To", term(in.Category.Label())))
			said = append(said, errs.Phrasef("category %s → %s", errs.Term(t.Category.Label()), errs.Term(in.Category.Label())))
			t.Category = in.Category
			if t.BillableSource == "rule" && t.CaseBilledAt == nil {
				t.Billable = BillableByRule(t.Category)
			}
		}
		if t.Subject != in.Subject {
			changes = append(changes, noteOf("subject \"{{.Subject}}\"", "Subject", in.Subject))
			said = append(said, errs.Phrasef("subject \"%s\"", in.Subject))
			t.Subject = in.Subject
		}
		if len(changes) == 0 {
			out = t
			return nil
		}
		s.clock().schedule(t)
		if err := saveTicket(tx, t, now); err != nil {
			return err
		}
		// one event per change, so each says itself in the reader's language
		for _, n := range changes {
			if err := addEvent(tx, vw.p.Actor(), t.ID, "classify", "", "", n, false, now); err != nil {
				return err
			}
		}
		out = t
		// the changes are one argument, a list said change by change
		return audit.Recordf(ctx, tx, "support_ticket.classify", "support_ticket", ticketRef(t.ID), "%s: %s", t.Number(), errs.ListOf(", ", said))
	})
	return out, err
}

func errMerged(t *Ticket) error {
	return errs.New(errs.Conflict, "ticket_merged", "%s was merged into %s; continue there", t.Number(), TicketNumber(*t.MergedIntoID))
}

// Settings are the desk's settings.
type Settings struct {
	TeamLeadID    *int64
	TeamLeadName  string
	TeamLeadEmail string
	UpdatedAt     time.Time
}

// IsLead reports whether staffID is the team lead.
func (st *Settings) IsLead(staffID int64) bool {
	return st.TeamLeadID != nil && *st.TeamLeadID == staffID
}

// FindSettings returns the desk's settings.
func (s *Service) FindSettings(ctx context.Context) (*Settings, error) {
	var st Settings
	err := s.DB.WithContext(ctx).Raw(`SELECT st.team_lead_id, COALESCE(u.name, '') AS team_lead_name,
		COALESCE(u.email, '') AS team_lead_email, st.updated_at
		FROM support_settings st LEFT JOIN staff_users u ON u.id = st.team_lead_id AND u.active WHERE st.id = 1`).Scan(&st).Error
	return &st, errs.Wrap(err, "support settings")
}

// errTeamLeadOnly refuses a plain support agent who tries to name the team lead.
var errTeamLeadOnly = errs.New(errs.Forbidden, "team_lead_only", "only the support team lead or an administrator chooses the team lead")

// MayChooseTeamLead reports whether the principal may name the team lead:
// an administrator, the current team lead (handing over) or the system;
// a plain support agent may not (the form is hidden from them, and
// SetTeamLead refuses them).
func (s *Service) MayChooseTeamLead(ctx context.Context) (bool, error) {
	v, err := staffOf(ctx)
	if err != nil {
		return false, nil
	}
	if v.p.Kind == policies.KindSystem || v.p.HasRole(policies.RoleAdmin) {
		return true, nil
	}
	if !v.p.HasRole(policies.RoleSupport) {
		return false, nil
	}
	st, err := s.FindSettings(ctx)
	if err != nil {
		return false, err
	}
	return st.IsLead(v.p.ID), nil
}

// SetTeamLead names the support agent who receives SLA escalations (nil:
// nobody, administrators then). Only an administrator or the current team
// lead may (MayChooseTeamLead).
func (s *Service) SetTeamLead(ctx context.Context, staffID *int64) error {
	if _, err := staffOf(ctx); err != nil {
		return err
	}
	if ok, err := s.MayChooseTeamLead(ctx); err != nil {
		return err
	} else if !ok {
		return errTeamLeadOnly
	}
	if staffID != nil {
		if err := s.checkAgent(ctx, *staffID); err != nil {
			v := &errs.Validation{}
			v.Add("team_lead_id", "team_lead_invalid", "choose an active support agent")
			return v.Err()
		}
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("UPDATE support_settings SET team_lead_id = ?, updated_at = now() WHERE id = 1", staffID).Error; err != nil {
			return errs.Wrap(err, "set team lead")
		}
		if staffID != nil {
			return audit.Recordf(ctx, tx, "support.settings", "support_settings", "1", "team lead is staff user %d", *staffID)
		}
		return audit.Record(ctx, tx, "support.settings", "support_settings", "1", "team lead cleared")
	})
}

// checkAgent verifies that id is an active support agent.
func (s *Service) checkAgent(ctx context.Context, id int64) error {
	return checkAgentIn(s.DB.WithContext(ctx), id)
}

// checkAgentIn is checkAgent on db: inside a transaction, pass the
// transaction, never the service's DB (a second connection while holding one).
func checkAgentIn(db *gorm.DB, id int64) error {
	var n int64
	err := db.Table("staff_users").
		Where("id = ? AND active AND id IN (SELECT user_id FROM staff_user_roles WHERE role = 'support')", id).Count(&n).Error
	if err != nil {
		return errs.Wrap(err, "check agent")
	}
	if n == 0 {
		return errs.New(errs.Invalid, "assignee_invalid", "choose an active support agent")
	}
	return nil
}
