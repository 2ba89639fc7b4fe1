package portal

import (
	"fmt"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/app/web"
	"cardata/policies"
	"cardata/policies/errs"
)

// APIRoutes mounts the provider API's ticket endpoints on r (/api/v1). The
// provider API's authentication puts the client's provider principal into
// the request context; these handlers accept nothing else.
func (h *TicketHandlers) APIRoutes(r fiber.Router) {
	r.Get("/tickets", h.apiList)
	r.Post("/tickets", h.apiCreate)
	r.Get("/tickets/:id", h.apiShow)
	r.Post("/tickets/:id/messages", h.apiReply)
}

// apiProvider requires a provider principal with its provider.
func apiProvider(c *fiber.Ctx) (*policies.Principal, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil {
		return nil, errs.New(errs.Unauthorized, "unauthenticated", "send a bearer token")
	}
	if p.Kind != policies.KindProvider || p.ProviderID == 0 {
		return nil, errs.New(errs.Forbidden, "provider_only", "the tickets API is for provider clients")
	}
	return p, nil
}

// APITicket is a ticket as the API shows it.
type APITicket struct {
	ID               int64        `json:"id"`
	Number           string       `json:"number"`
	Subject          string       `json:"subject"`
	Description      string       `json:"description"`
	Category         string       `json:"category"`
	Priority         string       `json:"priority"`
	Status           string       `json:"status"`
	Channel          string       `json:"channel"`
	ContactEmail     string       `json:"contactEmail"`
	CreatedAt        time.Time    `json:"createdAt"`
	UpdatedAt        time.Time    `json:"updatedAt"`
	FirstResponseDue *time.Time   `json:"firstResponseDue,omitempty"`
	ResolutionDue    *time.Time   `json:"resolutionDue,omitempty"`
	SLA              string       `json:"sla"`
	ResolvedAt       *time.Time   `json:"resolvedAt,omitempty"`
	MergedInto       string       `json:"mergedInto,omitempty"`
	Links            []APILink    `json:"links,omitempty"`
	Messages         []APIMessage `json:"messages,omitempty"`
}

// APILink is a typed link of a ticket.
type APILink struct {
	Kind string `json:"kind"`
	Ref  string `json:"ref"`
}

// APIMessage is a public message of a ticket's conversation.
type APIMessage struct {
	ID          int64           `json:"id"`
	Ticket      string          `json:"ticket"`
	Author      string          `json:"author"`
	FromSupport bool            `json:"fromSupport"`
	Body        string          `json:"body"`
	CreatedAt   time.Time       `json:"createdAt"`
	Attachments []APIAttachment `json:"attachments,omitempty"`
}

// APIAttachment describes a file (downloads are in the portal).
type APIAttachment struct {
	ID          int64  `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

func (h *TicketHandlers) apiTicket(t *support.Ticket) APITicket {
	out := APITicket{ID: t.ID, Number: t.Number(), Subject: t.Subject, Description: t.Description, Category: string(t.Category),
		Priority: string(t.Priority), Status: string(t.Status), Channel: t.Channel, ContactEmail: t.ContactEmail,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, ResolvedAt: t.ResolvedAt, ResolutionDue: t.ResolutionDue,
		SLA: h.Support.SLA(t).Text}
	if t.FirstResponseAt == nil && t.Status.Active() {
		due := t.FirstResponseDue
		out.FirstResponseDue = &due
	}
	if t.MergedIntoID != nil {
		out.MergedInto = support.TicketNumber(*t.MergedIntoID)
	}
	return out
}

// TicketPage is the answer of GET /api/v1/tickets.
type TicketPage struct {
	Tickets    []APITicket `json:"tickets"`
	NextCursor *string     `json:"nextCursor"`
}

// apiList is GET /api/v1/tickets?status=&q=&limit=&cursor=: the caller's
// tickets, newest first.
func (h *TicketHandlers) apiList(c *fiber.Ctx) error {
	if _, err := apiProvider(c); err != nil {
		return err
	}
	var v errs.Validation
	status := support.Status(c.Query("status"))
	if status != "" && !slices.Contains(support.Statuses, status) {
		v.Add("status", "status_invalid", "status is one of %v", support.Statuses)
	}
	pg, err := web.ParsePage(c, &v)
	if err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	// One more than the page tells whether another follows.
	list, _, err := h.Support.ListTickets(c.UserContext(), support.Filter{Status: status, Query: c.Query("q"),
		Keyset: true, Before: pg.After.ID, Limit: pg.Limit + 1})
	if err != nil {
		return err
	}
	more := len(list) > pg.Limit
	if more {
		list = list[:pg.Limit]
	}
	out := TicketPage{Tickets: make([]APITicket, len(list))}
	for i := range list {
		out.Tickets[i] = h.apiTicket(&list[i].Ticket)
	}
	if n := len(list); n > 0 {
		out.NextCursor = web.NextCursor(web.Cursor{ID: list[n-1].ID}, more)
	}
	return c.JSON(out)
}

type apiNewTicket struct {
	Subject      string    `json:"subject"`
	Description  string    `json:"description"`
	Category     string    `json:"category"`
	Priority     string    `json:"priority"`
	ContactName  string    `json:"contactName"`
	ContactEmail string    `json:"contactEmail"`
	Links        []APILink `json:"links"`
}

func (h *TicketHandlers) apiCreate(c *fiber.Ctx) error {
	if _, err := apiProvider(c); err != nil {
		return err
	}
	var in apiNewTicket
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	nt := support.NewTicket{Subject: in.Subject, Description: in.Description, Category: support.Category(in.Category),
		Priority: support.Priority(in.Priority), ContactName: in.ContactName, ContactEmail: in.ContactEmail, Channel: support.ChannelAPI}
	for _, l := range in.Links {
		nt.Links = append(nt.Links, support.LinkInput{Kind: support.LinkKind(l.Kind), Ref: l.Ref})
	}
	t, err := h.Support.OpenTicket(c.UserContext(), nt)
	if err != nil {
		return err
	}
	return h.apiRespond(c, fiber.StatusCreated, t.ID)
}

func (h *TicketHandlers) apiShow(c *fiber.Ctx) error {
	if _, err := apiProvider(c); err != nil {
		return err
	}
	id, err := ticketID(c)
	if err != nil {
		return err
	}
	return h.apiRespond(c, fiber.StatusOK, id)
}

// apiRespond sends a ticket with its links and public conversation.
func (h *TicketHandlers) apiRespond(c *fiber.Ctx, status int, id int64) error {
	ctx := c.UserContext()
	t, err := h.Support.FindTicket(ctx, id)
	if err != nil {
		return err
	}
	out := h.apiTicket(t)
	links, err := h.Support.Links(ctx, id)
	if err != nil {
		return err
	}
	for _, l := range links {
		out.Links = append(out.Links, APILink{Kind: string(l.Kind), Ref: l.Ref})
	}
	tl, err := h.Support.Timeline(ctx, id)
	if err != nil {
		return err
	}
	for _, e := range tl {
		if e.Message == nil {
			continue
		}
		m := APIMessage{ID: e.Message.ID, Ticket: support.TicketNumber(e.Message.TicketID), Author: e.Message.AuthorLabel,
			FromSupport: e.Message.AuthorKind == "staff", Body: e.Message.Body, CreatedAt: e.Message.CreatedAt}
		for _, a := range e.Message.Attachments {
			m.Attachments = append(m.Attachments, APIAttachment{ID: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.SizeBytes, SHA256: a.SHA256})
		}
		out.Messages = append(out.Messages, m)
	}
	if status == fiber.StatusCreated {
		c.Location(fmt.Sprintf("/api/v1/tickets/%d", id))
	}
	return c.Status(status).JSON(out)
}

func (h *TicketHandlers) apiReply(c *fiber.Ctx) error {
	if _, err := apiProvider(c); err != nil {
		return err
	}
	id, err := ticketID(c)
	if err != nil {
		return err
	}
	var in struct {
		Body string `json:"body"`
	}
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	m, err := h.Support.Reply(c.UserContext(), id, support.NewMessage{Body: in.Body})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(APIMessage{ID: m.ID, Ticket: support.TicketNumber(m.TicketID), Author: m.AuthorLabel,
		Body: m.Body, CreatedAt: m.CreatedAt})
}
