package admin

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"cardata/admin/staff"
	"cardata/admin/support"
	"cardata/billing"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/templates"
)

// The dashboard's cards per role group. Each card asks its service for a
// handful of aggregates (no per-row queries) and puts a link behind every
// figure: the list that explains it, filtered where the list can be. The
// page's link filter drops a link the viewer's roles could not follow, so
// a card shared by several roles never shows a dead link.

func count(label string, n int64, link, tone string) Figure {
	f := Figure{Label: label, N: n, Link: link}
	if n > 0 {
		f.Tone = tone
	}
	return f
}

func decs(ns ...int64) []decimal.Decimal {
	out := make([]decimal.Decimal, len(ns))
	for i, n := range ns {
		out[i] = decimal.NewFromInt(n)
	}
	return out
}

func withQuery(path, key, value string) string {
	return path + "?" + url.Values{key: {value}}.Encode()
}

// PartnerWidgets are the partner managers' cards: applications waiting and
// the oldest, container versions awaiting a first or second approval,
// market requests, providers by status and the market coverage over the
// last twelve months.
func PartnerWidgets(o *onboarding.Service, ct *containers.Service, loc *time.Location) []Widget {
	roles := []string{policies.RolePartnerManager}
	const section = "Partner management"
	// One load serves the cards of one dashboard: the figures are read
	// once per request through a per-request memo (see memo).
	figures := memo(func(ctx context.Context) (*onboarding.PartnerFigures, error) { return o.PartnerFigures(ctx, loc, 12) })
	return []Widget{
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			v := WidgetValue{Title: "Applications", Figures: []Figure{count("Waiting for review", f.Waiting, "/admin/review-queue", "warn")}}
			if f.Oldest != nil {
				days := int64(time.Since(f.OldestSince) / (24 * time.Hour))
				v.Figures = append(v.Figures, Figure{Label: "Oldest waiting", Kind: FigureDays, N: days,
					Link: fmt.Sprintf("/admin/providers/%d", f.Oldest.ID), Detail: f.Oldest.LegalName})
			}
			return v, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			rc, err := ct.CountReviews(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			queue := withQuery("/admin/containers", "state", string(containers.Submitted))
			return WidgetValue{Title: "Approvals waiting", Figures: []Figure{
				count("Containers, first approval", rc.First, queue, "warn"),
				count("Containers, second approval", rc.Second, queue, "warn"),
				count("Market requests", f.MarketRequests, "/admin/review-queue#market-requests", "warn"),
			}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			c := &templates.ChartData{Title: "Providers by status", Kind: "hbars", LabelKind: "text", LabelHeader: "Status",
				Series: []templates.ChartSeries{{Name: "Providers"}}}
			var total int64
			for _, st := range onboarding.Statuses {
				n := f.ByStatus[st]
				total += n
				c.Labels = append(c.Labels, st.Label())
				c.Links = append(c.Links, withQuery("/admin/providers", "status", string(st)))
				c.Series[0].Values = append(c.Series[0].Values, decimal.NewFromInt(n))
			}
			return WidgetValue{Title: "Providers", Wide: true, Chart: c,
				Figures: []Figure{count("All providers", total, "/admin/providers", ""),
					count("Active", f.ByStatus[onboarding.StatusActive], withQuery("/admin/providers", "status", string(onboarding.StatusActive)), "ok")}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			c := &templates.ChartData{Title: "Markets covered, last 12 months", Kind: "sparkline", LabelKind: "month", LabelHeader: "Month",
				Series: []templates.ChartSeries{{Name: "Markets covered"}}}
			var now int64
			for _, m := range f.Coverage {
				c.Labels = append(c.Labels, m.Period)
				c.Links = append(c.Links, "/admin/coverage")
				c.Series[0].Values = append(c.Series[0].Values, decimal.NewFromInt(m.N))
				now = m.N
			}
			return WidgetValue{Title: "Market coverage", Chart: c,
				Figures: []Figure{count("Markets covered", now, "/admin/coverage", "")}}, nil
		}},
	}
}

// FinanceWidgets are finance's cards: revenue by month (invoiced against
// paid, the revenue page's figures), open and overdue receivables, drafts
// awaiting finalization and the latest invoice run.
func FinanceWidgets(b *billing.Service) []Widget {
	roles := []string{policies.RoleFinance}
	const section = "Finance"
	figures := memo(b.FinanceFigures)
	return []Widget{
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			c := &templates.ChartData{Title: "Revenue by month", Desc: "Invoiced (net of credit notes, gross) and paid, per billing period.",
				Kind: "bars", LabelKind: "month", LabelHeader: "Billing period", Money: true,
				Series: []templates.ChartSeries{{Name: "Invoiced"}, {Name: "Paid"}}}
			for _, p := range f.Periods {
				c.Labels = append(c.Labels, p.Period)
				c.Links = append(c.Links, withQuery("/admin/billing/invoices", "period", p.Period))
				c.Series[0].Values = append(c.Series[0].Values, p.Invoiced)
				c.Series[1].Values = append(c.Series[1].Values, p.Paid)
			}
			return WidgetValue{Title: "Revenue", Wide: true, Chart: c}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			overdue := Figure{Label: "Overdue", Kind: FigureMoney, Amount: f.Overdue, Link: "/admin/billing/invoices?overdue=1"}
			if f.Overdue.IsPositive() {
				overdue.Tone = "bad"
			}
			return WidgetValue{Title: "Receivables", Figures: []Figure{
				{Label: "Open receivables", Kind: FigureMoney, Amount: f.Open, Link: "/admin/billing/revenue"},
				overdue,
				count("Overdue invoices", f.OverdueCount, "/admin/billing/invoices?overdue=1", "bad"),
			}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			v := WidgetValue{Title: "Invoicing", Figures: []Figure{
				count("Drafts awaiting finalization", f.Drafts, withQuery("/admin/billing/invoices", "status", billing.StatusDraft), "warn"),
			}}
			if r := f.LastRun; r != nil {
				last := Figure{Label: "Last invoice run", Kind: FigureText, Text: r.Status, Link: fmt.Sprintf("/admin/billing/runs/%d", r.ID),
					DetailMonth: r.Period, DetailAt: &r.StartedAt}
				switch r.Status {
				case "succeeded":
					last.Tone = "ok"
				case "failed", "interrupted":
					last.Tone = "bad"
				}
				v.Figures = append(v.Figures, last)
			} else {
				v.Figures = append(v.Figures, Figure{Label: "Last invoice run", Kind: FigureText, Text: "none yet", Link: "/admin/billing/runs"})
			}
			return v, nil
		}},
	}
}

// SupportWidgets are support's cards: the active tickets by priority, SLA
// breaches and tickets at risk, and the tickets opened per week.
func SupportWidgets(s *support.Service) []Widget {
	roles := []string{policies.RoleSupport}
	const section = "Support"
	figures := memo(func(ctx context.Context) (*support.DeskFigures, error) { return s.DeskFigures(ctx, 12) })
	return []Widget{
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			c := &templates.ChartData{Title: "Open tickets by priority", Kind: "hbars", LabelHeader: "Priority",
				Series: []templates.ChartSeries{{Name: "Tickets"}}}
			var total int64
			for _, p := range support.Priorities {
				n := f.ByPriority[p]
				total += n
				c.Labels = append(c.Labels, string(p))
				c.Links = append(c.Links, withQuery("/admin/tickets", "priority", string(p)))
				c.Series[0].Values = append(c.Series[0].Values, decimal.NewFromInt(n))
			}
			return WidgetValue{Title: "Open tickets", Chart: c, Figures: []Figure{
				count("Open tickets", total, "/admin/tickets", ""),
				count("P1 – production down", f.ByPriority[support.P1], withQuery("/admin/tickets", "priority", string(support.P1)), "bad"),
			}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			breaching := withQuery("/admin/tickets", "view", support.ViewBreaching)
			return WidgetValue{Title: "Service levels", Note: "At risk: past the warning mark of a response or resolution target, not yet due.",
				Figures: []Figure{count("SLA breaches", f.Breached, breaching, "bad"), count("At risk", f.AtRisk, breaching, "warn")}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			c := &templates.ChartData{Title: "Tickets opened per week", Kind: "bars", LabelKind: "week", LabelHeader: "Week",
				Series: []templates.ChartSeries{{Name: "Tickets opened"}}}
			var ns []int64
			for _, w := range f.Weeks {
				c.Labels = append(c.Labels, w.Week)
				c.Links = append(c.Links, withQuery("/admin/tickets", "view", support.ViewAll))
				ns = append(ns, w.N)
			}
			c.Series[0].Values = decs(ns...)
			return WidgetValue{Title: "Tickets per week", Wide: true, Chart: c}, nil
		}},
	}
}

// SystemWidgets are the administrators' (and auditors') cards: failing
// jobs, the e-mail outbox, the audit chain's latest verification and the
// staff users by role.
func SystemWidgets(j *jobs.Scheduler, st *staff.Service) []Widget {
	roles := []string{policies.RoleAdmin, policies.RoleAuditor}
	const section = "System"
	figures := memo(j.SystemFigures)
	return []Widget{
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			failing := count("Failing jobs", int64(len(f.FailingJobs)), "/admin/jobs", "bad")
			if len(f.FailingJobs) == 1 {
				failing.Link = "/admin/jobs/" + url.PathEscape(f.FailingJobs[0].Name)
			}
			var names []string
			for _, jb := range f.FailingJobs {
				names = append(names, jb.Name)
			}
			failing.Detail = strings.Join(names, ", ")
			return WidgetValue{Title: "Jobs and e-mail", Figures: []Figure{failing,
				count("E-mails failed", f.OutboxFailed, withQuery("/admin/outbox", "status", jobs.EmailFailed), "bad"),
				count("E-mails waiting", f.OutboxPending, withQuery("/admin/outbox", "status", jobs.EmailPending), ""),
			}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			f, err := figures(ctx)
			if err != nil {
				return WidgetValue{}, err
			}
			chain := Figure{Label: "Audit chain", Kind: FigureText, Text: "not checked yet", Link: "/admin/jobs/" + jobs.AuditVerifyJob}
			if r := f.AuditCheck; r != nil {
				chain.DetailAt = r.FinishedAt
				switch r.Outcome {
				case jobs.Succeeded:
					chain.Text, chain.Tone = "verified", "ok"
				case jobs.Failed:
					chain.Text, chain.Tone = "broken", "bad"
				case jobs.Running:
					chain.Text = "being checked"
				}
			}
			return WidgetValue{Title: "Audit trail", Note: "The latest daily verification of the audit trail's hash chain.",
				Figures: []Figure{chain}}, nil
		}},
		{Roles: roles, Section: section, Load: func(ctx context.Context) (WidgetValue, error) {
			byRole, total, err := st.CountByRole(ctx, policies.StaffRoles)
			if err != nil {
				return WidgetValue{}, err
			}
			c := &templates.ChartData{Title: "Staff users by role", Kind: "hbars", LabelKind: "text", LabelHeader: "Role",
				Series: []templates.ChartSeries{{Name: "Active users"}}}
			for _, r := range byRole {
				c.Labels = append(c.Labels, policies.RoleLabel(r.Role))
				c.Links = append(c.Links, withQuery("/admin/users", "role", r.Role))
				c.Series[0].Values = append(c.Series[0].Values, decimal.NewFromInt(r.N))
			}
			return WidgetValue{Title: "Staff users", Chart: c, Figures: []Figure{count("Active users", total, "/admin/users", "")}}, nil
		}},
	}
}
