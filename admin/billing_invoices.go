package admin

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"

	"cardata/billing"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

type invoiceListPage struct {
	Invoices []billing.Invoice
	Periods  []string
	Statuses []string
	Now      time.Time
	// Bulk actions (finance): the chosen period's invoices waiting to be
	// finalized and to be sent, and whether the rows get checkboxes.
	Period         string
	Drafts, Unsent int
	CanBulk        bool
}

func (h *BillingHandlers) listInvoices(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 50)
	f := billing.InvoiceFilter{Period: c.Query("period"), Status: c.Query("status"), Provider: strings.TrimSpace(c.Query("provider")),
		DocType: c.Query("type"), Overdue: c.Query("overdue") == "1", Offset: pager.Offset(), Limit: pager.PerPage,
		Order: billing.InvoiceSort.Parse(c.Query("sort"), c.Query("dir"))}
	if f.Status != "" && !slices.Contains(billing.DisplayStatuses, f.Status) {
		f.Status = ""
	}
	if f.DocType != billing.DocInvoice && f.DocType != billing.DocCreditNote {
		f.DocType = ""
	}
	if _, err := billing.ParsePeriod(f.Period, h.Billing.Location); err != nil {
		f.Period = ""
	}
	list, total, err := h.Billing.ListInvoices(c.UserContext(), f)
	if err != nil {
		return err
	}
	pager.Total = total
	periods, err := h.Billing.Periods(c.UserContext())
	if err != nil {
		return err
	}
	form := map[string]string{"period": f.Period, "status": f.Status, "provider": f.Provider, "type": f.DocType}
	if f.Overdue {
		form["overdue"] = "1"
	}
	data := invoiceListPage{Invoices: list, Periods: periods, Statuses: billing.DisplayStatuses, Now: time.Now(), Period: f.Period,
		CanBulk: h.View.Can(policies.PrincipalFrom(c.UserContext()), fiber.MethodPost, "/admin/billing/bulk/finalize")}
	if data.CanBulk && f.Period != "" {
		for verb, n := range map[string]*int{billing.BulkFinalize: &data.Drafts, billing.BulkSend: &data.Unsent} {
			p, err := h.Billing.PreviewBulk(c.UserContext(), verb, billing.BulkSelection{All: true, Period: f.Period})
			if err != nil {
				return err
			}
			*n = p.Count
		}
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/invoices/index", &templates.Page{Pager: pager, Form: form, Data: data,
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc)})
}

type invoicePage struct {
	Invoice      *billing.Invoice
	Corrects     *billing.Invoice
	CreditNotes  []billing.Invoice
	Payments     []billing.Payment
	Details      []billing.UsageDetail
	SupportItems []billing.SupportItem
	Timeline     []audit.Entry
	Credited     decimal.Decimal
	Open         decimal.Decimal
	Overdue      bool
	Blocker      string // why finalization would be refused, shown on drafts
	CanPreview   bool   // a draft with lines: its PDF preview can be rendered
	Today        string
	Priorities   []string
}

// MinusCredited is what the issued credit notes took off, negative like
// every credit-note amount shown.
func (p *invoicePage) MinusCredited() decimal.Decimal { return p.Credited.Neg() }

func (h *BillingHandlers) loadInvoicePage(c *fiber.Ctx, id int64) (*invoicePage, error) {
	ctx := c.UserContext()
	inv, err := h.Billing.FindInvoice(ctx, id)
	if err != nil {
		return nil, err
	}
	pg := &invoicePage{Invoice: inv, Today: time.Now().In(h.Billing.Location).Format("2006-01-02")}
	if inv.CorrectsInvoiceID != nil {
		if pg.Corrects, err = h.Billing.FindInvoice(ctx, *inv.CorrectsInvoiceID); err != nil {
			return nil, err
		}
	}
	if pg.CreditNotes, err = h.Billing.CreditNotes(ctx, id); err != nil {
		return nil, err
	}
	if pg.Payments, err = h.Billing.Payments(ctx, id); err != nil {
		return nil, err
	}
	if pg.Details, err = h.Billing.UsageDetails(ctx, id); err != nil {
		return nil, err
	}
	if pg.SupportItems, err = h.Billing.InvoiceSupportItems(ctx, id); err != nil {
		return nil, err
	}
	if pg.Timeline, err = audit.ForObject(ctx, h.Billing.DB, "invoice", strconv.FormatInt(id, 10)); err != nil {
		return nil, err
	}
	if pg.Credited, err = h.Billing.Credited(ctx, id); err != nil {
		return nil, err
	}
	pg.Open = inv.Open(pg.Credited)
	pg.CanPreview = inv.Status == billing.StatusDraft && len(inv.Lines) > 0
	pg.Overdue = inv.Overdue(time.Now())
	if inv.Status == billing.StatusDraft && !inv.IsCreditNote() {
		if _, err := billing.TaxFor(inv.Buyer()); err != nil {
			pg.Blocker = templates.ErrorText(c, err)
		}
	}
	return pg, nil
}

func (h *BillingHandlers) renderInvoice(c *fiber.Ctx, status int, id int64, fieldErrs, form map[string]string) error {
	pg, err := h.loadInvoicePage(c, id)
	if err != nil {
		return err
	}
	return h.View.Render(c, status, "admin/billing/invoices/show", &templates.Page{Errors: fieldErrs, Form: form, Data: pg})
}

func (h *BillingHandlers) showInvoice(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	return h.renderInvoice(c, fiber.StatusOK, id, nil, nil)
}

type recordsPage struct {
	Invoice *billing.Invoice
	Line    *billing.Line
	Records []billing.LedgerRecord
}

func (h *BillingHandlers) invoiceRecords(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	inv, err := h.Billing.FindInvoice(c.UserContext(), id)
	if err != nil {
		return err
	}
	var line *billing.Line
	lineID, _ := strconv.ParseInt(c.Query("line"), 10, 64)
	for i := range inv.Lines {
		if inv.Lines[i].ID == lineID {
			line = &inv.Lines[i]
		}
	}
	if line == nil {
		lineID = 0
	}
	pager := templates.NewPager(c, 100)
	recs, total, err := h.Billing.LedgerPage(c.UserContext(), id, lineID, pager.Offset(), pager.PerPage)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "admin/billing/invoices/records", &templates.Page{Pager: pager,
		Data: recordsPage{Invoice: inv, Line: line, Records: recs}})
}

func (h *BillingHandlers) download(format string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := templates.PathID(c)
		if err != nil {
			return err
		}
		inv, err := h.Billing.FindInvoice(c.UserContext(), id)
		if err != nil {
			return err
		}
		d, err := h.Billing.Document(c.UserContext(), id, format)
		if err != nil {
			return err
		}
		name, ctype := d.File(inv)
		templates.Attachment(c, name, ctype)
		c.Set("Digest", "sha-256="+d.SHA256)
		return c.Send(d.Content)
	}
}

// preview is the PDF of a draft as it would be finalized now, marked as a
// draft and without a number (billing.PreviewPDF); shown in the browser.
func (h *BillingHandlers) preview(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	b, err := h.Billing.PreviewPDF(c.UserContext(), id)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/pdf")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`inline; filename="draft-%d-preview.pdf"`, id))
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(b)
}

func invoicePath(id int64) string { return "/admin/billing/invoices/" + strconv.FormatInt(id, 10) }

// invoiceAction runs one form action on an invoice: invalid input re-renders
// the invoice page with the field errors (under the form's names where
// formNames renames the domain's), any other error comes back as a flash,
// and success flashes msg and redirects to the invoice, or to the one the
// action returns.
func (h *BillingHandlers) invoiceAction(c *fiber.Ctx, fields []string, formNames map[string]string,
	do func(ctx context.Context, id int64, form map[string]string) (msg string, next int64, err error)) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	form := formValues(c, fields...)
	msg, next, err := do(c.UserContext(), id, form)
	if invalid(err) {
		fe := templates.FieldErrors(c, err)
		if formNames != nil {
			renamed := map[string]string{}
			for from, to := range formNames {
				renamed[to] = fe[from]
			}
			fe = renamed
		}
		return h.renderInvoice(c, fiber.StatusUnprocessableEntity, id, fe, form)
	}
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", msg)
	if next == 0 {
		next = id
	}
	return c.Redirect(invoicePath(next), fiber.StatusSeeOther)
}

func (h *BillingHandlers) finalize(c *fiber.Ctx) error {
	return h.invoiceAction(c, nil, nil, func(ctx context.Context, id int64, _ map[string]string) (string, int64, error) {
		inv, err := h.Billing.Finalize(ctx, id)
		if err != nil {
			return "", 0, err
		}
		lang := templates.LangOf(c)
		return i18n.T(lang, "{{.Title}} {{.Number}} is final; its PDF and e-invoice are stored.", "Title", i18n.T(lang, map[bool]string{true: "Credit note", false: "Invoice"}[inv.IsCreditNote()]), "Number", *inv.Number), 0, nil
	})
}

func (h *BillingHandlers) send(c *fiber.Ctx) error {
	return h.invoiceAction(c, nil, nil, func(ctx context.Context, id int64, _ map[string]string) (string, int64, error) {
		inv, err := h.Billing.Send(ctx, id)
		if err != nil {
			return "", 0, err
		}
		return i18n.T(templates.LangOf(c), "{{.Number}} was e-mailed to {{.Email}} with the PDF and the XML attached.", "Number", *inv.Number, "Email", inv.BuyerEmail), 0, nil
	})
}

func (h *BillingHandlers) bookPayment(c *fiber.Ctx) error {
	return h.invoiceAction(c, []string{"amount", "received_on", "reference"}, nil,
		func(ctx context.Context, id int64, form map[string]string) (string, int64, error) {
			pay, err := h.Billing.BookPayment(ctx, id, billing.NewPayment{Amount: form["amount"], ReceivedOn: form["received_on"], Reference: form["reference"]})
			if err != nil {
				return "", 0, err
			}
			z := i18n.Locale{Lang: templates.LangOf(c)}
			inv, err := h.Billing.FindInvoice(ctx, id)
			if err != nil {
				return "", 0, err
			}
			if open := inv.OpenAmount(); open.IsPositive() {
				return z.T("Payment of {{.Amount}} booked; {{.Open}} is still open.", "Amount", z.Money(pay.Amount), "Open", z.Money(open)), 0, nil
			}
			return z.T("Payment of {{.Amount}} booked; the invoice is paid.", "Amount", z.Money(pay.Amount)), 0, nil
		})
}

// removeLine takes a manual line off a draft (after the confirmation page).
func (h *BillingHandlers) removeLine(c *fiber.Ctx) error {
	lineID, err := strconv.ParseInt(c.Params("line"), 10, 64)
	if err != nil || lineID <= 0 {
		return errs.New(errs.NotFound, "not_found", "no such line")
	}
	return h.invoiceAction(c, nil, nil, func(ctx context.Context, id int64, _ map[string]string) (string, int64, error) {
		l, err := h.Billing.RemoveManualLine(ctx, id, lineID)
		if err != nil {
			return "", 0, err
		}
		return i18n.T(templates.LangOf(c), "Line {{.Position}} “{{.Description}}” was removed.", "Position", l.Position, "Description", l.Description), 0, nil
	})
}

func (h *BillingHandlers) addLine(c *fiber.Ctx) error {
	return h.invoiceAction(c, []string{"description", "amount", "reason"}, nil,
		func(ctx context.Context, id int64, form map[string]string) (string, int64, error) {
			_, err := h.Billing.AddManualLine(ctx, id, billing.ManualLine{Description: form["description"], Amount: form["amount"], Reason: form["reason"]})
			return "Line added.", 0, err
		})
}

func (h *BillingHandlers) regenerate(c *fiber.Ctx) error {
	return h.invoiceAction(c, nil, nil, func(ctx context.Context, id int64, _ map[string]string) (string, int64, error) {
		_, err := h.Billing.Regenerate(ctx, id)
		return "The draft was rated again from the ledger (manual lines kept).", 0, err
	})
}

func (h *BillingHandlers) discard(c *fiber.Ctx) error {
	return h.invoiceAction(c, []string{"discard_reason"}, map[string]string{"reason": "discard_reason"},
		func(ctx context.Context, id int64, form map[string]string) (string, int64, error) {
			err := h.Billing.Discard(ctx, id, form["discard_reason"])
			return "The draft was discarded; its deliveries are billable again.", 0, err
		})
}

func (h *BillingHandlers) creditNote(c *fiber.Ctx) error {
	return h.invoiceAction(c, []string{"credit_reason", "credit_amount"}, map[string]string{"reason": "credit_reason", "amount": "credit_amount"},
		func(ctx context.Context, id int64, form map[string]string) (string, int64, error) {
			cn, err := h.Billing.RequestCreditNote(ctx, id, billing.CreditRequest{Reason: form["credit_reason"], Amount: form["credit_amount"]})
			if err != nil {
				return "", 0, err
			}
			return "Credit note drafted. A second finance user reviews and issues it.", cn.ID, nil
		})
}
