package billing

import (
	"context"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies/errs"
)

// Support item kinds.
const (
	SupportCase = "case" // the per-case fee of a billable case (at most once per ticket)
	SupportTime = "time" // a billable time entry
)

// SupportItem is something the support desk bills: a billable case, or a
// booked billable time entry. Billing owns the table so that exactly-once
// is enforced in one place: every item lands on exactly one invoice line.
type SupportItem struct {
	ID            int64 `gorm:"primaryKey"`
	ProviderID    int64
	TicketID      int64
	TicketRef     string // e.g. "T-1042", shown on the invoice
	Kind          string // SupportCase or SupportTime
	Priority      string // P1..P4
	Minutes       int    // time entries only
	OccurredAt    time.Time
	Description   string
	SourceKey     string    // unique per source row, e.g. "time_entry:812" or "case:1042"
	CreatedAt     time.Time `gorm:"<-:false"`
	InvoiceID     *int64
	InvoiceLineID *int64
}

func (SupportItem) TableName() string { return "billing_support_items" }

// RecordSupportItem stores a billable support item with tx, the support
// desk's transaction. Recording the same SourceKey again is a no-op, and a
// ticket's case fee is stored at most once, so a reopened case bills only
// the time booked anew. Items are billed on the invoice of the month they
// occurred in (or, when that invoice was already made, on the next one).
func RecordSupportItem(ctx context.Context, tx *gorm.DB, it SupportItem) error {
	v := &errs.Validation{}
	if it.ProviderID <= 0 {
		v.Add("provider_id", "required", "provider id is required")
	}
	if it.TicketID <= 0 {
		v.Add("ticket_id", "required", "ticket id is required")
	}
	if !slices.Contains(Priorities, it.Priority) {
		v.Add("priority", "priority_invalid", "priority must be P1, P2, P3 or P4")
	}
	switch it.Kind {
	case SupportCase:
		it.Minutes = 0
	case SupportTime:
		if it.Minutes <= 0 {
			v.Add("minutes", "minutes_invalid", "billable time must be at least one minute")
		}
	default:
		v.Add("kind", "kind_invalid", "kind must be case or time")
	}
	if strings.TrimSpace(it.SourceKey) == "" {
		v.Add("source_key", "required", "source key is required")
	}
	if it.OccurredAt.IsZero() {
		it.OccurredAt = time.Now()
	}
	if err := v.Err(); err != nil {
		return err
	}
	it.ID, it.InvoiceID, it.InvoiceLineID = 0, nil, nil
	it.OccurredAt = it.OccurredAt.UTC()
	err := tx.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&it).Error
	return errs.Wrap(err, "record support item")
}

// SupportItemsForTicket lists a ticket's billable items (support desk view).
func (s *Service) SupportItemsForTicket(ctx context.Context, ticketID int64) ([]SupportItem, error) {
	var out []SupportItem
	err := s.DB.WithContext(ctx).Where("ticket_id = ?", ticketID).Order("occurred_at, id").Find(&out).Error
	return out, errs.Wrap(err, "support items")
}
