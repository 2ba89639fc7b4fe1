package support

import (
	"context"
	"time"

	"cardata/policies/errs"
)

// DeskFigures are the support dashboard's figures: the active tickets by
// priority, the SLA breaches and the tickets at risk (past the warning
// mark of a running target, not yet due), and the tickets opened per week.
// Two aggregate queries.
type DeskFigures struct {
	ByPriority       map[Priority]int64 // new, open and waiting on the provider
	Breached, AtRisk int64
	// Weeks counts the tickets opened in each of the last weeks (Monday to
	// Sunday in the desk's time zone), oldest first, by the Monday's date.
	Weeks []WeekCount
}

// WeekCount is a number for the week starting on Monday Week ("2026-11-30").
type WeekCount struct {
	Week string
	N    int64
}

// DeskFigures computes the dashboard over the last weeks weeks (staff only).
func (s *Service) DeskFigures(ctx context.Context, weeks int) (*DeskFigures, error) {
	if _, err := staffOf(ctx); err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	now := s.now()
	var rows []struct {
		Priority         Priority
		Active           int64
		Breached, AtRisk int64
	}
	if err := db.Raw(`SELECT priority,
		count(*) FILTER (WHERE status IN ('new','open','waiting_on_provider')) AS active,
		count(*) FILTER (WHERE status IN ('new','open') AND ((first_response_at IS NULL AND first_response_due <= ?) OR resolution_due <= ?)) AS breached,
		count(*) FILTER (WHERE status IN ('new','open') AND ((first_response_at IS NULL AND first_response_warn_at <= ?) OR resolution_warn_at <= ?)
			AND NOT ((first_response_at IS NULL AND first_response_due <= ?) OR resolution_due <= ?)) AS at_risk
		FROM support_tickets WHERE status <> 'closed' GROUP BY priority`, now, now, now, now, now, now).Scan(&rows).Error; err != nil {
		return nil, errs.Wrap(err, "desk figures")
	}
	f := &DeskFigures{ByPriority: map[Priority]int64{}}
	for _, r := range rows {
		f.ByPriority[r.Priority] += r.Active
		f.Breached += r.Breached
		f.AtRisk += r.AtRisk
	}
	loc := s.Location()
	local := now.In(loc)
	monday := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, -((int(local.Weekday()) + 6) % 7))
	first := monday.AddDate(0, 0, -7*(weeks-1))
	var counts []struct {
		Week string
		N    int64
	}
	if err := db.Raw(`SELECT to_char(date_trunc('week', created_at AT TIME ZONE ?), 'YYYY-MM-DD') AS week, count(*) AS n
		FROM support_tickets WHERE created_at >= ? GROUP BY 1`, loc.String(), first.UTC()).Scan(&counts).Error; err != nil {
		return nil, errs.Wrap(err, "tickets per week")
	}
	byWeek := map[string]int64{}
	for _, c := range counts {
		byWeek[c.Week] = c.N
	}
	for i := 0; i < weeks; i++ {
		w := first.AddDate(0, 0, 7*i).Format("2006-01-02")
		f.Weeks = append(f.Weeks, WeekCount{Week: w, N: byWeek[w]})
	}
	return f, nil
}

// ProviderCounts are a provider's own tickets for its portal home.
type ProviderCounts struct {
	Active  int64 // new, open or waiting
	Waiting int64 // waiting for the provider's answer
}

// ProviderTicketCounts counts the signed-in provider's tickets (one query;
// the provider comes from the principal, never from the caller).
func (s *Service) ProviderTicketCounts(ctx context.Context) (ProviderCounts, error) {
	var out ProviderCounts
	vw, err := viewerOf(ctx)
	if err != nil {
		return out, err
	}
	if !vw.provider() {
		return out, errs.New(errs.Forbidden, "provider_only", "only a provider's own tickets are counted here")
	}
	err = s.DB.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE status IN ('new','open','waiting_on_provider')) AS active,
		count(*) FILTER (WHERE status = 'waiting_on_provider') AS waiting FROM support_tickets WHERE provider_id = ?`, vw.providerID).
		Scan(&out).Error
	return out, errs.Wrap(err, "provider ticket counts")
}
