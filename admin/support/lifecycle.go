package support

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/lifecycle"
)

// Action is a verb that moves a ticket between statuses.
type Action string

// The actions of the transition table.
const (
	ActionOpen          Action = "open"           // assign a new ticket: work starts
	ActionWait          Action = "wait"           // ask the provider; the SLA clock pauses
	ActionResume        Action = "resume"         // staff continue without waiting any longer
	ActionProviderReply Action = "provider_reply" // the provider answered; the clock runs again
	ActionResolve       Action = "resolve"
	ActionClose         Action = "close"
	ActionReopen        Action = "reopen"
	ActionMerge         Action = "merge" // closed as a duplicate of another ticket
)

// Who may take an action.
const (
	byStaff = 1 << iota
	byProvider
	bySystem
)

// Transition is one row of the transition table.
type Transition struct {
	Action Action
	From   []Status
	To     Status
	By     int
	// Message: the action carries a public message to the provider (the
	// question, the solution, the reason to reopen).
	Message bool
	Label   string // button text
	Past    string // for the timeline and e-mails
}

// transitions is the ticket life cycle: the only moves a ticket can make.
//
//	new -> open (assigned) -> waiting_on_provider (clock paused) -> resolved -> closed
//
// A resolved ticket closes by itself AutoCloseDays after its resolution;
// the provider may reopen it within ReopenDays (also once closed, unless
// it was merged into another ticket).
var transitions = []Transition{
	{Action: ActionOpen, From: []Status{StatusNew}, To: StatusOpen, By: byStaff, Label: "Assign", Past: "assigned"},
	{Action: ActionWait, From: []Status{StatusOpen}, To: StatusWaiting, By: byStaff, Message: true, Label: "Ask the provider and wait", Past: "asked the provider"},
	{Action: ActionResume, From: []Status{StatusWaiting}, To: StatusOpen, By: byStaff, Label: "Stop waiting", Past: "stopped waiting on the provider"},
	{Action: ActionProviderReply, From: []Status{StatusWaiting}, To: StatusOpen, By: byProvider, Label: "Reply", Past: "answered"},
	{Action: ActionResolve, From: []Status{StatusOpen, StatusWaiting}, To: StatusResolved, By: byStaff, Message: true, Label: "Resolve", Past: "resolved"},
	{Action: ActionClose, From: []Status{StatusResolved}, To: StatusClosed, By: byStaff | bySystem, Label: "Close", Past: "closed"},
	{Action: ActionReopen, From: []Status{StatusResolved, StatusClosed}, To: StatusOpen, By: byStaff | byProvider, Message: true, Label: "Reopen", Past: "reopened"},
	{Action: ActionMerge, From: []Status{StatusNew, StatusOpen, StatusWaiting}, To: StatusClosed, By: byStaff, Label: "Merge into", Past: "merged"},
}

// Calendar days (in the desk's time zone, so a DST change moves nothing).
const (
	AutoCloseDays = 7  // a resolved ticket closes this many days after its resolution
	ReopenDays    = 14 // the provider may reopen it until this many days after its resolution
)

// daysAfter is the same wall time days later in loc.
func daysAfter(t time.Time, days int, loc *time.Location) time.Time {
	return t.In(loc).AddDate(0, 0, days).UTC()
}

// Transitions returns the ticket life cycle, the only moves a ticket can
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

func roleBit(p *policies.Principal) int {
	switch p.Kind {
	case policies.KindProvider:
		return byProvider
	case policies.KindStaff:
		return byStaff
	}
	return bySystem
}

// check says why tr cannot apply to t at now for p, or nil.
func (tr Transition) check(t *Ticket, p *policies.Principal, now time.Time, loc *time.Location) error {
	if tr.By&roleBit(p) == 0 {
		return errs.New(errs.Forbidden, "action_not_allowed", "you cannot use %q on this ticket", errs.Term(tr.Label))
	}
	if t.Merged() && tr.Action != ActionMerge {
		return errMerged(t)
	}
	if !slices.Contains(tr.From, t.Status) {
		return errs.New(errs.Conflict, "invalid_transition", "%q is not possible while the ticket is %s", errs.Term(tr.Label), errs.Term(t.Status.Label()))
	}
	if tr.Action == ActionReopen && (t.ResolvedAt == nil || now.After(daysAfter(*t.ResolvedAt, ReopenDays, loc))) {
		return errs.New(errs.Conflict, "reopen_window_passed",
			"a ticket can be reopened within 14 days of its resolution; please open a new ticket and mention %s", t.Number())
	}
	return nil
}

// Actions lists the staff actions the ticket allows now (for buttons).
func (s *Service) Actions(t *Ticket) []Transition {
	now := s.now()
	staff := &policies.Principal{Kind: policies.KindStaff}
	return lifecycle.Filter(transitions, func(tr Transition) bool {
		if tr.Action == ActionOpen || tr.Action == ActionMerge {
			return false // assignment and merging have their own forms
		}
		return tr.check(t, staff, now, s.Location()) == nil
	}, Transition.clone)
}

// CanReopen reports whether the provider may still reopen the ticket.
func (s *Service) CanReopen(t *Ticket) bool {
	tr, _ := TransitionFor(ActionReopen)
	return tr.check(t, &policies.Principal{Kind: policies.KindProvider}, s.now(), s.Location()) == nil
}

// apply moves t along tr at now, with its event, audit entry and the
// resolution clock; message is the public text that goes with it (posted
// by the caller).
func (s *Service) apply(ctx context.Context, tx *gorm.DB, vw viewer, t *Ticket, tr Transition, note Note, now time.Time) error {
	if err := tr.check(t, vw.p, now, s.Location()); err != nil {
		return err
	}
	from := t.Status
	s.clock().moveClock(t, tr.To, now)
	switch tr.To {
	case StatusResolved:
		t.ResolvedAt = &now
		t.ClosedAt = nil
	case StatusClosed:
		t.ClosedAt = &now
	case StatusOpen, StatusNew:
		if from == StatusResolved || from == StatusClosed {
			t.ResolvedAt, t.ClosedAt = nil, nil
			t.ReopenCount++
		}
	}
	if err := saveTicket(tx, t, now); err != nil {
		return err
	}
	if err := addEvent(tx, vw.p.Actor(), t.ID, string(tr.Action), from, tr.To, note, false, now); err != nil {
		return err
	}
	// The note, said in English, is one argument.
	item := audit.ItemOf("support_ticket."+string(tr.Action), "support_ticket", ticketRef(t.ID), "%s %s: %s → %s",
		t.Number(), errs.Term(tr.Past), errs.Term(from), errs.Term(tr.To))
	if n := note.English(); n != "" {
		item = audit.ItemOf("support_ticket."+string(tr.Action), "support_ticket", ticketRef(t.ID), "%s %s: %s → %s (%s)",
			t.Number(), errs.Term(tr.Past), errs.Term(from), errs.Term(tr.To), n)
	}
	if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
		return err
	}
	if tr.To == StatusResolved {
		return s.transferBillable(ctx, tx, t, now)
	}
	return nil
}

// TransitionInput is what goes with a staff action.
type TransitionInput struct {
	Message     string // the public message the action requires
	Attachments []Upload
}

// Transition performs a staff action (wait, resume, resolve, close,
// reopen) on a ticket. Actions that need a message post it as a public
// reply, which the provider's contact receives by e-mail.
func (s *Service) Transition(ctx context.Context, id int64, action Action, in TransitionInput) (*Ticket, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	tr, ok := TransitionFor(action)
	if !ok || action == ActionOpen || action == ActionMerge || action == ActionProviderReply {
		return nil, errs.New(errs.NotFound, "unknown_action", "no such action")
	}
	return s.transition(ctx, vw, id, tr, in)
}

func (s *Service) transition(ctx context.Context, vw viewer, id int64, tr Transition, in TransitionInput) (*Ticket, error) {
	v := &errs.Validation{}
	body := clean(in.Message, 30000)
	if tr.Message {
		checkBody(v, body, "message")
	}
	files := checkUploads(v, in.Attachments)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	var out *Ticket
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadTicket(tx, vw, id, true)
		if err != nil {
			return err
		}
		if err := s.apply(ctx, tx, vw, t, tr, Note{}, now); err != nil {
			return err
		}
		if tr.Message {
			if _, err := s.post(ctx, tx, vw, t, body, false, files, now, tr); err != nil {
				return err
			}
		}
		out = t
		return nil
	})
	return out, err
}

// Reopen lets the provider (or staff) reopen a resolved ticket within the
// reopen window, with the reason as a public message.
func (s *Service) Reopen(ctx context.Context, id int64, reason string) (*Ticket, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	tr, _ := TransitionFor(ActionReopen)
	return s.transition(ctx, vw, id, tr, TransitionInput{Message: reason})
}

// Assign gives the ticket to a support agent; a new ticket opens with it.
func (s *Service) Assign(ctx context.Context, id, assigneeID int64) (*Ticket, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkAgent(ctx, assigneeID); err != nil {
		v := &errs.Validation{}
		v.Add("assignee_id", "assignee_invalid", "choose an active support agent")
		return nil, v.Err()
	}
	now := s.now()
	var out *Ticket
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadTicket(tx, vw, id, true)
		if err != nil {
			return err
		}
		out = t
		return s.assign(ctx, tx, vw, t, assigneeID, now)
	})
	return out, err
}

// assign sets the assignee and, for a new ticket, opens it.
func (s *Service) assign(ctx context.Context, tx *gorm.DB, vw viewer, t *Ticket, assigneeID int64, now time.Time) error {
	if t.Merged() {
		return errMerged(t)
	}
	if !t.Status.Active() {
		return errs.New(errs.Conflict, "invalid_transition", "a %s ticket cannot be assigned; reopen it first", errs.Term(t.Status.Label()))
	}
	var name string
	if err := tx.Table("staff_users").Select("name").Where("id = ?", assigneeID).Scan(&name).Error; err != nil {
		return errs.Wrap(err, "assignee name")
	}
	if t.AssigneeID != nil && *t.AssigneeID == assigneeID {
		return nil
	}
	t.AssigneeID, t.AssigneeName = &assigneeID, name
	if t.Status == StatusNew {
		tr, _ := TransitionFor(ActionOpen)
		return s.apply(ctx, tx, vw, t, tr, noteOf("to {{.Name}}", "Name", name), now)
	}
	if err := saveTicket(tx, t, now); err != nil {
		return err
	}
	if err := addEvent(tx, vw.p.Actor(), t.ID, "assign", "", "", noteOf("to {{.Name}}", "Name", name), true, now); err != nil {
		return err
	}
	return audit.Recordf(ctx, tx, "support_ticket.assign", "support_ticket", ticketRef(t.ID), "%s assigned to %s", t.Number(), name)
}

// Merge closes a duplicate ticket into the surviving one of the same
// provider. The duplicate's conversation shows on the survivor's timeline;
// its unbilled time entries move to the survivor, so the case is billed
// once, on the survivor.
func (s *Service) Merge(ctx context.Context, duplicateID, survivorID int64) (*Ticket, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	if duplicateID == survivorID {
		v := &errs.Validation{}
		v.Add("survivor", "merge_into_itself", "a ticket cannot be merged into itself")
		return nil, v.Err()
	}
	now := s.now()
	var out *Ticket
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Lock both in id order so two merges cannot deadlock.
		first, second := min(duplicateID, survivorID), max(duplicateID, survivorID)
		if err := tx.Exec("SELECT 1 FROM support_tickets WHERE id IN (?, ?) ORDER BY id FOR UPDATE", first, second).Error; err != nil {
			return errs.Wrap(err, "lock tickets")
		}
		dup, err := loadTicket(tx, vw, duplicateID, false)
		if err != nil {
			return err
		}
		surv, err := loadTicket(tx, vw, survivorID, false)
		if err != nil {
			if errs.Is(err, "ticket_not_found") {
				v := &errs.Validation{}
				v.Add("survivor", "survivor_not_found", "no ticket %s", TicketNumber(survivorID))
				return v.Err()
			}
			return err
		}
		v := &errs.Validation{}
		switch {
		case surv.ProviderID != dup.ProviderID:
			v.Add("survivor", "survivor_other_provider", "%s belongs to another provider; only a provider's own tickets can be merged", surv.Number())
		case surv.Merged() || surv.Status == StatusClosed:
			v.Add("survivor", "survivor_closed", "%s is closed; merge into an open ticket", surv.Number())
		}
		if err := v.Err(); err != nil {
			return err
		}
		tr, _ := TransitionFor(ActionMerge)
		if err := tr.check(dup, vw.p, now, s.Location()); err != nil {
			return err
		}
		survID := surv.ID
		dup.MergedIntoID = &survID
		if err := s.apply(ctx, tx, vw, dup, tr, noteOf("into {{.Number}}", "Number", surv.Number()), now); err != nil {
			return err
		}
		var moved struct{ N, Minutes int64 }
		if err := tx.Raw(`WITH m AS (UPDATE support_time_entries SET ticket_id = ? WHERE ticket_id = ? AND billed_at IS NULL RETURNING minutes)
			SELECT count(*) AS n, COALESCE(sum(minutes), 0) AS minutes FROM m`, surv.ID, dup.ID).Scan(&moved).Error; err != nil {
			return errs.Wrap(err, "move time entries")
		}
		mergedIn := noteOf("{{.Number}} was merged into this ticket", "Number", dup.Number())
		if err := addEvent(tx, vw.p.Actor(), surv.ID, "merged_in", "", "", mergedIn, false, now); err != nil {
			return err
		}
		item := audit.ItemOf("support_ticket.merge_into", "support_ticket", ticketRef(surv.ID), "%s was merged into this ticket", dup.Number())
		if moved.N > 0 {
			timeNote := noteOf("{{.Count}} time entries of {{.Number}} moved here ({{.Minutes}} min)",
				"Count", moved.N, "Number", dup.Number(), "Minutes", moved.Minutes)
			if err := addEvent(tx, vw.p.Actor(), surv.ID, "time_moved", "", "", timeNote, true, now); err != nil {
				return err
			}
			item = audit.ItemOf("support_ticket.merge_into", "support_ticket", ticketRef(surv.ID),
				"%s was merged into this ticket; %d time entries of %s moved here (%s min)",
				dup.Number(), moved.N, dup.Number(), englishNumber(moved.Minutes))
		}
		if surv.Status == StatusResolved && moved.N > 0 {
			if err := s.transferBillable(ctx, tx, surv, now); err != nil {
				return err
			}
		}
		out = dup
		return audit.RecordMany(ctx, tx, []audit.Item{item})
	})
	return out, err
}

// CloseResolved closes the tickets resolved AutoCloseDays ago or earlier
// (the scheduled job). Each ticket commits on its own, so a run stopped
// midway resumes where it was.
func (s *Service) CloseResolved(ctx context.Context) (int, error) {
	now := s.now()
	var ids []int64
	if err := s.DB.WithContext(ctx).Table("support_tickets").Where("status = ? AND resolved_at <= ?", StatusResolved, daysAfter(now, -AutoCloseDays, s.Location())).
		Order("id").Limit(5000).Pluck("id", &ids).Error; err != nil {
		return 0, errs.Wrap(err, "resolved tickets")
	}
	sys := policies.System("support.auto_close")
	sctx := policies.WithPrincipal(ctx, sys)
	vw := viewer{p: sys}
	tr, _ := TransitionFor(ActionClose)
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		err := s.DB.WithContext(sctx).Transaction(func(tx *gorm.DB) error {
			t, err := loadTicket(tx, vw, id, true)
			if err != nil {
				return err
			}
			if t.Status != StatusResolved || t.ResolvedAt == nil || now.Before(daysAfter(*t.ResolvedAt, AutoCloseDays, s.Location())) {
				return nil // reopened or closed meanwhile
			}
			n++
			return s.apply(sctx, tx, vw, t, tr, noteOf("{{.Days}} days after resolution", "Days", AutoCloseDays), now)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
