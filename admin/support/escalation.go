package support

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

type recipient struct {
	Name  string
	Email string
}

// leads returns the team lead, or, while none is set, the active
// administrators, so that an escalation always reaches someone.
func leads(tx *gorm.DB) ([]recipient, error) {
	var out []recipient
	err := tx.Raw(`SELECT u.name, u.email FROM support_settings st JOIN staff_users u ON u.id = st.team_lead_id AND u.active WHERE st.id = 1`).
		Scan(&out).Error
	if err != nil {
		return nil, errs.Wrap(err, "team lead")
	}
	if len(out) > 0 {
		return out, nil
	}
	err = tx.Raw(`SELECT name, email FROM staff_users WHERE active AND id IN (SELECT user_id FROM staff_user_roles WHERE role = ?) ORDER BY id`,
		policies.RoleAdmin).Scan(&out).Error
	return out, errs.Wrap(err, "administrators")
}

// escalationRecipients are the assignee and the team lead, once each.
func escalationRecipients(tx *gorm.DB, t *Ticket) ([]recipient, error) {
	var out []recipient
	if t.AssigneeID != nil {
		if err := tx.Raw(`SELECT name, email FROM staff_users WHERE id = ? AND active`, *t.AssigneeID).Scan(&out).Error; err != nil {
			return nil, errs.Wrap(err, "assignee")
		}
	}
	ls, err := leads(tx)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		dup := false
		for _, r := range out {
			dup = dup || strings.EqualFold(r.Email, l.Email)
		}
		if !dup {
			out = append(out, l)
		}
	}
	return out, nil
}

// notifyLead e-mails the team lead (or the administrators) about t: the
// texts of kind, in each one's language, with the ticket's number, subject
// and link besides args.
func (s *Service) notifyLead(ctx context.Context, tx *gorm.DB, t *Ticket, kind string, args ...any) error {
	ls, err := leads(tx)
	if err != nil {
		return err
	}
	for _, l := range ls {
		z, err := jobs.MailLocale(tx, l.Email, "")
		if err != nil {
			return err
		}
		subject, body := z.Mail(kind, append([]any{"Name", l.Name, "Number", t.Number(), "Subject", t.Subject,
			"Link", s.link("/admin/tickets/" + ticketRef(t.ID))}, args...)...)
		err = jobs.Enqueue(ctx, tx, jobs.Message{Kind: kind, To: l.Email, ObjectType: "support_ticket", ObjectID: ticketRef(t.ID),
			DedupeKey: fmt.Sprintf("%s:%d:%s", kind, t.ID, strings.ToLower(l.Email)),
			Subject:   subject, Body: body})
		if err != nil {
			return err
		}
	}
	return nil
}

// Escalations are the figures of one SLA check.
type Escalations struct {
	Checked  int
	Warnings int // 80 % alerts sent
	Breaches int // breach alerts sent
	Emails   int
}

// CheckSLAs is the body of the escalation job (every 5 minutes): for every
// running ticket past 80 % of a target it warns, past the target it
// escalates, by e-mail to the assignee and the team lead and with a flag in
// the queue. Each ticket, clock and level alerts once: the alert row is the
// dedupe key, so running the job again sends nothing new.
func (s *Service) CheckSLAs(ctx context.Context) (Escalations, error) {
	var res Escalations
	now := s.now()
	var ids []int64
	err := s.DB.WithContext(ctx).Table("support_tickets").
		Where("status IN ('new','open') AND ((first_response_at IS NULL AND first_response_warn_at <= ?) OR resolution_warn_at <= ?)", now, now).
		Order("id").Limit(5000).Pluck("id", &ids).Error
	if err != nil {
		return res, errs.Wrap(err, "tickets to check")
	}
	sys := policies.System("support.sla_escalations")
	sctx := policies.WithPrincipal(ctx, sys)
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Checked++
		err := s.DB.WithContext(sctx).Transaction(func(tx *gorm.DB) error {
			t, err := loadTicket(tx, viewer{p: sys}, id, true)
			if err != nil {
				return err
			}
			return s.escalate(sctx, tx, t, now, &res)
		})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// escalate records and sends the alerts t has reached at now.
func (s *Service) escalate(ctx context.Context, tx *gorm.DB, t *Ticket, now time.Time, res *Escalations) error {
	if !runs(t.Status) {
		return nil
	}
	type reached struct {
		clock string
		level string
		due   time.Time
	}
	var hits []reached
	if t.FirstResponseAt == nil {
		if !t.FirstResponseDue.After(now) {
			hits = append(hits, reached{ClockFirstResponse, LevelBreach, t.FirstResponseDue})
		} else if !t.FirstResponseWarnAt.After(now) {
			hits = append(hits, reached{ClockFirstResponse, LevelWarning, t.FirstResponseDue})
		}
	}
	if t.ResolutionDue != nil && t.ResolutionWarnAt != nil {
		if !t.ResolutionDue.After(now) {
			hits = append(hits, reached{ClockResolution, LevelBreach, *t.ResolutionDue})
		} else if !t.ResolutionWarnAt.After(now) {
			hits = append(hits, reached{ClockResolution, LevelWarning, *t.ResolutionDue})
		}
	}
	for _, h := range hits {
		levels := []string{h.level}
		if h.level == LevelBreach {
			levels = []string{LevelWarning, LevelBreach} // a breach implies the warning: never warn afterwards
		}
		sendLevel := ""
		for _, lv := range levels {
			r := tx.Exec(`INSERT INTO support_sla_alerts (ticket_id, sla, level, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				t.ID, h.clock, lv, now)
			if r.Error != nil {
				return errs.Wrap(r.Error, "sla alert")
			}
			if r.RowsAffected == 1 {
				sendLevel = lv // the highest newly reached level is the one to send
			}
		}
		if sendLevel == "" || (sendLevel == LevelWarning && h.level == LevelBreach) {
			continue // sent before (or only the implied warning is new)
		}
		if err := s.sendAlert(ctx, tx, t, h.clock, sendLevel, h.due, now, res); err != nil {
			return err
		}
	}
	return nil
}

func clockLabel(c string) string {
	if c == ClockFirstResponse {
		return "first response"
	}
	return "resolution"
}

func (s *Service) sendAlert(ctx context.Context, tx *gorm.DB, t *Ticket, clock, level string, due, now time.Time, res *Escalations) error {
	tg := targets[t.Priority]
	target := tg.Resolution
	if clock == ClockFirstResponse {
		target = tg.FirstResponse
	}
	loc := s.clock().Location()
	var action string
	if level == LevelBreach {
		res.Breaches++
		action = "sla_breach"
	} else {
		res.Warnings++
		action = "sla_warning"
	}
	note := noteOf(map[string]string{
		ClockFirstResponse + LevelWarning: "first response at 80 %", ClockFirstResponse + LevelBreach: "first response target breached",
		ClockResolution + LevelWarning: "resolution at 80 %", ClockResolution + LevelBreach: "resolution target breached",
	}[clock+level])
	if err := addEvent(tx, policies.ActorOf(ctx, policies.System("support")), t.ID, action, "", "", note, true, now); err != nil {
		return err
	}
	format := map[string]string{
		ClockFirstResponse + LevelWarning: "%s: first response at 80 %%", ClockFirstResponse + LevelBreach: "%s: first response target breached",
		ClockResolution + LevelWarning: "%s: resolution at 80 %%", ClockResolution + LevelBreach: "%s: resolution target breached",
	}[clock+level]
	if err := audit.RecordMany(ctx, tx, []audit.Item{audit.ItemOf("support_ticket."+action, "support_ticket", ticketRef(t.ID), format, t.Number())}); err != nil {
		return err
	}
	rs, err := escalationRecipients(tx, t)
	if err != nil {
		return err
	}
	for _, r := range rs {
		z, err := jobs.MailLocale(tx, r.Email, "")
		if err != nil {
			return err
		}
		assignee := t.AssigneeName
		if assignee == "" {
			assignee = z.T("nobody yet")
		}
		args := []any{"Name", r.Name, "Number", t.Number(), "Subject", t.Subject, "Clock", z.T(clockLabel(clock)),
			"Target", FormatBusiness(target), "Priority", string(t.Priority), "Due", z.DateTime(due.In(loc)),
			"Left", FormatBusiness(s.clock().Between(now, due)), "Provider", t.ProviderName, "PriorityLabel", z.T(t.Priority.Label()),
			"Assignee", assignee, "Link", s.link("/admin/tickets/" + ticketRef(t.ID))}
		subject, body := z.Mail("support."+action, args...)
		err = jobs.Enqueue(ctx, tx, jobs.Message{Kind: "support." + action, To: r.Email,
			ObjectType: "support_ticket", ObjectID: ticketRef(t.ID),
			DedupeKey: fmt.Sprintf("support.%s:%d:%s:%s", action, t.ID, clock, strings.ToLower(r.Email)),
			Subject:   subject, Body: body})
		if err != nil {
			return err
		}
		res.Emails++
	}
	return nil
}

// Alert is an SLA alert sent about a ticket.
type Alert struct {
	SLA   string
	Level string
	At    time.Time
}

// TicketAlerts lists the alerts sent about a ticket, oldest first.
func (s *Service) TicketAlerts(ctx context.Context, id int64) ([]Alert, error) {
	if _, err := staffOf(ctx); err != nil {
		return nil, err
	}
	var out []Alert
	err := s.DB.WithContext(ctx).Table("support_sla_alerts").Select("sla, level, at").Where("ticket_id = ?", id).Order("at, sla, level").Scan(&out).Error
	return out, errs.Wrap(err, "ticket alerts")
}
