package support

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// ReportRow is one line of the SLA report.
type ReportRow struct {
	Key           string
	Label         string
	Tickets       int // resolved in the month
	FirstMet      int // first response within target
	ResolutionMet int // resolved within target (time waiting on the provider not counted)
}

func pct(n, of int) string {
	if of == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(n)*100/float64(of), 'f', 1, 64) + " %"
}

// FirstPct is the first-response rate in percent.
func (r ReportRow) FirstPct() string { return pct(r.FirstMet, r.Tickets) }

// ResolutionPct is the resolution rate in percent.
func (r ReportRow) ResolutionPct() string { return pct(r.ResolutionMet, r.Tickets) }

// Report is the monthly SLA report: the tickets resolved in a month
// (Europe/Berlin), and how many met their targets, by priority and by
// category. Duplicates closed by merging are left out.
type Report struct {
	Period     string // YYYY-MM
	Label      string // "March 2026"
	Prev, Next string
	ByPriority []ReportRow
	ByCategory []ReportRow
	Total      ReportRow
}

var periodRE = regexp.MustCompile(`^([0-9]{4})-(0[1-9]|1[0-2])$`)

// SLAReport builds the report of period ("YYYY-MM"; empty: the current month).
func (s *Service) SLAReport(ctx context.Context, period string) (*Report, error) {
	if _, err := staffOf(ctx); err != nil {
		return nil, err
	}
	from, to, err := s.reportRange(period)
	if err != nil {
		return nil, err
	}
	year, month := from.Year(), from.Month()
	var rows []struct {
		Priority       Priority
		Category       Category
		FirstMet       bool
		SLAUsedSeconds int64
	}
	err = s.DB.WithContext(ctx).Table("support_tickets").
		Select("priority, category, (first_response_at IS NOT NULL AND first_response_at <= first_response_due) AS first_met, sla_used_seconds").
		Where("resolved_at >= ? AND resolved_at < ? AND merged_into_id IS NULL", from.UTC(), to.UTC()).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "sla report")
	}
	r := &Report{Period: fmt.Sprintf("%04d-%02d", year, month), Label: from.Format("January 2006"),
		Prev: from.AddDate(0, -1, 0).Format("2006-01"), Next: to.Format("2006-01"),
		Total: ReportRow{Key: "total", Label: "All tickets"}}
	byP := map[Priority]*ReportRow{}
	for _, p := range Priorities {
		r.ByPriority = append(r.ByPriority, ReportRow{Key: string(p), Label: p.Label()})
	}
	for i := range r.ByPriority {
		byP[Priority(r.ByPriority[i].Key)] = &r.ByPriority[i]
	}
	byC := map[Category]*ReportRow{}
	for _, c := range Categories {
		r.ByCategory = append(r.ByCategory, ReportRow{Key: string(c), Label: c.Label()})
	}
	for i := range r.ByCategory {
		byC[Category(r.ByCategory[i].Key)] = &r.ByCategory[i]
	}
	for _, row := range rows {
		resMet := time.Duration(row.SLAUsedSeconds)*time.Second <= targets[row.Priority].Resolution
		for _, rr := range []*ReportRow{byP[row.Priority], byC[row.Category], &r.Total} {
			if rr == nil {
				continue
			}
			rr.Tickets++
			if row.FirstMet {
				rr.FirstMet++
			}
			if resMet {
				rr.ResolutionMet++
			}
		}
	}
	return r, nil
}

// reportRange is the month period names (YYYY-MM, empty: this month) in
// the business time zone.
func (s *Service) reportRange(period string) (from, to time.Time, err error) {
	loc := s.clock().Location()
	now := s.now().In(loc)
	year, month := now.Year(), now.Month()
	if period != "" {
		m := periodRE.FindStringSubmatch(period)
		if m == nil {
			v := &errs.Validation{}
			v.Add("period", "period_invalid", "give the month as YYYY-MM")
			return from, to, v.Err()
		}
		y, _ := strconv.Atoi(m[1])
		mo, _ := strconv.Atoi(m[2])
		year, month = y, time.Month(mo)
	}
	from = time.Date(year, month, 1, 0, 0, 0, 0, loc)
	return from, from.AddDate(0, 1, 0), nil
}

// SLATicket is one ticket of the SLA report's export.
type SLATicket struct {
	Ticket
	FirstMet bool
}

// ResolutionMet reports whether the ticket was resolved within its target.
func (t *SLATicket) ResolutionMet() bool {
	return time.Duration(t.SLAUsedSeconds)*time.Second <= targets[t.Priority].Resolution
}

// CheckReportPeriod validates an SLA report period (YYYY-MM, empty: this month).
func (s *Service) CheckReportPeriod(period string) error {
	_, _, err := s.reportRange(period)
	return err
}

// EachSLATicket calls fn for every ticket the SLA report of period counts
// (resolved in the month, duplicates merged away left out), by
// resolution time, one at a time (the report's CSV export). Staff only.
func (s *Service) EachSLATicket(ctx context.Context, period string, fn func(*SLATicket) error) error {
	vw, err := staffOf(ctx)
	if err != nil {
		return err
	}
	from, to, err := s.reportRange(period)
	if err != nil {
		return err
	}
	q := ticketQuery(s.DB.WithContext(ctx), vw).
		Select("t.*, p.legal_name AS provider_name, COALESCE(s.name, '') AS assignee_name, (t.first_response_at IS NOT NULL AND t.first_response_at <= t.first_response_due) AS first_met").
		Where("t.resolved_at >= ? AND t.resolved_at < ? AND t.merged_into_id IS NULL", from.UTC(), to.UTC()).
		Order("t.resolved_at, t.id")
	return listsort.Each[SLATicket](q, fn)
}
