package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"cardata/admin/staff"
	"cardata/admin/support"
	"cardata/app"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/errs"
)

// TeamLead is the demo support team lead (password Password).
const TeamLead = "lead@demo.local"

// demoDesk replays a ticket's history at the times it happened: the
// service's clock is set to each moment in turn.
type demoDesk struct {
	svc      *support.Service
	clock    *support.Clock
	now      time.Time // the real present
	opened   time.Time
	at       time.Time
	provider context.Context
	agents   map[string]context.Context // by e-mail
	lead     context.Context
	ticket   *support.Ticket
	err      error
}

// businessAgo is the moment d of business time before now.
func (d *demoDesk) businessAgo(dur time.Duration) time.Time {
	lo, hi := d.now.Add(-60*24*time.Hour), d.now
	for hi.Sub(lo) > time.Minute {
		mid := lo.Add(hi.Sub(lo) / 2)
		if d.clock.Between(mid, d.now) >= dur {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo.Truncate(time.Minute)
}

// after moves the clock to business time off after the opening.
func (d *demoDesk) after(off time.Duration) *demoDesk {
	d.at = d.clock.Add(d.opened, off)
	if d.at.After(d.now) {
		d.at = d.now
	}
	return d
}

func (d *demoDesk) do(f func() error) *demoDesk {
	if d.err == nil {
		d.err = f()
	}
	return d
}

func (d *demoDesk) id() int64 { return d.ticket.ID }

func (d *demoDesk) assign(agent string) *demoDesk {
	return d.do(func() error {
		_, err := d.svc.Assign(d.agents[agent], d.id(), policies.PrincipalFrom(d.agents[agent]).ID)
		return err
	})
}

func (d *demoDesk) reply(agent, body string) *demoDesk {
	return d.do(func() error {
		_, err := d.svc.Reply(d.agents[agent], d.id(), support.NewMessage{Body: body})
		return err
	})
}

func (d *demoDesk) note(agent, body string) *demoDesk {
	return d.do(func() error {
		_, err := d.svc.Reply(d.agents[agent], d.id(), support.NewMessage{Body: body, Internal: true})
		return err
	})
}

func (d *demoDesk) answer(body string) *demoDesk {
	return d.do(func() error { _, err := d.svc.Reply(d.provider, d.id(), support.NewMessage{Body: body}); return err })
}

func (d *demoDesk) act(agent string, a support.Action, msg string) *demoDesk {
	return d.do(func() error {
		_, err := d.svc.Transition(d.agents[agent], d.id(), a, support.TransitionInput{Message: msg})
		return err
	})
}

func (d *demoDesk) reopen(msg string) *demoDesk {
	return d.do(func() error { _, err := d.svc.Reopen(d.provider, d.id(), msg); return err })
}

func (d *demoDesk) book(agent string, minutes int, billable bool, note string) *demoDesk {
	return d.do(func() error {
		worked := d.at.In(d.clock.Location())
		_, err := d.svc.BookTime(d.agents[agent], d.id(), support.NewTimeEntry{Minutes: minutes, Billable: billable, Note: note, WorkedOn: worked})
		return err
	})
}

func (d *demoDesk) merge(into string) *demoDesk {
	return d.do(func() error {
		var id int64
		if err := d.svc.DB.Table("support_tickets").Select("id").Where("subject = ?", into).Scan(&id).Error; err != nil || id == 0 {
			return fmt.Errorf("merge target %q missing: %v", into, err)
		}
		_, err := d.svc.Merge(d.agents["support@demo.local"], d.id(), id)
		return err
	})
}

// demoTicket is one ticket of the demo desk and what happened to it.
type demoTicket struct {
	provider, subject, description string
	category                       support.Category
	priority                       support.Priority
	ago                            time.Duration // business time since it was opened
	vin                            bool          // link a demo vehicle
	story                          func(d *demoDesk)
}

const sam, tina = "support@demo.local", TeamLead

var demoTickets = []demoTicket{
	// MISSION step 7: the insurer's stale-data ticket, answered and resolved
	// within the P2 targets, with 30 billable minutes for the next invoice.
	{provider: "Demo Insurance AG", subject: "Stale data: mileage of a customer's car is three days old", category: support.CategoryDataQuality,
		priority: support.P2, ago: 14 * time.Hour, vin: true,
		description: "Since Monday the telematicData endpoint returns a mileage read three days ago for one of our customers' cars, although the customer drives daily. Other cars are current.",
		story: func(d *demoDesk) {
			d.after(20 * time.Minute).assign(sam)
			d.after(45*time.Minute).reply(sam, "Thank you. We see the same reading in our backend and are checking the vehicle's transmissions.")
			d.after(2*time.Hour).note(sam, "Ingest shows the car's SIM on a roaming network without data since Monday; connected-service subscription is active. Not a provider problem.")
			d.after(5*time.Hour).book(sam, 30, true, "analysis of ingest and subscription")
			d.after(5*time.Hour).act(sam, support.ActionResolve, "The car has not transmitted since Monday (no mobile data while roaming). The API correctly returns the last values read, with their reading time. Values will be current again once the car transmits.")
		}},
	{provider: "Nordlys Forsikring AS", subject: "Token endpoint returns 503 for all our clients", category: support.CategoryAPIData,
		priority: support.P1, ago: 3 * time.Hour,
		description: "POST /oauth/token fails with 503 for both our production and staging clients since this morning. Production is down."},
	{provider: "Garage Dupont SAS", subject: "How do we add a second developer?", category: support.CategoryOnboarding,
		priority: support.P4, ago: 1 * time.Hour,
		description: "Our new developer needs access to the API clients page."},
	{provider: "Polska Flota Sp. z o.o.", subject: "Push notifications arrive twice", category: support.CategoryAPIData,
		priority: support.P2, ago: 25 * time.Hour,
		description: "Every position update reaches our webhook twice, with the same webhook-id.",
		story: func(d *demoDesk) {
			d.after(30 * time.Minute).assign(tina)
			d.after(1*time.Hour).reply(tina, "Deliveries are at least once; the webhook-id is the same so you can drop repeats. We check why your endpoint gets retries.")
			d.after(3*time.Hour).note(tina, "Their endpoint answers after 11 s; our timeout is 10 s, so we retry. Ask them to answer first and process later.")
			d.after(3*time.Hour).book(tina, 25, true, "delivery log analysis")
		}},
	{provider: "Brussels Roadside SA", subject: "Position missing on automatic service call events", category: support.CategoryDataQuality,
		priority: support.P3, ago: 12 * time.Hour,
		description: "The service-call event arrives without a position for some cars.",
		story: func(d *demoDesk) {
			d.after(2 * time.Hour).assign(sam)
			d.after(3*time.Hour).act(sam, support.ActionWait, "Which container version do you use, and could you send two VINs with a missing position?")
			d.after(3*time.Hour).book(sam, 15, true, "first analysis")
		}},
	{provider: "Stockholm Bilservice AB", subject: "Please send invoices to a second address", category: support.CategoryBilling,
		priority: support.P4, ago: 30 * time.Hour,
		description: "Our accounting wants a copy of every invoice at ekonomi@stockholm-bilservice.example.",
		story: func(d *demoDesk) {
			d.after(1 * time.Hour).assign(sam)
			d.after(2*time.Hour).book(sam, 10, false, "billing address change")
			d.after(2*time.Hour).act(sam, support.ActionResolve, "Done: invoices now also go to the second address from the next run on.")
		}},
	{provider: "Demo Insurance AG", subject: "Logo for the partner directory", category: support.CategoryOther,
		priority: support.P4, ago: 90 * time.Hour,
		description: "Where can we upload our logo?",
		story: func(d *demoDesk) {
			d.after(3 * time.Hour).assign(sam)
			d.after(4*time.Hour).act(sam, support.ActionResolve, "There is no partner directory yet; we will tell you when it opens.")
		}},
	{provider: "Dublin Motor Insurance DAC", subject: "Rate limit too low for our nightly sync", category: support.CategoryAPIData,
		priority: support.P2, ago: 6 * time.Hour,
		description: "Our nightly sync of 40,000 vehicles gets 429 after a few minutes.",
		story: func(d *demoDesk) {
			d.after(40 * time.Minute).assign(tina)
			d.after(1*time.Hour).reply(tina, "The limit is the same for every provider (non-discriminatory access). Spreading the sync over the night keeps you under it; we send you the numbers.")
		}},
	{provider: "Dublin Motor Insurance DAC", subject: "Nightly sync: HTTP 429 Too Many Requests", category: support.CategoryAPIData,
		priority: support.P3, ago: 5 * time.Hour,
		description: "Same as our other ticket, opened by our second developer.",
		story: func(d *demoDesk) {
			d.after(30 * time.Minute).merge("Rate limit too low for our nightly sync")
		}},
	{provider: "Alpen Versicherung AG", subject: "Which register extract do you need?", category: support.CategoryOnboarding,
		priority: support.P3, ago: 4 * time.Hour,
		description: "Is an extract from the Firmenbuch older than three months accepted?",
		story: func(d *demoDesk) {
			d.after(1 * time.Hour).assign(tina)
			d.after(1*time.Hour).reply(tina, "It should not be older than three months; the partner manager reviews it with your application.")
		}},
	{provider: "Vaduzer Versicherung AG", subject: "Capabilities missing for a MINI registered in CH", category: support.CategoryAPIData,
		priority: support.P3, ago: 20 * time.Hour,
		description: "The capability service returns no keys for a MINI registered in Switzerland.",
		story: func(d *demoDesk) {
			d.after(1 * time.Hour).assign(sam)
			d.after(2*time.Hour).act(sam, support.ActionResolve, "CarData is available for MINI customers in the EU only; a MINI registered in Switzerland is not eligible.")
			d.after(12 * time.Hour).reopen("Our customer's MINI is registered in Liechtenstein, not Switzerland. Please check again.")
		}},
	{provider: "Bucharest Service SRL", subject: "Mileage values jump back by 1,000 km", category: support.CategoryDataQuality,
		priority: support.P1, ago: 12 * time.Hour,
		description: "Several cars report a mileage 1,000 km below the previous value; our service reminders fire wrongly.",
		story: func(d *demoDesk) {
			d.after(20 * time.Minute).assign(sam)
			d.after(30*time.Minute).reply(sam, "We are on it and will update you every two hours.")
			d.after(4*time.Hour).note(sam, "Unit conversion bug in gateway eu-2 for cars reporting miles; fix deploying.")
			d.after(4*time.Hour).book(sam, 90, true, "incident analysis")
		}},
}

// demoSupport fills the support desk: a team lead, tickets in every state
// and priority for several providers, some of them breaching, the MISSION
// story's stale-data ticket, and one run of the escalation and auto-close
// jobs. Tickets that exist (by provider and subject) are left alone.
func (a loader) demoSupport(ctx context.Context, out io.Writer) error {
	lead, err := a.Staff.FindByEmail(ctx, TeamLead)
	if errs.KindOf(err) == errs.NotFound {
		lead, err = a.Staff.Create(ctx, staff.NewUser{Email: TeamLead, Name: "Tina Teamlead", Roles: []string{policies.RoleSupport}, Password: Password})
		if err == nil {
			fmt.Fprintf(out, "demo: staff user %s (support team lead)\n", TeamLead)
		}
	}
	if err != nil {
		return err
	}
	agent, err := a.Staff.FindByEmail(ctx, "support@demo.local")
	if err != nil {
		return fmt.Errorf("the demo support agent is missing: %w", err)
	}
	// The app's desk on the demo's own clock (set below), which moves
	// through each ticket's story.
	desk := *a.Support
	svc := &desk
	leadCtx := policies.WithPrincipal(ctx, lead.Principal(0))
	if st, err := svc.FindSettings(ctx); err != nil {
		return err
	} else if st.TeamLeadID == nil {
		// an administrator's choice (a plain support agent may not name the lead)
		if err := svc.SetTeamLead(policies.WithPrincipal(ctx, policies.System("demo")), &lead.ID); err != nil {
			return err
		}
	}
	d := &demoDesk{svc: svc, clock: svc.Clock, now: time.Now().UTC(),
		agents: map[string]context.Context{sam: policies.WithPrincipal(ctx, agent.Principal(0)), tina: leadCtx}}
	svc.Now = func() time.Time { return d.at }
	var vin string
	if err := a.DB.WithContext(ctx).Raw(`SELECT vin FROM vehicles ORDER BY vin LIMIT 1`).Scan(&vin).Error; err != nil {
		return err
	}
	created := 0
	for _, dt := range demoTickets {
		var providerID, exists int64
		if err := a.DB.WithContext(ctx).Raw(`SELECT id FROM providers WHERE legal_name = ?`, dt.provider).Scan(&providerID).Error; err != nil {
			return err
		}
		if providerID == 0 {
			continue // the onboarding demo did not create it
		}
		if err := a.DB.WithContext(ctx).Raw(`SELECT count(*) FROM support_tickets WHERE provider_id = ? AND subject = ?`, providerID, dt.subject).
			Scan(&exists).Error; err != nil {
			return err
		}
		if exists > 0 {
			continue
		}
		var user onboarding.ProviderUser
		if err := a.DB.WithContext(ctx).Where("provider_id = ? AND role = ?", providerID, onboarding.RoleProviderAdmin).Order("id").Take(&user).Error; err != nil {
			return fmt.Errorf("%s has no administrator: %w", dt.provider, err)
		}
		d.provider = policies.WithPrincipal(ctx, user.Principal(0))
		d.opened = d.businessAgo(dt.ago)
		d.at, d.err = d.opened, nil
		in := support.NewTicket{Subject: dt.subject, Description: dt.description, Category: dt.category, Priority: dt.priority, Channel: support.ChannelPortal}
		if dt.vin && vin != "" {
			in.Links = []support.LinkInput{{Kind: support.LinkVIN, Ref: vin}}
		}
		if d.ticket, err = svc.OpenTicket(d.provider, in); err != nil {
			return fmt.Errorf("%s: %w", dt.subject, err)
		}
		if dt.story != nil {
			dt.story(d)
		}
		if d.err != nil {
			return fmt.Errorf("%s: %w", dt.subject, d.err)
		}
		created++
	}
	// The jobs run as they would now: breaching tickets are escalated once,
	// tickets resolved a week ago close.
	d.at = d.now
	closed, err := svc.CloseResolved(ctx)
	if err != nil {
		return err
	}
	esc, err := svc.CheckSLAs(ctx)
	if err != nil {
		return err
	}
	if created > 0 || closed > 0 || esc.Emails > 0 {
		fmt.Fprintf(out, "demo: %d support tickets, %d closed, %d SLA warnings and %d escalations\n", created, closed, esc.Warnings, esc.Breaches)
	}
	return nil
}

// SupportOnly runs the demo steps the support desk's demo builds on
// (staff and providers) and then its own, without the slow vehicle fleet.
func SupportOnly(ctx context.Context, s *app.Services, out io.Writer) error {
	a := loader{s}
	for _, step := range []func(context.Context, io.Writer) error{a.demoStaff, a.demoOnboarding, a.demoSupport} {
		if err := step(ctx, out); err != nil {
			return err
		}
	}
	return nil
}
