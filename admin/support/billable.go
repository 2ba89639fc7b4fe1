package support

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"cardata/billing"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// TimeEntry is time an agent booked on a ticket.
type TimeEntry struct {
	ID         int64 `gorm:"primaryKey"`
	TicketID   int64
	AgentID    *int64
	AgentLabel string
	Minutes    int
	Billable   bool
	Note       string
	WorkedOn   time.Time
	CreatedAt  time.Time
	BilledAt   *time.Time // handed to billing (once)
}

func (TimeEntry) TableName() string { return "support_time_entries" }

// Day is the day the time was worked (YYYY-MM-DD).
func (e TimeEntry) Day() string { return e.WorkedOn.Format("2006-01-02") }

// NewTimeEntry is the input of BookTime.
type NewTimeEntry struct {
	Minutes  int
	Billable bool
	Note     string
	WorkedOn time.Time // a date; zero means today
}

// TimeTotals sums a ticket's booked time.
type TimeTotals struct {
	Minutes         int // everything booked
	BillableMinutes int // booked as billable
	BilledMinutes   int // handed to billing
}

// TimeEntries lists a ticket's booked time (staff only).
func (s *Service) TimeEntries(ctx context.Context, id int64) ([]TimeEntry, TimeTotals, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, TimeTotals{}, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := loadTicket(db, vw, id, false); err != nil {
		return nil, TimeTotals{}, err
	}
	var out []TimeEntry
	if err := db.Where("ticket_id = ?", id).Order("worked_on, id").Find(&out).Error; err != nil {
		return nil, TimeTotals{}, errs.Wrap(err, "time entries")
	}
	var tot TimeTotals
	for _, e := range out {
		tot.Minutes += e.Minutes
		if e.Billable {
			tot.BillableMinutes += e.Minutes
		}
		if e.BilledAt != nil {
			tot.BilledMinutes += e.Minutes
		}
	}
	return out, tot, nil
}

// BookTime books an agent's time on a ticket. On a resolved or closed
// billable ticket it goes to billing at once; otherwise with the resolution.
func (s *Service) BookTime(ctx context.Context, id int64, in NewTimeEntry) (*TimeEntry, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	loc := s.clock().Location()
	today := now.In(loc)
	todayDate := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	v := &errs.Validation{}
	if in.Minutes < 1 || in.Minutes > 1440 {
		v.Add("minutes", "minutes_invalid", "book between 1 and 1,440 minutes")
	}
	in.Note = clean(in.Note, 1000)
	worked := todayDate
	if !in.WorkedOn.IsZero() {
		worked = time.Date(in.WorkedOn.Year(), in.WorkedOn.Month(), in.WorkedOn.Day(), 0, 0, 0, 0, time.UTC)
		if worked.After(todayDate) {
			v.Add("worked_on", "worked_on_future", "time cannot be booked for a future day")
		} else if todayDate.Sub(worked) > 92*24*time.Hour {
			v.Add("worked_on", "worked_on_too_old", "time can be booked for the last three months only")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var out *TimeEntry
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadOpenTicket(tx, vw, id)
		if err != nil {
			return err
		}
		e := &TimeEntry{TicketID: t.ID, AgentID: vw.p.Actor().ID, AgentLabel: vw.p.Actor().Name, Minutes: in.Minutes,
			Billable: in.Billable, Note: in.Note, WorkedOn: worked, CreatedAt: now}
		if err := tx.Create(e).Error; err != nil {
			return errs.Wrap(err, "book time")
		}
		note := noteOf("{{.Minutes}} min non-billable by {{.Agent}}", "Minutes", e.Minutes, "Agent", e.AgentLabel)
		if e.Billable {
			note.ID = "{{.Minutes}} min billable by {{.Agent}}"
		}
		if err := addEvent(tx, vw.p.Actor(), t.ID, "time", "", "", note, true, now); err != nil {
			return err
		}
		format := "%s: %s min non-billable by %s"
		if e.Billable {
			format = "%s: %s min billable by %s"
		}
		if err := audit.Recordf(ctx, tx, "support_ticket.time", "support_ticket", ticketRef(t.ID), format, t.Number(), englishNumber(e.Minutes), e.AgentLabel); err != nil {
			return err
		}
		out = e
		if t.Status == StatusResolved || t.Status == StatusClosed {
			if err := s.transferBillable(ctx, tx, t, now); err != nil {
				return err
			}
			return tx.Take(out, e.ID).Error
		}
		return nil
	})
	return out, err
}

// DeleteTimeEntry removes a booking that has not gone to billing yet.
func (s *Service) DeleteTimeEntry(ctx context.Context, id, entryID int64) error {
	vw, err := staffOf(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadTicket(tx, vw, id, true)
		if err != nil {
			return err
		}
		var e TimeEntry
		err = tx.Where("id = ? AND ticket_id = ?", entryID, t.ID).Take(&e).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errs.New(errs.NotFound, "time_entry_not_found", "time entry not found")
		}
		if err != nil {
			return errs.Wrap(err, "find time entry")
		}
		if e.BilledAt != nil {
			return errs.New(errs.Conflict, "time_entry_billed", "this time went to billing on %s and cannot be removed; ask finance for a credit note",
				errs.Day{T: e.BilledAt.In(s.clock().Location())})
		}
		if err := tx.Delete(&e).Error; err != nil {
			return errs.Wrap(err, "delete time entry")
		}
		note := noteOf("removed {{.Minutes}} min booked by {{.Agent}}", "Minutes", e.Minutes, "Agent", e.AgentLabel)
		if err := addEvent(tx, vw.p.Actor(), t.ID, "time_removed", "", "", note, true, now); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "support_ticket.time_remove", "support_ticket", ticketRef(t.ID), "%s: removed %s min booked by %s",
			t.Number(), englishNumber(e.Minutes), e.AgentLabel)
	})
}

// SetBillable marks a case billable or not, overriding the price list's
// rule (a reason is required then). A case whose fee already went to
// billing can no longer be made free here (finance credits it).
func (s *Service) SetBillable(ctx context.Context, id int64, billable bool, reason string) (*Ticket, error) {
	vw, err := staffOf(ctx)
	if err != nil {
		return nil, err
	}
	reason = clean(reason, 500)
	now := s.now()
	var out *Ticket
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadOpenTicket(tx, vw, id)
		if err != nil {
			return err
		}
		out = t
		if t.Billable == billable {
			return nil
		}
		if !billable && t.CaseBilledAt != nil {
			return errs.New(errs.Conflict, "case_already_billed", "the case went to billing on %s; ask finance for a credit note",
				errs.Day{T: t.CaseBilledAt.In(s.clock().Location())})
		}
		byRule := billable == BillableByRule(t.Category)
		if !byRule && reason == "" {
			v := &errs.Validation{}
			v.Add("reason", "reason_required", "say why this case differs from the price list's rule")
			return v.Err()
		}
		t.Billable = billable
		t.BillableSource, t.BillableReason = "support", reason
		if byRule {
			t.BillableSource = "rule"
		}
		if err := saveTicket(tx, t, now); err != nil {
			return err
		}
		note := noteOf(map[bool]string{true: "marked billable", false: "marked not billable"}[billable])
		if reason != "" {
			note = noteOf(map[bool]string{true: "marked billable: {{.Reason}}", false: "marked not billable: {{.Reason}}"}[billable], "Reason", reason)
		}
		if err := addEvent(tx, vw.p.Actor(), t.ID, "billable", "", "", note, true, now); err != nil {
			return err
		}
		item := audit.ItemOf("support_ticket.billable", "support_ticket", ticketRef(t.ID), map[bool]string{true: "%s marked billable", false: "%s marked not billable"}[billable], t.Number())
		if reason != "" {
			item = audit.ItemOf("support_ticket.billable", "support_ticket", ticketRef(t.ID), map[bool]string{true: "%s marked billable: %s", false: "%s marked not billable: %s"}[billable], t.Number(), reason)
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		if billable && (t.Status == StatusResolved || t.Status == StatusClosed) {
			return s.transferBillable(ctx, tx, t, now)
		}
		return nil
	})
	return out, err
}

// transferBillable hands a resolved billable case to billing: its case fee
// once per ticket, and every billable time entry not handed over yet. The
// entries are marked in the same transaction and billing ignores a source
// key it has seen, so each item reaches exactly one invoice, and a reopened
// case bills only the time booked anew.
func (s *Service) transferBillable(ctx context.Context, tx *gorm.DB, t *Ticket, now time.Time) error {
	if !t.Billable || (t.Status != StatusResolved && t.Status != StatusClosed) || t.Merged() {
		return nil
	}
	if t.CaseBilledAt == nil {
		err := billing.RecordSupportItem(ctx, tx, billing.SupportItem{ProviderID: t.ProviderID, TicketID: t.ID, TicketRef: t.Number(),
			Kind: billing.SupportCase, Priority: string(t.Priority), OccurredAt: now,
			Description: fmt.Sprintf("Support case %s (%s): %s", t.Number(), t.Category.Label(), t.Subject),
			SourceKey:   fmt.Sprintf("support_case:%d", t.ID)})
		if err != nil {
			return err
		}
		t.CaseBilledAt = &now
		if err := saveTicket(tx, t, now); err != nil {
			return err
		}
	}
	var entries []TimeEntry
	if err := tx.Raw(`SELECT * FROM support_time_entries WHERE ticket_id = ? AND billable AND billed_at IS NULL ORDER BY id FOR UPDATE`, t.ID).
		Scan(&entries).Error; err != nil {
		return errs.Wrap(err, "billable time")
	}
	for _, e := range entries {
		err := billing.RecordSupportItem(ctx, tx, billing.SupportItem{ProviderID: t.ProviderID, TicketID: t.ID, TicketRef: t.Number(),
			Kind: billing.SupportTime, Priority: string(t.Priority), Minutes: e.Minutes, OccurredAt: now,
			Description: fmt.Sprintf("%d min by %s on %s", e.Minutes, e.AgentLabel, e.WorkedOn.Format("2006-01-02")),
			SourceKey:   fmt.Sprintf("support_time:%d", e.ID)})
		if err != nil {
			return err
		}
		if err := tx.Exec("UPDATE support_time_entries SET billed_at = ? WHERE id = ?", now, e.ID).Error; err != nil {
			return errs.Wrap(err, "mark time billed")
		}
	}
	if len(entries) > 0 || t.CaseBilledAt.Equal(now) {
		minutes := 0
		for _, e := range entries {
			minutes += e.Minutes
		}
		note := noteOf("to billing: {{.Minutes}} min", "Minutes", minutes)
		if t.CaseBilledAt.Equal(now) {
			note = noteOf("to billing: {{.Minutes}} min and the {{.Priority}} case fee", "Minutes", minutes, "Priority", string(t.Priority))
		}
		if err := addEvent(tx, policies.ActorOf(ctx, policies.System("support")), t.ID, "billing", "", "", note, true, now); err != nil {
			return err
		}
	}
	return nil
}
