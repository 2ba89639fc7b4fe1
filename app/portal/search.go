package portal

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/billing"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
)

// SearchHandlers answer the portal header's search box (GET
// /portal/search): the signed-in provider's own tickets (number, subject)
// and invoices (number). Ownership is in the queries (the support service
// pins tickets to the principal's provider, billing's ProviderInvoicePage
// binds its id in SQL and filters the numbers there); each kind is searched
// only when the user's role may open its page.
type SearchHandlers struct {
	View    *templates.View
	Support *support.Service
	Billing *billing.Service
}

// Routes mounts the search on r (the /portal group).
func (h *SearchHandlers) Routes(r fiber.Router) { r.Get("/search", h.search) }

// searchLimit is the most hits a kind shows.
const searchLimit = 10

func (h *SearchHandlers) search(c *fiber.Ctx) error {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindProvider || p.ProviderID == 0 {
		return errs.New(errs.Forbidden, "forbidden", "provider users only")
	}
	q := strings.TrimSpace(c.Query("q"))
	page := templates.SearchPage{Action: "/portal/search", Query: q}
	tickets := h.View.Can(p, fiber.MethodGet, "/portal/tickets/1")
	invoices := h.View.Can(p, fiber.MethodGet, "/portal/invoices")
	if tickets {
		page.Kinds = append(page.Kinds, "Tickets")
	}
	if invoices {
		page.Kinds = append(page.Kinds, "Invoices")
	}
	form := map[string]string{"q": q}
	render := func(status int, fieldErrs map[string]string) error {
		return h.View.Render(c, status, "portal/search", &templates.Page{Title: "Search", Form: form, Errors: fieldErrs, Data: page})
	}
	if q == "" {
		return render(fiber.StatusOK, nil)
	}
	if msg := templates.SearchQueryProblem(q); msg != "" {
		return render(fiber.StatusUnprocessableEntity, map[string]string{"q": msg})
	}
	ctx := c.UserContext()
	if tickets {
		list, _, err := h.Support.ListTickets(ctx, support.Filter{View: support.ViewAll, Query: q, Limit: searchLimit})
		if err != nil {
			return err
		}
		g := templates.SearchGroup{Kind: "tickets", Title: "Tickets"}
		for _, t := range list {
			g.Hits = append(g.Hits, templates.SearchHit{Label: t.Number() + " " + t.Subject, Path: "/portal/tickets/" + strconv.FormatInt(t.ID, 10)})
		}
		if len(g.Hits) > 0 {
			page.Groups = append(page.Groups, g)
		}
	}
	if invoices {
		list, _, err := h.Billing.ProviderInvoicePage(ctx, p.ProviderID, billing.ProviderInvoiceFilter{Number: q, Limit: searchLimit})
		if err != nil {
			return err
		}
		g := templates.SearchGroup{Kind: "invoices", Title: "Invoices"}
		for _, inv := range list {
			if inv.Number != nil {
				g.Hits = append(g.Hits, templates.SearchHit{Label: *inv.Number, Detail: inv.Period, Path: "/portal/invoices#invoice-" + strconv.FormatInt(inv.ID, 10)})
			}
		}
		if len(g.Hits) > 0 {
			page.Groups = append(page.Groups, g)
		}
	}
	page.Empty = len(page.Groups) == 0
	return render(fiber.StatusOK, nil)
}
