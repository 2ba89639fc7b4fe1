package admin

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/templates"
)

// SearchHandlers answer the staff header's search box (GET /admin/search):
// providers (name, VAT id, id), tickets (number, subject), invoices
// (number) and vehicles (VIN). Each kind is searched only when the
// signed-in roles may open its pages (the guard's own policy, View.Can), so
// nobody finds what they could not follow.
type SearchHandlers struct {
	View       *templates.View
	Onboarding *onboarding.Service
	Support    *support.Service
	Billing    *billing.Service
	Vehicles   *vehicles.Service
}

// Routes mounts the search on r (the /admin group).
func (h *SearchHandlers) Routes(r fiber.Router) { r.Get("/search", h.search) }

// searchLimit is the most hits a kind shows (its list has the rest).
const searchLimit = 10

// searchKind is one kind of result: the page its hits open (to ask the
// policy) and how to find them.
type searchKind struct {
	kind, title, probe string
	find               func(ctx context.Context, q string) ([]templates.SearchHit, string, error)
}

func (h *SearchHandlers) kinds() []searchKind {
	return []searchKind{
		{"providers", "Providers", "/admin/providers/1", h.providers},
		{"tickets", "Tickets", "/admin/tickets/1", h.tickets},
		{"invoices", "Invoices", "/admin/billing/invoices/1", h.invoices},
		{"vehicles", "Vehicles", "/admin/vehicles/WBA00000000000000", h.vehicles},
	}
}

func (h *SearchHandlers) search(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	p := policies.PrincipalFrom(c.UserContext())
	page := templates.SearchPage{Action: "/admin/search", Query: q}
	var allowed []searchKind
	for _, k := range h.kinds() {
		if h.View.Can(p, fiber.MethodGet, k.probe) {
			allowed = append(allowed, k)
			page.Kinds = append(page.Kinds, k.title)
		}
	}
	form := map[string]string{"q": q}
	if q == "" {
		return h.View.Render(c, fiber.StatusOK, "admin/search", &templates.Page{Title: "Search", Form: form, Data: page})
	}
	if msg := templates.SearchQueryProblem(q); msg != "" {
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "admin/search", &templates.Page{Title: "Search", Form: form,
			Errors: map[string]string{"q": msg}, Data: page})
	}
	page.Empty = true
	for _, k := range allowed {
		hits, more, err := k.find(c.UserContext(), q)
		if err != nil {
			return err
		}
		if len(hits) > 0 {
			page.Empty = false
			page.Groups = append(page.Groups, templates.SearchGroup{Kind: k.kind, Title: k.title, Hits: hits, More: more})
		}
	}
	return h.View.Render(c, fiber.StatusOK, "admin/search", &templates.Page{Title: "Search", Form: form, Data: page})
}

func listLink(path, param, q string, total int64) string {
	if total <= searchLimit {
		return ""
	}
	return path + "?" + param + "=" + url.QueryEscape(q)
}

func (h *SearchHandlers) providers(ctx context.Context, q string) ([]templates.SearchHit, string, error) {
	var out []templates.SearchHit
	seen := map[int64]bool{}
	if id, err := strconv.ParseInt(strings.TrimPrefix(q, "#"), 10, 64); err == nil && id > 0 {
		if p, err := h.Onboarding.FindProviderByID(ctx, id); err == nil {
			out = append(out, templates.SearchHit{Label: p.LegalName, Detail: "#" + strconv.FormatInt(p.ID, 10) + " · " + p.VATID, Path: "/admin/providers/" + strconv.FormatInt(p.ID, 10)})
			seen[p.ID] = true
		}
	}
	list, total, err := h.Onboarding.FindProviders(ctx, onboarding.ProviderFilter{Query: q, Limit: searchLimit})
	if err != nil {
		return nil, "", err
	}
	for _, p := range list {
		if !seen[p.ID] {
			out = append(out, templates.SearchHit{Label: p.LegalName, Detail: "#" + strconv.FormatInt(p.ID, 10) + " · " + p.VATID, Path: "/admin/providers/" + strconv.FormatInt(p.ID, 10)})
		}
	}
	return out, listLink("/admin/providers", "q", q, total), nil
}

func (h *SearchHandlers) tickets(ctx context.Context, q string) ([]templates.SearchHit, string, error) {
	list, total, err := h.Support.ListTickets(ctx, support.Filter{View: support.ViewAll, Query: q, Limit: searchLimit})
	if err != nil {
		return nil, "", err
	}
	out := make([]templates.SearchHit, 0, len(list))
	for _, t := range list {
		out = append(out, templates.SearchHit{Label: t.Number() + " " + t.Subject, Detail: t.ProviderName, Path: "/admin/tickets/" + strconv.FormatInt(t.ID, 10)})
	}
	return out, listLink("/admin/tickets", "q", q, total), nil
}

func (h *SearchHandlers) invoices(ctx context.Context, q string) ([]templates.SearchHit, string, error) {
	list, total, err := h.Billing.ListInvoices(ctx, billing.InvoiceFilter{Number: q, Limit: searchLimit})
	if err != nil {
		return nil, "", err
	}
	out := make([]templates.SearchHit, 0, len(list))
	for _, inv := range list {
		out = append(out, templates.SearchHit{Label: inv.NumberOrDraft(), Detail: inv.BuyerName + " · " + inv.Period, Path: invoicePath(inv.ID)})
	}
	more := ""
	if total > searchLimit {
		more = "/admin/billing/invoices"
	}
	return out, more, nil
}

func (h *SearchHandlers) vehicles(ctx context.Context, q string) ([]templates.SearchHit, string, error) {
	list, more, err := h.Vehicles.FindVINs(ctx, q, searchLimit)
	if err != nil {
		return nil, "", err
	}
	out := make([]templates.SearchHit, 0, len(list))
	for _, v := range list {
		out = append(out, templates.SearchHit{Label: v.VIN, Detail: v.Brand + " " + v.Model + " · " + v.Market, Path: "/admin/vehicles/" + v.VIN})
	}
	if !more {
		return out, "", nil
	}
	return out, "/admin/vehicles?q=" + url.QueryEscape(q), nil
}
