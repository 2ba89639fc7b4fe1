package portal

import (
	"context"

	"cardata/admin/support"
	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/templates"
)

// homeDash is the portal home's dashboard: the signed-in provider's own
// figures only (every query takes the provider from the session), each a
// link to the portal page that explains it. Figures a user's role may not
// open (invoices for a developer) are left out by the page.
type homeDash struct {
	Billing *billing.ProviderFigures
	Tickets support.ProviderCounts
	Hooks   webhooks.Health
	// ShowInvoices is whether the user may open the invoices.
	ShowInvoices bool
	// UsageFigures head the usage card (its ladder follows them); Cards
	// are the cards beside it.
	UsageFigures []templates.Figure
	Cards        []homeCard
}

// homeCard is a card of figures (drawn by the partial dash-card).
type homeCard struct {
	Title   string
	Figures []templates.Figure
	Chart   *templates.ChartData
	Wide    bool
	Note    string
}

func count(label string, n int64, link, tone string) templates.Figure {
	f := templates.Figure{Label: label, N: n, Link: link}
	if n > 0 {
		f.Tone = tone
	}
	return f
}

func (h *Handlers) homeDash(ctx context.Context, me *policies.Principal, canInvoices bool) (*homeDash, error) {
	if h.Billing == nil || h.Support == nil || h.Webhooks == nil {
		return nil, nil
	}
	d := &homeDash{ShowInvoices: canInvoices}
	var err error
	if d.Billing, err = h.Billing.ProviderFigures(ctx, me.ProviderID); err != nil {
		return nil, err
	}
	if d.Tickets, err = h.Support.ProviderTicketCounts(ctx); err != nil {
		return nil, err
	}
	if d.Hooks, err = h.Webhooks.HealthOf(ctx, me.ProviderID); err != nil {
		return nil, err
	}
	b := d.Billing
	d.UsageFigures = []templates.Figure{
		count("Billed deliveries", b.Count, "/portal/deliveries", ""),
		{Label: "Amount so far", Kind: templates.FigureMoney, Amount: b.Usage.Total, Link: "/portal/deliveries"},
	}
	if b.ToNext > 0 {
		d.UsageFigures = append(d.UsageFigures, count("Until the next price tier", b.ToNext, "/price-list", ""))
	}
	if canInvoices {
		d.Cards = append(d.Cards, homeCard{Title: "Invoices", Figures: []templates.Figure{
			count("Open invoices", b.OpenCount, "/portal/invoices", ""),
			{Label: "Open amount", Kind: templates.FigureMoney, Amount: b.Open, Link: "/portal/invoices"},
			count("Overdue", b.OverdueCount, "/portal/invoices", "bad"),
		}})
	}
	d.Cards = append(d.Cards, homeCard{Title: "Support tickets", Figures: []templates.Figure{
		count("Open tickets", d.Tickets.Active, "/portal/tickets", ""),
		count("Waiting for your answer", d.Tickets.Waiting, "/portal/tickets?status="+string(support.StatusWaiting), "warn"),
	}}, homeCard{Title: "Webhooks", Figures: []templates.Figure{
		count("Endpoints", d.Hooks.Endpoints, "/portal/webhooks", ""),
		count("Failing", d.Hooks.Failing, "/portal/webhooks", "bad"),
		count("Dead letters", d.Hooks.Dead, "/portal/webhooks", "bad"),
	}})
	return d, nil
}

// dashboardStatuses are the provider statuses whose home shows the figures
// (an applicant has no usage, invoices or webhooks yet).
func dashboardStatus(s onboarding.Status) bool {
	return s == onboarding.StatusActive || s == onboarding.StatusSuspended || s == onboarding.StatusTerminated
}
