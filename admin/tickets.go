package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// TicketHandlers are the support desk's staff pages: the queue with its
// views, filters and search, a ticket with its timeline and every action,
// the form to open a ticket on a provider's behalf, and the monthly SLA
// report. Support works tickets; the other staff roles read them (see
// policies/rules/70_support.csv); forms show only to roles allowed to post.
type TicketHandlers struct {
	View    *templates.View
	Support *support.Service
}

// Routes mounts the pages on r (the /admin group).
func (h *TicketHandlers) Routes(r fiber.Router) {
	r.Get("/tickets", h.queue)
	r.Post("/tickets", h.create)
	r.Get("/tickets/new", h.newForm)
	r.Get("/tickets/export.csv", h.exportTickets)
	r.Get("/tickets/report", h.report)
	r.Get("/tickets/report/export.csv", h.exportReport)
	r.Post("/tickets/settings", h.settings)
	r.Get("/tickets/:id", h.show)
	r.Post("/tickets/:id/messages", h.reply)
	r.Post("/tickets/:id/transitions/:action", h.transition)
	r.Post("/tickets/:id/assign", h.assign)
	r.Post("/tickets/:id/classify", h.classify)
	r.Post("/tickets/:id/time", h.bookTime)
	r.Post("/tickets/:id/time/:entry/delete", h.deleteTime)
	r.Post("/tickets/:id/billable", h.billable)
	r.Post("/tickets/:id/merge", h.View.Confirm(h.confirmMerge), h.merge)
	r.Post("/tickets/:id/links", h.addLink)
	r.Post("/tickets/:id/links/:link/delete", h.removeLink)
	r.Get("/tickets/:id/attachments/:att", h.download)
}

// TicketNav is the navigation of the support pages.
func TicketNav() []templates.NavItem {
	return []templates.NavItem{{Label: "Tickets", Path: "/admin/tickets"}, {Label: "SLA report", Path: "/admin/tickets/report"}}
}

// mayPost reports whether the principal may post to path (the forms it sees).
func (h *TicketHandlers) mayPost(c *fiber.Ctx, path string) bool {
	p := policies.PrincipalFrom(c.UserContext())
	return h.View.Can(p, fiber.MethodPost, path)
}

type viewTab struct {
	Key, Label string
	Count      int64
	HasCount   bool
}

type queuePage struct {
	Tickets    []support.Listed
	View       string
	Tabs       []viewTab
	Statuses   []support.Status
	Priorities []support.Priority
	Categories []support.Category
	Providers  []support.ProviderChoice
	CanCreate  bool
}

var viewLabels = map[string]string{
	support.ViewActive: "Active", support.ViewUnassigned: "Unassigned", support.ViewMine: "Mine",
	support.ViewBreaching: "Breaching soon", support.ViewAll: "All tickets",
}

// ticketFilter reads the queue's view, filters and order from the query.
func ticketFilter(c *fiber.Ctx) support.Filter {
	view := c.Query("view", support.ViewActive)
	if _, ok := viewLabels[view]; !ok {
		view = support.ViewActive
	}
	providerID, _ := strconv.ParseInt(c.Query("provider"), 10, 64)
	return support.Filter{View: view, Status: support.Status(c.Query("status")), Priority: support.Priority(c.Query("priority")),
		Category: support.Category(c.Query("category")), ProviderID: providerID, Query: c.Query("q"),
		Order: support.TicketSort.Parse(c.Query("sort"), c.Query("dir"))}
}

func (h *TicketHandlers) queue(c *fiber.Ctx) error {
	ctx := c.UserContext()
	pager := templates.NewPager(c, 25)
	f := ticketFilter(c)
	view := f.View
	f.Offset, f.Limit = pager.Offset(), pager.PerPage
	list, total, err := h.Support.ListTickets(ctx, f)
	if err != nil {
		return err
	}
	pager.Total = total
	counts, err := h.Support.QueueCounts(ctx)
	if err != nil {
		return err
	}
	providers, err := h.Support.ProviderChoices(ctx)
	if err != nil {
		return err
	}
	page := queuePage{Tickets: list, View: view, Statuses: support.Statuses, Priorities: support.Priorities,
		Categories: support.Categories, Providers: providers, CanCreate: h.mayPost(c, "/admin/tickets")}
	for _, v := range support.Views {
		n, ok := counts[v]
		page.Tabs = append(page.Tabs, viewTab{Key: v, Label: viewLabels[v], Count: n, HasCount: ok})
	}
	return h.View.Render(c, fiber.StatusOK, "admin/tickets/index", &templates.Page{Title: "Tickets", Pager: pager,
		Form: map[string]string{"q": f.Query, "status": string(f.Status), "priority": string(f.Priority),
			"category": string(f.Category), "provider": c.Query("provider"), "view": view},
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Data: page})
}

// TicketCSVHeader is the column ids of a ticket export (staff and portal).
var TicketCSVHeader = []string{"ticket", "subject", "provider", "category", "priority", "status", "assignee", "billable",
	"opened_at", "first_response_due", "first_response_at", "resolution_due", "resolved_at", "closed_at"}

// TicketCSVRow is one ticket's row of an export.
func TicketCSVRow(t *support.Ticket) []string {
	billable := "no"
	if t.Billable {
		billable = "yes"
	}
	return []string{support.TicketNumber(t.ID), t.Subject, t.ProviderName, string(t.Category), string(t.Priority), string(t.Status),
		t.AssigneeName, billable, templates.CSVTime(t.CreatedAt), templates.CSVTime(t.FirstResponseDue), templates.CSVTime(t.FirstResponseAt),
		templates.CSVTime(t.ResolutionDue), templates.CSVTime(t.ResolvedAt), templates.CSVTime(t.ClosedAt)}
}

// exportReport downloads the SLA report's tickets of a month as CSV: one
// row per ticket the report counts, with its targets and whether they were met.
func (h *TicketHandlers) exportReport(c *fiber.Ctx) error {
	period := c.Query("period")
	if err := h.Support.CheckReportPeriod(period); err != nil {
		return h.renderReport(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err))
	}
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	name := "cardata-sla.csv"
	if period != "" {
		name = "cardata-sla-" + period + ".csv"
	}
	return templates.CSV(c, name, []string{"ticket", "subject", "provider", "priority", "category", "assignee", "opened_at",
		"first_response_due", "first_response_at", "first_response_met", "resolved_at", "resolution_business_hours",
		"resolution_target_hours", "resolution_met"},
		func(ctx context.Context, emit func([]string) error) error {
			return h.Support.EachSLATicket(ctx, period, func(t *support.SLATicket) error {
				used := time.Duration(t.SLAUsedSeconds) * time.Second
				return emit([]string{support.TicketNumber(t.ID), t.Subject, t.ProviderName, string(t.Priority), string(t.Category),
					t.AssigneeName, templates.CSVTime(t.CreatedAt), templates.CSVTime(t.FirstResponseDue), templates.CSVTime(t.FirstResponseAt),
					yesNo(t.FirstMet), templates.CSVTime(t.ResolvedAt), strconv.FormatFloat(used.Hours(), 'f', 2, 64),
					strconv.FormatFloat(support.TargetOf(t.Priority).Resolution.Hours(), 'f', 0, 64), yesNo(t.ResolutionMet())})
			})
		})
}

// exportTickets downloads the queue's view with its filters and order as CSV.
func (h *TicketHandlers) exportTickets(c *fiber.Ctx) error {
	f := ticketFilter(c)
	return templates.CSV(c, "cardata-tickets.csv", TicketCSVHeader, func(ctx context.Context, emit func([]string) error) error {
		return h.Support.EachTicket(ctx, f, func(t *support.Ticket) error { return emit(TicketCSVRow(t)) })
	})
}

type newPage struct {
	Providers  []support.ProviderChoice
	Agents     []support.Agent
	Priorities []support.Priority
	Categories []support.Category
	CanCreate  bool
}

func (h *TicketHandlers) newForm(c *fiber.Ctx) error {
	return h.renderNew(c, fiber.StatusOK, nil, map[string]string{"priority": "P3", "category": "api_data",
		"provider_id": c.Query("provider"), "assign_me": "true"})
}

func (h *TicketHandlers) renderNew(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	ctx := c.UserContext()
	providers, err := h.Support.ProviderChoices(ctx)
	if err != nil {
		return err
	}
	agents, err := h.Support.Agents(ctx)
	if err != nil {
		return err
	}
	return h.View.Render(c, status, "admin/tickets/new", &templates.Page{Title: "New ticket", Errors: fieldErrs, Form: form,
		Data: newPage{Providers: providers, Agents: agents, Priorities: support.Priorities, Categories: support.Categories,
			CanCreate: h.mayPost(c, "/admin/tickets")}})
}

func (h *TicketHandlers) uploads(c *fiber.Ctx, field string) ([]support.Upload, error) {
	form, err := c.MultipartForm()
	if err != nil {
		return nil, nil // not a multipart form: no files
	}
	return support.UploadsFrom(form, field)
}

func (h *TicketHandlers) create(c *fiber.Ctx) error {
	files, err := h.uploads(c, "attachments")
	if err != nil {
		return err
	}
	providerID, _ := strconv.ParseInt(c.FormValue("provider_id"), 10, 64)
	in := support.NewTicket{ProviderID: providerID, Subject: c.FormValue("subject"), Description: c.FormValue("description"),
		Category: support.Category(c.FormValue("category")), Priority: support.Priority(c.FormValue("priority")),
		ContactName: c.FormValue("contact_name"), ContactEmail: c.FormValue("contact_email"),
		Links: support.LinkInputsFrom(func(k string) string { return c.FormValue(k) }), Attachments: files}
	if c.FormValue("assign_me") == "true" {
		if p := policies.PrincipalFrom(c.UserContext()); p != nil {
			id := p.ID
			in.AssigneeID = &id
		}
	}
	t, err := h.Support.OpenTicket(c.UserContext(), in)
	if invalid(err) {
		return h.renderNew(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err), formValues(c, "provider_id", "subject",
			"description", "category", "priority", "contact_name", "contact_email", "link_container", "link_invoice", "link_vin", "assign_me"))
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Ticket {{.Number}} opened for {{.Provider}}.", "Number", t.Number(), "Provider", t.ProviderName))
	return c.Redirect("/admin/tickets/"+strconv.FormatInt(t.ID, 10), fiber.StatusSeeOther)
}

type ticketPage struct {
	T          *support.Ticket
	SLA        support.SLAState
	Target     string // "4 h first response · 30 h resolution"
	Timeline   []support.Entry
	Opening    []support.Attachment
	Links      []support.Link
	Time       []support.TimeEntry
	Totals     support.TimeTotals
	Actions    []support.Transition
	Agents     []support.Agent
	Alerts     []support.Alert
	Duplicates []string
	Priorities []support.Priority
	Categories []support.Category
	LinkKinds  []support.LinkKind
	Rule       bool // the price list's rule for this category
	CanEdit    bool
	MeID       int64
	Today      string
}

func (h *TicketHandlers) ticketID(c *fiber.Ctx) (int64, error) {
	id, ok := support.ParseNumber(c.Params("id"))
	if !ok {
		return 0, support.ErrTicketNotFound
	}
	return id, nil
}

func (h *TicketHandlers) show(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	return h.renderTicket(c, fiber.StatusOK, id, nil, nil)
}

// renderTicket renders the ticket page; form names the form that failed
// (its values and errors are in fieldErrs and form).
func (h *TicketHandlers) renderTicket(c *fiber.Ctx, status int, id int64, fieldErrs, form map[string]string) error {
	ctx := c.UserContext()
	t, err := h.Support.FindTicket(ctx, id)
	if err != nil {
		return err
	}
	page := ticketPage{T: t, SLA: h.Support.SLA(t), Priorities: support.Priorities, Categories: support.Categories,
		LinkKinds: support.LinkKinds, Rule: support.BillableByRule(t.Category),
		CanEdit: h.mayPost(c, fmt.Sprintf("/admin/tickets/%d/messages", id)),
		Today:   time.Now().In(h.Support.Location()).Format("2006-01-02")}
	tg := support.TargetOf(t.Priority)
	page.Target = i18n.T(templates.LangOf(c), "{{.First}} first response · {{.Resolution}} resolution (business hours)", "First", support.FormatBusiness(tg.FirstResponse), "Resolution", support.FormatBusiness(tg.Resolution))
	if p := policies.PrincipalFrom(ctx); p != nil {
		page.MeID = p.ID
	}
	if page.Timeline, err = h.Support.Timeline(ctx, id); err != nil {
		return err
	}
	if page.Opening, err = h.Support.TicketAttachments(ctx, id); err != nil {
		return err
	}
	if page.Links, err = h.Support.Links(ctx, id); err != nil {
		return err
	}
	if page.Time, page.Totals, err = h.Support.TimeEntries(ctx, id); err != nil {
		return err
	}
	if page.Agents, err = h.Support.Agents(ctx); err != nil {
		return err
	}
	if page.Alerts, err = h.Support.TicketAlerts(ctx, id); err != nil {
		return err
	}
	dups, err := h.Support.Duplicates(ctx, id)
	if err != nil {
		return err
	}
	for _, d := range dups {
		page.Duplicates = append(page.Duplicates, support.TicketNumber(d))
	}
	page.Actions = h.Support.Actions(t)
	return h.View.Render(c, status, "admin/tickets/show", &templates.Page{Title: t.Number() + " " + t.Subject,
		Errors: fieldErrs, Form: form, Data: page})
}

// done redirects back to the ticket with a flash message.
func (h *TicketHandlers) done(c *fiber.Ctx, id int64, msg string) error {
	templates.SetFlash(c, "success", msg)
	return c.Redirect(fmt.Sprintf("/admin/tickets/%d", id), fiber.StatusSeeOther)
}

// failed re-renders the ticket with the field errors of the named form, or
// returns a non-validation error as it is.
func (h *TicketHandlers) failed(c *fiber.Ctx, id int64, err error, formName string, fields ...string) error {
	if !invalid(err) {
		return err
	}
	form := formValues(c, fields...)
	form["form"] = formName
	return h.renderTicket(c, fiber.StatusUnprocessableEntity, id, templates.FieldErrors(c, err), form)
}

func (h *TicketHandlers) reply(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	files, err := h.uploads(c, "attachments")
	if err != nil {
		return err
	}
	internal := c.FormValue("visibility") == "internal"
	_, err = h.Support.Reply(c.UserContext(), id, support.NewMessage{Body: c.FormValue("body"), Internal: internal, Attachments: files})
	if err != nil {
		return h.failed(c, id, err, "reply", "body", "visibility")
	}
	if internal {
		return h.done(c, id, "Internal note added. The provider does not see it.")
	}
	return h.done(c, id, "Reply sent to the provider.")
}

func (h *TicketHandlers) transition(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	action := support.Action(c.Params("action"))
	tr, ok := support.TransitionFor(action)
	if !ok {
		return errs.New(errs.NotFound, "unknown_action", "no such action")
	}
	files, err := h.uploads(c, "attachments")
	if err != nil {
		return err
	}
	t, err := h.Support.Transition(c.UserContext(), id, action, support.TransitionInput{Message: c.FormValue("message"), Attachments: files})
	if err != nil {
		return h.failed(c, id, err, "action-"+string(action), "message")
	}
	lang := templates.LangOf(c)
	return h.done(c, id, i18n.T(lang, "{{.Number}}: {{.Action}}; the ticket is now {{.Status}}.", "Number", t.Number(), "Action", i18n.T(lang, tr.Label), "Status", i18n.T(lang, t.Status.Label())))
}

func (h *TicketHandlers) assign(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	assignee, _ := strconv.ParseInt(c.FormValue("assignee_id"), 10, 64)
	if c.FormValue("me") == "true" {
		if p := policies.PrincipalFrom(c.UserContext()); p != nil {
			assignee = p.ID
		}
	}
	t, err := h.Support.Assign(c.UserContext(), id, assignee)
	if err != nil {
		return h.failed(c, id, err, "assign", "assignee_id")
	}
	return h.done(c, id, i18n.T(templates.LangOf(c), "{{.Number}} is assigned to {{.Assignee}}.", "Number", t.Number(), "Assignee", t.AssigneeName))
}

func (h *TicketHandlers) classify(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	_, err = h.Support.Classify(c.UserContext(), id, support.Classification{Priority: support.Priority(c.FormValue("priority")),
		Category: support.Category(c.FormValue("category")), Subject: c.FormValue("subject")})
	if err != nil {
		return h.failed(c, id, err, "classify", "priority", "category", "subject")
	}
	return h.done(c, id, "Saved. The SLA targets follow the priority.")
}

func (h *TicketHandlers) bookTime(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	v := &errs.Validation{}
	minutes, convErr := strconv.Atoi(strings.TrimSpace(c.FormValue("minutes")))
	if convErr != nil {
		v.Add("minutes", "minutes_invalid", "give the minutes as a whole number")
	}
	var worked time.Time
	if s := strings.TrimSpace(c.FormValue("worked_on")); s != "" {
		d, perr := time.Parse("2006-01-02", s)
		if perr != nil {
			v.Add("worked_on", "worked_on_invalid", "give the day as YYYY-MM-DD")
		}
		worked = d
	}
	err = v.Err()
	if err == nil {
		_, err = h.Support.BookTime(c.UserContext(), id, support.NewTimeEntry{Minutes: minutes, Billable: c.FormValue("billable") == "true",
			Note: c.FormValue("note"), WorkedOn: worked})
	}
	if err != nil {
		return h.failed(c, id, err, "time", "minutes", "billable", "note", "worked_on")
	}
	return h.done(c, id, i18n.T(templates.LangOf(c), "{{.Count}} minutes booked.", "Count", minutes))
}

func (h *TicketHandlers) deleteTime(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	entry, err := strconv.ParseInt(c.Params("entry"), 10, 64)
	if err != nil {
		return errs.New(errs.NotFound, "time_entry_not_found", "time entry not found")
	}
	if err := h.Support.DeleteTimeEntry(c.UserContext(), id, entry); err != nil {
		return err
	}
	return h.done(c, id, "Time entry removed.")
}

func (h *TicketHandlers) billable(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	billable := c.FormValue("billable") == "true"
	_, err = h.Support.SetBillable(c.UserContext(), id, billable, c.FormValue("reason"))
	if err != nil {
		return h.failed(c, id, err, "billable", "reason", "billable")
	}
	if billable {
		return h.done(c, id, "The case is billable.")
	}
	return h.done(c, id, "The case is not billable.")
}

func (h *TicketHandlers) merge(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	survivor, ok := support.ParseNumber(c.FormValue("survivor"))
	if !ok {
		v := &errs.Validation{}
		v.Add("survivor", "survivor_invalid", "give the number of the ticket to keep, e.g. T-1042")
		return h.failed(c, id, v.Err(), "merge", "survivor")
	}
	t, err := h.Support.Merge(c.UserContext(), id, survivor)
	if err != nil {
		return h.failed(c, id, err, "merge", "survivor")
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "{{.Number}} was merged into {{.Into}}.", "Number", t.Number(), "Into", support.TicketNumber(survivor)))
	return c.Redirect(fmt.Sprintf("/admin/tickets/%d", survivor), fiber.StatusSeeOther)
}

func (h *TicketHandlers) addLink(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	err = h.Support.AddLink(c.UserContext(), id, support.LinkInput{Kind: support.LinkKind(c.FormValue("kind")), Ref: c.FormValue("ref")})
	if err != nil {
		return h.failed(c, id, err, "link", "kind", "ref")
	}
	return h.done(c, id, "Link added.")
}

func (h *TicketHandlers) removeLink(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	link, err := strconv.ParseInt(c.Params("link"), 10, 64)
	if err != nil {
		return errs.New(errs.NotFound, "link_not_found", "link not found")
	}
	if err := h.Support.RemoveLink(c.UserContext(), id, link); err != nil {
		return err
	}
	return h.done(c, id, "Link removed.")
}

func (h *TicketHandlers) download(c *fiber.Ctx) error {
	id, err := h.ticketID(c)
	if err != nil {
		return err
	}
	att, err := strconv.ParseInt(c.Params("att"), 10, 64)
	if err != nil {
		return errs.New(errs.NotFound, "attachment_not_found", "attachment not found")
	}
	a, err := h.Support.FindAttachment(c.UserContext(), id, att)
	if err != nil {
		return err
	}
	for k, v := range a.DownloadHeaders() {
		c.Set(k, v)
	}
	return c.Send(a.Data)
}

type reportPage struct {
	R           *support.Report
	Settings    *support.Settings
	Agents      []support.Agent
	CanSettings bool
	Targets     []targetRow
}

type targetRow struct {
	Priority             support.Priority
	FirstResponse, Solve string
}

func (h *TicketHandlers) report(c *fiber.Ctx) error {
	return h.renderReport(c, fiber.StatusOK, nil)
}

func (h *TicketHandlers) renderReport(c *fiber.Ctx, status int, fieldErrs map[string]string) error {
	ctx := c.UserContext()
	r, err := h.Support.SLAReport(ctx, c.Query("period"))
	if invalid(err) {
		fieldErrs = templates.FieldErrors(c, err)
		r, err = h.Support.SLAReport(ctx, "")
		status = fiber.StatusUnprocessableEntity
	}
	if err != nil {
		return err
	}
	st, err := h.Support.FindSettings(ctx)
	if err != nil {
		return err
	}
	agents, err := h.Support.Agents(ctx)
	if err != nil {
		return err
	}
	page := reportPage{R: r, Settings: st, Agents: agents, CanSettings: h.mayPost(c, "/admin/tickets/settings")}
	if page.CanSettings {
		// the policy lets support post there; the service lets only the team lead or an administrator choose
		if page.CanSettings, err = h.Support.MayChooseTeamLead(ctx); err != nil {
			return err
		}
	}
	for _, p := range support.Priorities {
		tg := support.TargetOf(p)
		page.Targets = append(page.Targets, targetRow{Priority: p, FirstResponse: support.FormatBusiness(tg.FirstResponse), Solve: support.FormatBusiness(tg.Resolution)})
	}
	return h.View.Render(c, status, "admin/tickets/report", &templates.Page{Title: "SLA report " + r.Label, Errors: fieldErrs,
		Form: map[string]string{"period": r.Period}, Data: page})
}

func (h *TicketHandlers) settings(c *fiber.Ctx) error {
	var lead *int64
	if v := c.FormValue("team_lead_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			id = -1
		}
		lead = &id
	}
	if err := h.Support.SetTeamLead(c.UserContext(), lead); err != nil {
		if invalid(err) {
			return h.renderReport(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err))
		}
		return err
	}
	templates.SetFlash(c, "success", "Escalations go to the assignee and the team lead you chose.")
	return c.Redirect("/admin/tickets/report", fiber.StatusSeeOther)
}
