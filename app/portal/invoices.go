package portal

import (
	"context"
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
	r.Get("/invoices/export.csv", h.export)
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
	o := billing.ProviderInvoiceSort.Parse(c.Query("sort"), c.Query("dir"))
	list, err := h.Billing.ProviderInvoicesSorted(c.UserContext(), pid, o)
	if err != nil {
		return err
	}
	open := decimal.Zero
	for i := range list {
		if a := list[i].OpenAmount(); a.IsPositive() {
			open = open.Add(a)
		}
	}
	return h.View.Render(c, fiber.StatusOK, "portal/invoices/index", &templates.Page{Sort: templates.NewSort(c, o.Key, o.Desc), Data: struct {
		Invoices []billing.Invoice
		Open     decimal.Decimal
		Now      time.Time
	}{list, open, time.Now()}})
}

// export downloads the provider's own invoices and credit notes in the
// page's order as CSV (credit notes negative, as on the page).
func (h *InvoiceHandlers) export(c *fiber.Ctx) error {
	pid, err := invoiceProvider(c)
	if err != nil {
		return err
	}
	o := billing.ProviderInvoiceSort.Parse(c.Query("sort"), c.Query("dir"))
	return templates.CSV(c, "cardata-invoices.csv", []string{"number", "type", "issue_date", "due_date", "period", "net", "vat", "gross",
		"paid", "credited", "open", "status", "currency"},
		func(ctx context.Context, emit func([]string) error) error {
			list, err := h.Billing.ProviderInvoicesSorted(ctx, pid, o)
			if err != nil {
				return err
			}
			for i := range list {
				d := &list[i]
				typ, paid, credited, open := "invoice", d.PaidTotal.StringFixed(2), d.Credited.StringFixed(2), d.OpenAmount().StringFixed(2)
				if d.IsCreditNote() {
					typ, paid, credited, open = "credit_note", "", "", ""
				}
				number := ""
				if d.Number != nil {
					number = *d.Number
				}
				if err := emit([]string{number, typ, templates.CSVDate(d.IssueDate), templates.CSVDate(d.DueDate), d.Period,
					d.SignedNet().StringFixed(2), d.SignedTax().StringFixed(2), d.SignedGross().StringFixed(2),
					paid, credited, open, d.DisplayStatus(), d.Currency}); err != nil {
					return err
				}
			}
			return nil
		})
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
