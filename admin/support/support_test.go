package support_test

import (
	"bytes"
	"strings"
	"testing"

	"cardata/admin/support"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies/audit"
)

// The life cycle in one table: every allowed move works, every other one is
// refused with a stable code, and each change is audited.
func TestLifecycleAndInvalidTransitions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam, user := f.staff(f.agent), f.portal(f.a)
	tk := f.mustOpen(t, f.a, support.P3, support.CategoryAPIData, "Token endpoint answers 401")
	if tk.Status != support.StatusNew || tk.Number() != "T-1001" || tk.ContactEmail != f.a.Admin.Email || tk.Channel != "portal" {
		t.Fatalf("opened %+v", tk)
	}
	id := tk.ID

	// Nothing but assignment moves a new ticket.
	for _, a := range []support.Action{support.ActionWait, support.ActionResolve, support.ActionClose, support.ActionResume} {
		_, err := f.svc.Transition(sam, id, a, support.TransitionInput{Message: "x"})
		wantCode(t, err, "invalid_transition")
	}
	_, err := f.svc.Reopen(user, id, "again")
	wantCode(t, err, "invalid_transition")
	// Providers cannot take staff actions, not even through the service.
	_, err = f.svc.Transition(user, id, support.ActionResolve, support.TransitionInput{Message: "done"})
	wantCode(t, err, "staff_only")
	_, err = f.svc.Assign(user, id, f.agent.ID)
	wantCode(t, err, "staff_only")

	f.set("2026-03-02 09:30")
	tk = must[*support.Ticket](t)(f.svc.Assign(sam, id, f.agent.ID))
	if tk.Status != support.StatusOpen || tk.AssigneeName != "Sam Support" {
		t.Fatalf("after assign %s %q", tk.Status, tk.AssigneeName)
	}
	// Waiting needs the question for the provider.
	_, err = f.svc.Transition(sam, id, support.ActionWait, support.TransitionInput{})
	wantCode(t, err, "message_required")
	f.set("2026-03-02 10:00")
	tk = must[*support.Ticket](t)(f.svc.Transition(sam, id, support.ActionWait, support.TransitionInput{Message: "Which client id do you use?"}))
	if tk.Status != support.StatusWaiting || tk.FirstResponseAt == nil || tk.SLARunningSince != nil {
		t.Fatalf("waiting: %+v", tk)
	}
	// The provider's answer puts it back to open.
	f.set("2026-03-03 11:00")
	must[*support.Message](t)(f.svc.Reply(user, id, support.NewMessage{Body: "client id demo-insurer"}))
	tk = must[*support.Ticket](t)(f.svc.FindTicket(sam, id))
	if tk.Status != support.StatusOpen {
		t.Fatalf("after provider reply: %s", tk.Status)
	}
	_, err = f.svc.Transition(sam, id, support.ActionResolve, support.TransitionInput{})
	wantCode(t, err, "message_required")
	f.set("2026-03-03 12:00")
	tk = must[*support.Ticket](t)(f.svc.Transition(sam, id, support.ActionResolve, support.TransitionInput{Message: "The secret was rotated; use the new one."}))
	if tk.Status != support.StatusResolved || tk.ResolvedAt == nil {
		t.Fatalf("resolved: %+v", tk)
	}
	// A resolved ticket takes no replies from the provider: it reopens it.
	_, err = f.svc.Reply(user, id, support.NewMessage{Body: "still broken"})
	wantCode(t, err, "ticket_resolved")
	_, err = f.svc.Reopen(user, id, "")
	wantCode(t, err, "message_required")
	f.set("2026-03-05 09:00")
	tk = must[*support.Ticket](t)(f.svc.Reopen(user, id, "Still 401 with the new secret."))
	if tk.Status != support.StatusOpen || tk.ReopenCount != 1 || tk.ResolvedAt != nil {
		t.Fatalf("reopened: %+v", tk)
	}
	f.set("2026-03-05 10:00")
	must[*support.Ticket](t)(f.svc.Transition(sam, id, support.ActionResolve, support.TransitionInput{Message: "Fixed on our side."}))

	// Auto-close after 7 days, not before.
	f.set("2026-03-12 09:59")
	if n := must[int](t)(f.svc.CloseResolved(f.sys)); n != 0 {
		t.Fatalf("closed %d before 7 days", n)
	}
	f.set("2026-03-12 10:00")
	if n := must[int](t)(f.svc.CloseResolved(f.sys)); n != 1 {
		t.Fatalf("closed %d, want 1", n)
	}
	if n := must[int](t)(f.svc.CloseResolved(f.sys)); n != 0 {
		t.Fatalf("closed again: %d", n)
	}
	tk = must[*support.Ticket](t)(f.svc.FindTicket(sam, id))
	if tk.Status != support.StatusClosed || tk.ClosedAt == nil {
		t.Fatalf("closed: %+v", tk)
	}
	_, err = f.svc.Transition(sam, id, support.ActionClose, support.TransitionInput{})
	wantCode(t, err, "invalid_transition")
	// Closed, but within 14 days of the resolution: the provider may reopen.
	f.set("2026-03-19 09:59")
	if !f.svc.CanReopen(tk) {
		t.Fatal("cannot reopen within 14 days")
	}
	tk = must[*support.Ticket](t)(f.svc.Reopen(user, id, "It came back."))
	if tk.Status != support.StatusOpen || tk.ClosedAt != nil || tk.ReopenCount != 2 {
		t.Fatalf("reopened from closed: %+v", tk)
	}
	f.set("2026-03-19 10:30")
	must[*support.Ticket](t)(f.svc.Transition(sam, id, support.ActionResolve, support.TransitionInput{Message: "Fixed again."}))
	// 14 days after this resolution the window has passed.
	f.set("2026-04-02 10:31")
	_, err = f.svc.Reopen(user, id, "and again")
	wantCode(t, err, "reopen_window_passed")

	entries, err := audit.ForObject(f.sys, f.db, "support_ticket", "1001")
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	joined := strings.Join(actions, " ")
	for _, a := range []string{"support_ticket.create", "support_ticket.open ", "support_ticket.wait", "support_ticket.provider_reply",
		"support_ticket.resolve", "support_ticket.reopen", "support_ticket.close", "support_ticket.message"} {
		if !strings.Contains(joined+" ", a) {
			t.Errorf("audit lacks %s: %s", a, joined)
		}
	}
}

// The escalation job warns at 80 % and escalates at the breach, once per
// ticket, clock and level, to the assignee and the team lead.
func TestEscalationJobAlertsOnceAtWarningAndBreach(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.set("2026-03-02 09:00") // Monday
	tk := f.mustOpen(t, f.a, support.P1, support.CategoryAPIData, "Production down: every call 500")
	// The P1 opening itself alerts the team lead.
	if got := f.emailsOfKind(t, "support.p1_opened"); len(got) != 1 || got[0].ToAddr != "lena@test.local" {
		t.Fatalf("p1 alert: %+v", got)
	}
	run := func(now string) support.Escalations {
		f.set(now)
		return must[support.Escalations](t)(f.svc.CheckSLAs(f.sys))
	}
	if r := run("2026-03-02 09:47"); r.Warnings+r.Breaches != 0 {
		t.Fatalf("before 80 %%: %+v", r)
	}
	// 80 % of the 1 h first-response target: 09:48. Unassigned: the lead only.
	if r := run("2026-03-02 09:48"); r.Warnings != 1 || r.Emails != 1 {
		t.Fatalf("warning run: %+v", r)
	}
	if r := run("2026-03-02 09:55"); r.Warnings+r.Breaches+r.Emails != 0 {
		t.Fatalf("second run sent again: %+v", r)
	}
	must[*support.Ticket](t)(f.svc.Assign(f.staff(f.agent), tk.ID, f.agent.ID))
	if r := run("2026-03-02 10:01"); r.Breaches != 1 || r.Emails != 2 {
		t.Fatalf("breach run: %+v", r)
	}
	if r := run("2026-03-02 10:06"); r.Emails != 0 {
		t.Fatalf("breach sent twice: %+v", r)
	}
	warn, breach := f.emailsOfKind(t, "support.sla_warning"), f.emailsOfKind(t, "support.sla_breach")
	if len(warn) != 1 || warn[0].ToAddr != "lena@test.local" {
		t.Fatalf("warnings %+v", warn)
	}
	to := map[string]bool{}
	for _, e := range breach {
		to[e.ToAddr] = true
		if !strings.Contains(e.Subject, "SLA BREACHED (first response)") {
			t.Fatalf("subject %q", e.Subject)
		}
	}
	if len(breach) != 2 || !to["sam@test.local"] || !to["lena@test.local"] {
		t.Fatalf("breach e-mails %+v", breach)
	}
	// The queue flags it and lists it as breaching.
	list, _, err := f.svc.ListTickets(f.staff(f.agent), support.Filter{View: support.ViewBreaching})
	if err != nil || len(list) != 1 || list[0].Alert != "breach" || list[0].SLA.Level != support.LevelBreach {
		t.Fatalf("breaching view: %+v %v", list, err)
	}
	// A reply answers it; the resolution clock (10 h) warns at 8 h: 17:00.
	f.set("2026-03-02 10:10")
	must[*support.Message](t)(f.svc.Reply(f.staff(f.agent), tk.ID, support.NewMessage{Body: "We are on it."}))
	if r := run("2026-03-02 16:59"); r.Emails != 0 {
		t.Fatalf("early resolution warning: %+v", r)
	}
	if r := run("2026-03-02 17:00"); r.Warnings != 1 || r.Emails != 2 {
		t.Fatalf("resolution warning: %+v", r)
	}
	// While waiting on the provider the clock is paused: no breach, whatever the time.
	must[*support.Ticket](t)(f.svc.Transition(f.staff(f.agent), tk.ID, support.ActionWait, support.TransitionInput{Message: "Which region?"}))
	if r := run("2026-03-04 17:00"); r.Checked != 0 || r.Emails != 0 {
		t.Fatalf("paused ticket escalated: %+v", r)
	}
}

// Internal notes and their files never reach the provider: not in its
// timeline, not as a download, not in any e-mail.
func TestInternalNotesNeverReachTheProvider(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam, user := f.staff(f.agent), f.portal(f.a)
	tk := f.mustOpen(t, f.a, support.P2, support.CategoryDataQuality, "Mileage is three days old")
	must[*support.Message](t)(f.svc.Reply(sam, tk.ID, support.NewMessage{Body: "We are checking the ingest for your fleet."}))
	secret := "INTERNAL: gateway eu-3 drops readings, do not tell the provider"
	must[*support.Message](t)(f.svc.Reply(sam, tk.ID, support.NewMessage{Body: secret, Internal: true,
		Attachments: []support.Upload{{Filename: "gateway.log", Data: []byte("2026-03-02 gateway eu-3 dropped 812 readings\n")}}}))
	_, err := f.svc.Reply(user, tk.ID, support.NewMessage{Body: "sneaky", Internal: true})
	wantCode(t, err, "internal_notes_staff_only")

	staffTL := must[[]support.Entry](t)(f.svc.Timeline(sam, tk.ID))
	var noteAttachment int64
	for _, e := range staffTL {
		if e.Message != nil && e.Message.Internal {
			noteAttachment = e.Message.Attachments[0].ID
		}
	}
	if noteAttachment == 0 {
		t.Fatal("staff do not see the note's attachment")
	}
	for _, e := range must[[]support.Entry](t)(f.svc.Timeline(user, tk.ID)) {
		if e.Message != nil && (e.Message.Internal || strings.Contains(e.Message.Body, "INTERNAL")) {
			t.Fatalf("provider sees the internal note: %+v", e.Message)
		}
		if e.Event != nil && e.Event.Internal {
			t.Fatalf("provider sees an internal event: %+v", e.Event)
		}
	}
	_, err = f.svc.FindAttachment(user, tk.ID, noteAttachment)
	wantCode(t, err, "attachment_not_found")
	if a := must[*support.Attachment](t)(f.svc.FindAttachment(sam, tk.ID, noteAttachment)); !a.Internal || a.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("staff attachment %+v", a)
	}
	replies := 0
	for _, e := range f.emails(t) {
		if strings.Contains(e.BodyText, "INTERNAL") || strings.Contains(e.Subject, "INTERNAL") || strings.Contains(e.BodyText, "eu-3") {
			t.Fatalf("an e-mail carries the internal note: %+v", e)
		}
		if e.Kind == "support.reply" {
			replies++
		}
	}
	if replies != 1 {
		t.Fatalf("want exactly the one public reply e-mailed, got %d", replies)
	}
}

// A provider reaches only its own tickets: every read and write on another
// provider's ticket is a 404, and lists hold its own tickets only.
func TestProvidersSeeOnlyTheirOwnTickets(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ta := f.mustOpen(t, f.a, support.P3, support.CategoryBilling, "Invoice question A")
	tb := f.mustOpen(t, f.b, support.P3, support.CategoryBilling, "Invoice question B")
	userB := f.portal(f.b)
	must[*support.Message](t)(f.svc.Reply(f.staff(f.agent), ta.ID, support.NewMessage{Body: "public answer",
		Attachments: []support.Upload{{Filename: "a.pdf", Data: []byte("%PDF-1.4 a")}}}))
	var attID int64
	for _, e := range must[[]support.Entry](t)(f.svc.Timeline(f.staff(f.agent), ta.ID)) {
		if e.Message != nil && len(e.Message.Attachments) > 0 {
			attID = e.Message.Attachments[0].ID
		}
	}
	_, err := f.svc.FindTicket(userB, ta.ID)
	wantCode(t, err, "ticket_not_found")
	_, err = f.svc.Timeline(userB, ta.ID)
	wantCode(t, err, "ticket_not_found")
	_, err = f.svc.Links(userB, ta.ID)
	wantCode(t, err, "ticket_not_found")
	_, err = f.svc.Reply(userB, ta.ID, support.NewMessage{Body: "hi"})
	wantCode(t, err, "ticket_not_found")
	_, err = f.svc.Reopen(userB, ta.ID, "hi")
	wantCode(t, err, "ticket_not_found")
	_, err = f.svc.FindAttachment(userB, ta.ID, attID)
	wantCode(t, err, "attachment_not_found")
	_, err = f.svc.FindAttachment(userB, tb.ID, attID) // own ticket id, other's file
	wantCode(t, err, "attachment_not_found")
	list, total, err := f.svc.ListTickets(userB, support.Filter{View: support.ViewAll, Query: "Invoice"})
	if err != nil || total != 1 || list[0].ID != tb.ID {
		t.Fatalf("B's list: %d %+v %v", total, list, err)
	}
	// A provider principal cannot widen its list with a provider filter.
	list, _, _ = f.svc.ListTickets(userB, support.Filter{ProviderID: f.a.Provider.ID})
	if len(list) != 1 || list[0].ProviderID != f.b.Provider.ID {
		t.Fatalf("provider filter widened B's list: %+v", list)
	}
}

// Billable time reaches billing exactly once: the case fee once per
// ticket, every billable entry once, and after a reopening only the time
// booked anew.
func TestBillableTimeFlowsIntoBillingExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam := f.staff(f.agent)
	bill := &billing.Service{DB: f.db}
	tk := f.mustOpen(t, f.a, support.P2, support.CategoryDataQuality, "Stale mileage")
	if !tk.Billable || tk.BillableSource != "rule" {
		t.Fatalf("data quality is billable by rule: %+v", tk)
	}
	must[*support.Ticket](t)(f.svc.Assign(sam, tk.ID, f.agent.ID))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 30, Billable: true, Note: "ingest analysis"}))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 10, Billable: false, Note: "internal sync"}))
	_, err := f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 0})
	wantCode(t, err, "minutes_invalid")
	if items := must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, tk.ID)); len(items) != 0 {
		t.Fatalf("billed before the resolution: %+v", items)
	}
	f.set("2026-03-02 15:00")
	must[*support.Ticket](t)(f.svc.Transition(sam, tk.ID, support.ActionResolve, support.TransitionInput{Message: "Gateway fixed."}))
	items := must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, tk.ID))
	if len(items) != 2 || items[0].Kind != billing.SupportCase || items[0].Priority != "P2" || items[1].Minutes != 30 || items[1].TicketRef != "T-1001" {
		t.Fatalf("after resolution: %+v", items)
	}
	_, err = f.svc.SetBillable(sam, tk.ID, false, "goodwill")
	wantCode(t, err, "case_already_billed")

	// Reopened: the 30 minutes and the case fee are not billed again; the
	// 15 new minutes are, with the next resolution.
	f.set("2026-03-03 09:00")
	must[*support.Ticket](t)(f.svc.Reopen(f.portal(f.a), tk.ID, "Stale again since this morning."))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 15, Billable: true}))
	if n := len(must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, tk.ID))); n != 2 {
		t.Fatalf("items before the second resolution: %d", n)
	}
	f.set("2026-03-03 11:00")
	must[*support.Ticket](t)(f.svc.Transition(sam, tk.ID, support.ActionResolve, support.TransitionInput{Message: "Fixed for good."}))
	items = must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, tk.ID))
	cases, minutes := 0, 0
	for _, it := range items {
		if it.Kind == billing.SupportCase {
			cases++
		}
		minutes += it.Minutes
	}
	if len(items) != 3 || cases != 1 || minutes != 45 {
		t.Fatalf("after the second resolution: %+v", items)
	}
	// Time booked after the resolution goes to billing at once, once.
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 5, Billable: true, Note: "follow-up call"}))
	if n := len(must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, tk.ID))); n != 4 {
		t.Fatalf("late booking: %d items", n)
	}
	// Billed entries cannot be removed; billing would not know.
	entries, tot, err := f.svc.TimeEntries(sam, tk.ID)
	if err != nil || tot.Minutes != 60 || tot.BillableMinutes != 50 || tot.BilledMinutes != 50 {
		t.Fatalf("totals %+v %v", tot, err)
	}
	wantCode(t, f.svc.DeleteTimeEntry(sam, tk.ID, entries[0].ID), "time_entry_billed")

	// A category that the rule does not bill stays free, whatever time is booked ...
	free := f.mustOpen(t, f.a, support.P3, support.CategoryOnboarding, "How do I add a user?")
	must[*support.Ticket](t)(f.svc.Assign(sam, free.ID, f.agent.ID))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, free.ID, support.NewTimeEntry{Minutes: 20, Billable: true}))
	must[*support.Ticket](t)(f.svc.Transition(sam, free.ID, support.ActionResolve, support.TransitionInput{Message: "See Users."}))
	if n := len(must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, free.ID))); n != 0 {
		t.Fatalf("free case billed: %d items", n)
	}
	// ... until support marks it billable, with a reason; then it bills at once.
	_, err = f.svc.SetBillable(sam, free.ID, true, "")
	wantCode(t, err, "reason_required")
	must[*support.Ticket](t)(f.svc.SetBillable(sam, free.ID, true, "custom integration work"))
	if n := len(must[[]billing.SupportItem](t)(bill.SupportItemsForTicket(f.sys, free.ID))); n != 2 {
		t.Fatalf("marked billable: %d items", n)
	}
}

// A duplicate closes into its survivor: the conversation shows there, its
// unbilled time moves there, and only a ticket of the same provider can survive.
func TestMergeDuplicates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam, user := f.staff(f.agent), f.portal(f.a)
	surv := f.mustOpen(t, f.a, support.P2, support.CategoryAPIData, "Webhooks not arriving")
	dup := f.mustOpen(t, f.a, support.P3, support.CategoryAPIData, "No pushes since Monday")
	other := f.mustOpen(t, f.b, support.P3, support.CategoryAPIData, "Pushes of B")
	must[*support.Message](t)(f.svc.Reply(user, dup.ID, support.NewMessage{Body: "Endpoint https://hooks.example answers 200."}))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, dup.ID, support.NewTimeEntry{Minutes: 12, Billable: true}))

	_, err := f.svc.Merge(sam, dup.ID, other.ID)
	wantCode(t, err, "survivor_other_provider")
	_, err = f.svc.Merge(sam, dup.ID, dup.ID)
	wantCode(t, err, "merge_into_itself")
	_, err = f.svc.Merge(user, dup.ID, surv.ID)
	wantCode(t, err, "staff_only")
	got := must[*support.Ticket](t)(f.svc.Merge(sam, dup.ID, surv.ID))
	if got.Status != support.StatusClosed || got.MergedIntoID == nil || *got.MergedIntoID != surv.ID {
		t.Fatalf("duplicate after merge: %+v", got)
	}
	// The duplicate is closed for good.
	_, err = f.svc.Reopen(user, dup.ID, "why")
	wantCode(t, err, "ticket_merged")
	_, err = f.svc.Reply(user, dup.ID, support.NewMessage{Body: "hello"})
	wantCode(t, err, "ticket_merged")
	// Its messages are on the survivor's timeline, for the provider too.
	found := false
	for _, e := range must[[]support.Entry](t)(f.svc.Timeline(user, surv.ID)) {
		if e.Message != nil && strings.Contains(e.Message.Body, "hooks.example") && e.From == dup.Number() {
			found = true
		}
	}
	if !found {
		t.Fatal("the duplicate's message is not on the survivor's timeline")
	}
	if _, tot, _ := f.svc.TimeEntries(sam, surv.ID); tot.Minutes != 12 {
		t.Fatalf("time did not move: %+v", tot)
	}
	// The duplicate is not counted in the SLA report.
	must[*support.Ticket](t)(f.svc.Assign(sam, surv.ID, f.agent.ID))
	must[*support.Ticket](t)(f.svc.Transition(sam, surv.ID, support.ActionResolve, support.TransitionInput{Message: "Endpoint re-enabled."}))
	r := must[*support.Report](t)(f.svc.SLAReport(sam, "2026-03"))
	if r.Total.Tickets != 1 {
		t.Fatalf("report counts %d tickets", r.Total.Tickets)
	}
}

// The monthly report counts tickets resolved in the month, by priority and
// category, with the waiting time left out of the resolution clock.
func TestMonthlySLAReport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam := f.staff(f.agent)
	resolve := func(tk *support.Ticket, reply, resolved string) {
		f.set(reply)
		must[*support.Message](t)(f.svc.Reply(sam, tk.ID, support.NewMessage{Body: "Looking into it."}))
		f.set(resolved)
		must[*support.Ticket](t)(f.svc.Transition(sam, tk.ID, support.ActionResolve, support.TransitionInput{Message: "Done."}))
	}
	f.set("2026-03-02 09:00")
	p1 := f.mustOpen(t, f.a, support.P1, support.CategoryAPIData, "Outage")
	p2 := f.mustOpen(t, f.a, support.P2, support.CategoryDataQuality, "Stale data")
	p2late := f.mustOpen(t, f.b, support.P2, support.CategoryDataQuality, "Wrong unit")
	resolve(p1, "2026-03-02 09:30", "2026-03-02 15:00")     // met both
	resolve(p2, "2026-03-02 14:00", "2026-03-04 09:00")     // first response late (due 13:00), resolved in 20 h
	resolve(p2late, "2026-03-02 10:00", "2026-03-09 10:00") // 51 h: late
	f.set("2026-03-31 23:59")
	r := must[*support.Report](t)(f.svc.SLAReport(sam, "2026-03"))
	if r.Total.Tickets != 3 || r.Total.FirstMet != 2 || r.Total.ResolutionMet != 2 {
		t.Fatalf("total %+v", r.Total)
	}
	row := func(rows []support.ReportRow, key string) support.ReportRow {
		for _, x := range rows {
			if x.Key == key {
				return x
			}
		}
		t.Fatalf("no row %s", key)
		return support.ReportRow{}
	}
	if p := row(r.ByPriority, "P2"); p.Tickets != 2 || p.FirstPct() != "50.0 %" || p.ResolutionPct() != "50.0 %" {
		t.Fatalf("P2 row %+v", p)
	}
	if c := row(r.ByCategory, "data_quality"); c.Tickets != 2 || c.ResolutionMet != 1 {
		t.Fatalf("data quality row %+v", c)
	}
	if p := row(r.ByPriority, "P4"); p.Tickets != 0 || p.FirstPct() != "–" {
		t.Fatalf("P4 row %+v", p)
	}
	if r := must[*support.Report](t)(f.svc.SLAReport(sam, "2026-04")); r.Total.Tickets != 0 || r.Prev != "2026-03" {
		t.Fatalf("April %+v", r)
	}
	_, err := f.svc.SLAReport(sam, "March")
	wantCode(t, err, "period_invalid")
	_, err = f.svc.SLAReport(f.portal(f.a), "2026-03")
	wantCode(t, err, "staff_only")
}

// Bad input is refused with field errors: subject, category, priority,
// links (VIN format, invoice number) and attachments (size, sniffed type).
func TestOpenTicketValidatesInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user := f.portal(f.a)
	big := bytes.Repeat([]byte("a"), support.MaxAttachmentSize+1)
	_, err := f.svc.OpenTicket(user, support.NewTicket{Subject: "x", Category: "weather", Priority: "P9",
		Links: []support.LinkInput{{Kind: support.LinkVIN, Ref: "WBA12345678901O34"}, {Kind: support.LinkInvoice, Ref: "INV-1"}},
		Attachments: []support.Upload{{Filename: "big.txt", Data: big}, {Filename: "evil.html", Data: []byte("<html><script>alert(1)</script>")},
			{Filename: "x.exe", Data: []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00")}}})
	for _, code := range []string{"subject_required", "description_required", "category_invalid", "priority_invalid", "vin_characters",
		"invoice_invalid", "attachment_too_large", "attachment_type"} {
		wantCode(t, err, code)
	}
	tk, err := f.svc.OpenTicket(user, support.NewTicket{Subject: "Car not delivering", Description: "see VIN", Category: support.CategoryDataQuality,
		Priority: support.P3, Links: []support.LinkInput{{Kind: support.LinkVIN, Ref: " wba12345678901234 "}, {Kind: support.LinkInvoice, Ref: "cd-2026-000123"},
			{Kind: support.LinkContainer, Ref: "#12"}},
		Attachments: []support.Upload{{Filename: "../../etc/shot.png", Data: []byte("\x89PNG\r\n\x1a\n0000")}}})
	if err != nil {
		t.Fatal(err)
	}
	links := must[[]support.Link](t)(f.svc.Links(user, tk.ID))
	refs := []string{}
	for _, l := range links {
		refs = append(refs, string(l.Kind)+"="+l.Ref)
	}
	if strings.Join(refs, " ") != "container=12 invoice=CD-2026-000123 vin=WBA12345678901234" {
		t.Fatalf("links %v", refs)
	}
	atts := must[[]support.Attachment](t)(f.svc.TicketAttachments(user, tk.ID))
	if len(atts) != 1 || atts[0].Filename != "shot.png" || atts[0].ContentType != "image/png" || len(atts[0].SHA256) != 64 {
		t.Fatalf("attachments %+v", atts)
	}
	_, err = f.svc.OpenTicket(f.staff(f.agent), support.NewTicket{Subject: "For nobody", Description: "x", Category: support.CategoryOther, Priority: support.P4})
	wantCode(t, err, "provider_required")
	// Staff open on the provider's behalf: answered at once, replies to the provider's contact.
	tk, err = f.svc.OpenTicket(f.staff(f.agent), support.NewTicket{ProviderID: f.b.Provider.ID, Subject: "Phone call", Description: "Asked about tiers",
		Category: support.CategoryBilling, Priority: support.P4, AssigneeID: &f.agent.ID})
	if err != nil || tk.Channel != "staff" || tk.FirstResponseAt == nil || tk.Status != support.StatusOpen || tk.ContactEmail != f.b.Provider.ContactEmail {
		t.Fatalf("staff ticket %+v %v", tk, err)
	}
}

// End to end with billing's invoice run: the case fee and the 30 billable
// minutes land on March's invoice; after a reopening in April only the 15
// minutes booked anew land on April's, and nothing lands twice.
func TestBillableSupportReachesTheMonthlyInvoiceOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sam := f.staff(f.agent)
	bill := billingtest.MustSetup(t, f.db, billingtest.NewDirectory(billingtest.Austrian(f.a.Provider.ID)))
	tk := f.mustOpen(t, f.a, support.P2, support.CategoryDataQuality, "Stale mileage")
	must[*support.Ticket](t)(f.svc.Assign(sam, tk.ID, f.agent.ID))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 30, Billable: true}))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 20, Billable: false}))
	f.set("2026-03-30 15:00")
	must[*support.Ticket](t)(f.svc.Transition(sam, tk.ID, support.ActionResolve, support.TransitionInput{Message: "Fixed."}))

	lines := func(period string) map[billing.Item]string {
		t.Helper()
		if _, err := bill.RunPeriod(billingtest.Ctx(), period, billing.RunOptions{}); err != nil {
			t.Fatalf("run %s: %v", period, err)
		}
		var rows []billing.Line
		if err := f.db.Joins("JOIN invoices ON invoices.id = invoice_lines.invoice_id").
			Where("invoices.provider_id = ? AND invoices.period = ? AND invoices.status <> 'discarded'", f.a.Provider.ID, period).
			Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		out := map[billing.Item]string{}
		for _, l := range rows {
			out[l.Item] += l.Quantity.String() + " "
		}
		return out
	}
	march := lines("2026-03")
	if march[billing.ItemSupportCase] != "1 " || march[billing.ItemSupportTime] != "2 " { // 30 min = 2 started quarter hours
		t.Fatalf("March invoice lines %v", march)
	}
	f.set("2026-04-01 09:00")
	must[*support.Ticket](t)(f.svc.Reopen(f.portal(f.a), tk.ID, "Stale again."))
	must[*support.TimeEntry](t)(f.svc.BookTime(sam, tk.ID, support.NewTimeEntry{Minutes: 15, Billable: true}))
	f.set("2026-04-01 11:00")
	must[*support.Ticket](t)(f.svc.Transition(sam, tk.ID, support.ActionResolve, support.TransitionInput{Message: "Fixed for good."}))
	april := lines("2026-04")
	if april[billing.ItemSupportCase] != "" || april[billing.ItemSupportTime] != "1 " {
		t.Fatalf("April invoice lines %v", april)
	}
	// Running March again changes nothing: every item sits on one invoice.
	if again := lines("2026-03"); again[billing.ItemSupportTime] != "2 " || again[billing.ItemSupportCase] != "1 " {
		t.Fatalf("March after a re-run %v", again)
	}
	var unbilled int64
	f.db.Raw(`SELECT count(*) FROM billing_support_items WHERE ticket_id = ? AND invoice_id IS NULL`, tk.ID).Scan(&unbilled)
	if unbilled != 0 {
		t.Fatalf("%d support items on no invoice", unbilled)
	}
}
