package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/billing"
	"cardata/policies"
)

// The demo desk has tickets in every state and priority for several
// providers, some breaching and escalated, and the insurer's stale-data
// ticket of the MISSION story resolved within its targets with 30 billable
// minutes for billing. Running it again changes nothing.
func TestSupportDemoIsIdempotentAndTellsTheStory(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	var out bytes.Buffer
	if err := demo.SupportOnly(tt.Ctx, tt.App.Services, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	supMustContain(t, out.String(), "support tickets", demo.TeamLead)
	type row struct {
		Status, Priority string
		N                int
	}
	var byStatus, byPriority []row
	tt.DB.Raw(`SELECT status, count(*) AS n FROM support_tickets GROUP BY status ORDER BY status`).Scan(&byStatus)
	tt.DB.Raw(`SELECT priority, count(*) AS n FROM support_tickets GROUP BY priority ORDER BY priority`).Scan(&byPriority)
	var statuses, priorities []string
	for _, r := range byStatus {
		statuses = append(statuses, r.Status)
	}
	for _, r := range byPriority {
		priorities = append(priorities, r.Priority)
	}
	if strings.Join(statuses, ",") != "closed,new,open,resolved,waiting_on_provider" || strings.Join(priorities, ",") != "P1,P2,P3,P4" {
		t.Fatalf("statuses %v priorities %v", statuses, priorities)
	}
	var providers, breaches, warnings, merged int
	tt.DB.Raw(`SELECT count(DISTINCT provider_id) FROM support_tickets`).Scan(&providers)
	tt.DB.Raw(`SELECT count(*) FROM support_sla_alerts WHERE level = 'breach'`).Scan(&breaches)
	tt.DB.Raw(`SELECT count(*) FROM support_sla_alerts WHERE level = 'warning'`).Scan(&warnings)
	tt.DB.Raw(`SELECT count(*) FROM support_tickets WHERE merged_into_id IS NOT NULL`).Scan(&merged)
	if providers < 6 || breaches < 2 || warnings < 3 || merged != 1 {
		t.Fatalf("providers %d breaches %d warnings %d merged %d", providers, breaches, warnings, merged)
	}

	// The insurer's P2 stale-data ticket: answered and resolved in time, 30 billable minutes.
	agent, err := tt.App.Staff.FindByEmail(tt.Ctx, "support@demo.local")
	if err != nil {
		t.Fatal(err)
	}
	staffCtx := policies.WithPrincipal(tt.Ctx, agent.Principal(0))
	svc := supportFor(tt, nil)
	list, _, err := svc.ListTickets(staffCtx, support.Filter{View: support.ViewAll, Query: "Stale data"})
	if err != nil || len(list) != 1 {
		t.Fatalf("stale data ticket: %+v %v", list, err)
	}
	story := list[0]
	if story.ProviderName != "Demo Insurance AG" || story.Priority != support.P2 || story.Status != support.StatusResolved ||
		story.SLA.FirstMet == nil || !*story.SLA.FirstMet || story.SLA.ResultMet == nil || !*story.SLA.ResultMet {
		t.Fatalf("story ticket %+v", story)
	}
	items, err := (&billing.Service{DB: tt.DB}).SupportItemsForTicket(tt.Ctx, story.ID)
	if err != nil || len(items) != 2 || items[0].Kind != billing.SupportCase || items[1].Minutes != 30 {
		t.Fatalf("story billing items %+v %v", items, err)
	}
	breaching, _, _ := svc.ListTickets(staffCtx, support.Filter{View: support.ViewBreaching})
	if len(breaching) < 2 {
		t.Fatalf("%d breaching tickets", len(breaching))
	}

	count := func(q string) (n int) { tt.DB.Raw(q).Scan(&n); return }
	tickets, emails := count(`SELECT count(*) FROM support_tickets`), count(`SELECT count(*) FROM email_outbox`)
	if err := demo.SupportOnly(tt.Ctx, tt.App.Services, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if t2, e2 := count(`SELECT count(*) FROM support_tickets`), count(`SELECT count(*) FROM email_outbox`); t2 != tickets || e2 != emails {
		t.Fatalf("second run: tickets %d -> %d, e-mails %d -> %d", tickets, t2, emails, e2)
	}
	// The team lead signs in with the demo password and sees the queue.
	c := tt.Client(t)
	if res := c.PostForm("/admin/login", url.Values{"email": {demo.TeamLead}, "password": {demo.Password}}); res.Status != http.StatusSeeOther {
		t.Fatalf("team lead sign-in: %d", res.Status)
	}
	supMustContain(t, c.Get("/admin/tickets?view=breaching").Body, "escalated", "Token endpoint returns 503")
}
