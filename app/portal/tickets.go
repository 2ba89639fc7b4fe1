package portal

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// TicketHandlers are the provider's side of the support desk: tickets in
// the portal (/portal/tickets) and in the provider API (/api/v1/tickets).
// The support service pins every query to the principal's provider and
// hides internal notes; the handlers only shape what is shown.
type TicketHandlers struct {
	View    *templates.View
	Support *support.Service
}

// Routes mounts the portal pages on r (the /portal group).
func (h *TicketHandlers) Routes(r fiber.Router) {
	r.Get("/tickets", h.list)
	r.Get("/tickets/new", h.newForm)
	r.Get("/tickets/export.csv", h.export)
	r.Post("/tickets", h.create)
	r.Get("/tickets/:id", h.show)
	r.Post("/tickets/:id/messages", h.reply)
	r.Post("/tickets/:id/reopen", h.reopen)
	r.Get("/tickets/:id/attachments/:att", h.download)
}

// TicketNav is the portal navigation entry.
func TicketNav() templates.NavItem {
	return templates.NavItem{Label: "Tickets", Path: "/portal/tickets"}
}

func ticketID(c *fiber.Ctx) (int64, error) {
	id, ok := support.ParseNumber(c.Params("id"))
	if !ok {
		return 0, support.ErrTicketNotFound
	}
	return id, nil
}

type ticketListPage struct {
	Tickets  []support.Listed
	Statuses []support.Status
}

func (h *TicketHandlers) list(c *fiber.Ctx) error {
	if _, err := me(c); err != nil {
		return err
	}
	pager := templates.NewPager(c, 25)
	f := support.Filter{Status: support.Status(c.Query("status")), Query: c.Query("q"), Offset: pager.Offset(), Limit: pager.PerPage,
		Order: support.PortalTicketSort.Parse(c.Query("sort"), c.Query("dir"))}
	list, total, err := h.Support.ListTickets(c.UserContext(), f)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "portal/tickets/index", &templates.Page{Title: "Tickets", Pager: pager,
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Form: map[string]string{"q": f.Query, "status": string(f.Status)},
		Data: ticketListPage{Tickets: list, Statuses: support.Statuses}})
}

// TicketCSVHeader is the column ids of the portal's ticket export: the
// staff export's columns without the internal ones (assignee, billable).
var TicketCSVHeader = []string{"ticket", "subject", "category", "priority", "status",
	"opened_at", "first_response_due", "first_response_at", "resolution_due", "resolved_at", "closed_at"}

// TicketCSVRow is one of the provider's tickets in the export.
func TicketCSVRow(t *support.Ticket) []string {
	return []string{support.TicketNumber(t.ID), t.Subject, string(t.Category), string(t.Priority), string(t.Status),
		templates.CSVTime(t.CreatedAt), templates.CSVTime(t.FirstResponseDue), templates.CSVTime(t.FirstResponseAt),
		templates.CSVTime(t.ResolutionDue), templates.CSVTime(t.ResolvedAt), templates.CSVTime(t.ClosedAt)}
}

// export downloads the provider's own tickets with the list's filters and
// order (the support service pins the query to the principal's provider).
func (h *TicketHandlers) export(c *fiber.Ctx) error {
	if _, err := me(c); err != nil {
		return err
	}
	f := support.Filter{Status: support.Status(c.Query("status")), Query: c.Query("q"),
		Order: support.PortalTicketSort.Parse(c.Query("sort"), c.Query("dir"))}
	return templates.CSV(c, "cardata-tickets.csv", TicketCSVHeader, func(ctx context.Context, emit func([]string) error) error {
		return h.Support.EachTicket(ctx, f, func(t *support.Ticket) error { return emit(TicketCSVRow(t)) })
	})
}

type ticketFormPage struct {
	Priorities []support.Priority
	Categories []support.Category
}

func (h *TicketHandlers) newForm(c *fiber.Ctx) error {
	if _, err := me(c); err != nil {
		return err
	}
	return h.renderNew(c, fiber.StatusOK, nil, map[string]string{"priority": "P3", "category": "api_data"})
}

func (h *TicketHandlers) renderNew(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	return h.View.Render(c, status, "portal/tickets/new", &templates.Page{Title: "Open a ticket", Errors: fieldErrs, Form: form,
		Data: ticketFormPage{Priorities: support.Priorities, Categories: support.Categories}})
}

func formUploads(c *fiber.Ctx) ([]support.Upload, error) {
	form, err := c.MultipartForm()
	if err != nil {
		return nil, nil // not multipart: no files
	}
	return support.UploadsFrom(form, "attachments")
}

func (h *TicketHandlers) create(c *fiber.Ctx) error {
	if _, err := me(c); err != nil {
		return err
	}
	files, err := formUploads(c)
	if err != nil {
		return err
	}
	t, err := h.Support.OpenTicket(c.UserContext(), support.NewTicket{Subject: c.FormValue("subject"), Description: c.FormValue("description"),
		Category: support.Category(c.FormValue("category")), Priority: support.Priority(c.FormValue("priority")),
		Channel: support.ChannelPortal, Links: support.LinkInputsFrom(func(k string) string { return c.FormValue(k) }), Attachments: files})
	if invalid(err) {
		form := map[string]string{}
		for _, k := range []string{"subject", "description", "category", "priority", "link_container", "link_invoice", "link_vin"} {
			form[k] = c.FormValue(k)
		}
		return h.renderNew(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err), form)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Ticket {{.Number}} is with our support team. We will answer by e-mail and here.", "Number", t.Number()))
	return c.Redirect(fmt.Sprintf("/portal/tickets/%d", t.ID), fiber.StatusSeeOther)
}

type ticketShowPage struct {
	T         *support.Ticket
	SLA       support.SLAState
	Timeline  []support.Entry
	Opening   []support.Attachment
	Links     []support.Link
	CanReply  bool
	CanReopen bool
}

func (h *TicketHandlers) show(c *fiber.Ctx) error {
	id, err := ticketID(c)
	if err != nil {
		return err
	}
	return h.renderTicket(c, fiber.StatusOK, id, nil, nil)
}

func (h *TicketHandlers) renderTicket(c *fiber.Ctx, status int, id int64, fieldErrs, form map[string]string) error {
	if _, err := me(c); err != nil {
		return err
	}
	ctx := c.UserContext()
	t, err := h.Support.FindTicket(ctx, id)
	if err != nil {
		return err
	}
	page := ticketShowPage{T: t, SLA: h.Support.SLA(t), CanReply: t.Status.Active() && !t.Merged(), CanReopen: h.Support.CanReopen(t)}
	if page.Timeline, err = h.Support.Timeline(ctx, id); err != nil {
		return err
	}
	if page.Opening, err = h.Support.TicketAttachments(ctx, id); err != nil {
		return err
	}
	if page.Links, err = h.Support.Links(ctx, id); err != nil {
		return err
	}
	return h.View.Render(c, status, "portal/tickets/show", &templates.Page{Title: t.Number() + " " + t.Subject,
		Errors: fieldErrs, Form: form, Data: page})
}

func (h *TicketHandlers) reply(c *fiber.Ctx) error {
	id, err := ticketID(c)
	if err != nil {
		return err
	}
	if _, err := me(c); err != nil {
		return err
	}
	files, err := formUploads(c)
	if err != nil {
		return err
	}
	_, err = h.Support.Reply(c.UserContext(), id, support.NewMessage{Body: c.FormValue("body"), Attachments: files})
	if invalid(err) {
		return h.renderTicket(c, fiber.StatusUnprocessableEntity, id, templates.FieldErrors(c, err), map[string]string{"body": c.FormValue("body"), "form": "reply"})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Your message is with our support team.")
	return c.Redirect(fmt.Sprintf("/portal/tickets/%d", id), fiber.StatusSeeOther)
}

func (h *TicketHandlers) reopen(c *fiber.Ctx) error {
	id, err := ticketID(c)
	if err != nil {
		return err
	}
	if _, err := me(c); err != nil {
		return err
	}
	t, err := h.Support.Reopen(c.UserContext(), id, c.FormValue("message"))
	if invalid(err) {
		return h.renderTicket(c, fiber.StatusUnprocessableEntity, id, templates.FieldErrors(c, err), map[string]string{"message": c.FormValue("message"), "form": "reopen"})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "{{.Number}} is open again.", "Number", t.Number()))
	return c.Redirect(fmt.Sprintf("/portal/tickets/%d", id), fiber.StatusSeeOther)
}

func (h *TicketHandlers) download(c *fiber.Ctx) error {
	id, err := ticketID(c)
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
