package portal

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"

	"cardata/billing"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
)

// InvoiceHandlers are the providers' own invoices in the partner portal
// (the sent e-mails link here); the ownership check is in billing's query.
type InvoiceHandlers struct {
	View    *templates.View
	Billing *billing.Service
}

// Routes mounts the pages on r (the /portal group).
func (h *InvoiceHandlers) Routes(r fiber.Router) {
	r.Get("/invoices", h.list)
	r.Get("/invoices/:id/pdf", h.document("pdf"))
	r.Get("/invoices/:id/xml", h.document("ubl"))
}

// InvoiceNav is the invoices' entry in the portal navigation.
func InvoiceNav() templates.NavItem {
	return templates.NavItem{Label: "Invoices", Path: "/portal/invoices"}
}

func invoiceProvider(c *fiber.Ctx) (int64, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindProvider || p.ProviderID == 0 {
		return 0, errs.New(errs.Forbidden, "forbidden", "provider users only")
	}
	return p.ProviderID, nil
}

// list lists the signed-in provider's finalized invoices and credit notes
// with their documents: each invoice's payments and open amount (gross
// minus payments minus issued credit notes), "partially paid" when money
// arrived but some is still open, credit notes with negative amounts.
func (h *InvoiceHandlers) list(c *fiber.Ctx) error {
	pid, err := invoiceProvider(c)
	if err != nil {
		return err
	}
	list, err := h.Billing.ProviderInvoices(c.UserContext(), pid)
	if err != nil {
		return err
	}
	open := decimal.Zero
	for i := range list {
		if a := list[i].OpenAmount(); a.IsPositive() {
			open = open.Add(a)
		}
	}
	return h.View.Render(c, fiber.StatusOK, "portal/invoices/index", &templates.Page{Data: struct {
		Invoices []billing.Invoice
		Open     decimal.Decimal
		Now      time.Time
	}{list, open, time.Now()}})
}

func (h *InvoiceHandlers) document(format string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		pid, err := invoiceProvider(c)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(c.Params("id"), 10, 64)
		if err != nil || id <= 0 {
			return errs.New(errs.NotFound, "not_found", "no such invoice")
		}
		inv, err := h.Billing.FindProviderInvoice(c.UserContext(), pid, id)
		if err != nil {
			return err
		}
		d, err := h.Billing.Document(c.UserContext(), inv.ID, format)
		if err != nil {
			return err
		}
		name, ctype := d.File(inv)
		templates.Attachment(c, name, ctype)
		c.Set("Digest", "sha-256="+d.SHA256)
		return c.Send(d.Content)
	}
}
