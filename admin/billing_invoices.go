package admin

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"

	"cardata/billing"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates"
)

type invoiceListPage struct {
	Invoices []billing.Invoice
	Periods  []string
	Statuses []string
	Now      time.Time
}

func (h *BillingHandlers) listInvoices(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 50)
	f := billing.InvoiceFilter{Period: c.Query("period"), Status: c.Query("status"), Provider: strings.TrimSpace(c.Query("provider")),
		DocType: c.Query("type"), Overdue: c.Query("overdue") == "1", Offset: pager.Offset(), Limit: pager.PerPage}
	if f.Status != "" && !slices.Contains(billing.Statuses, f.Status) {
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
	return h.View.Render(c, fiber.StatusOK, "admin/billing/invoices/index", &templates.Page{Pager: pager, Form: form,
		Data: invoiceListPage{Invoices: list, Periods: periods, Statuses: billing.Statuses, Now: time.Now()}})
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
	Today        string
	Priorities   []string
}

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
	pg.Overdue = inv.Overdue(time.Now())
	if inv.Status == billing.StatusDraft && !inv.IsCreditNote() {
		if _, err := billing.TaxFor(inv.Buyer()); err != nil {
			pg.Blocker = errs.As(err).Message
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
	id, err := pathID(c)
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
	id, err := pathID(c)
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
		id, err := pathID(c)
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
		ext, ctype := "pdf", "application/pdf"
		if format == "ubl" {
			ext, ctype = "xml", "application/xml"
		}
		c.Set(fiber.HeaderContentType, ctype)
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s.%s"`, inv.NumberOrDraft(), ext))
		c.Set("Digest", "sha-256="+d.SHA256)
		return c.Send(d.Content)
	}
}

func invoicePath(id int64) string { return "/admin/billing/invoices/" + strconv.FormatInt(id, 10) }

func (h *BillingHandlers) finalize(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	inv, err := h.Billing.Finalize(c.UserContext(), id)
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", fmt.Sprintf("%s %s is final; its PDF and e-invoice are stored.", inv.Title(), *inv.Number))
	return c.Redirect(invoicePath(id), fiber.StatusSeeOther)
}

func (h *BillingHandlers) send(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	inv, err := h.Billing.Send(c.UserContext(), id)
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", fmt.Sprintf("%s was e-mailed to %s with the PDF and the XML attached.", *inv.Number, inv.BuyerEmail))
	return c.Redirect(invoicePath(id), fiber.StatusSeeOther)
}

func (h *BillingHandlers) bookPayment(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	form := formValues(c, "amount", "received_on", "reference")
	_, err = h.Billing.BookPayment(c.UserContext(), id, billing.NewPayment{Amount: form["amount"], ReceivedOn: form["received_on"], Reference: form["reference"]})
	if invalid(err) {
		return h.renderInvoice(c, fiber.StatusUnprocessableEntity, id, errs.FieldMap(err), form)
	}
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", "Payment of "+form["amount"]+" EUR booked.")
	return c.Redirect(invoicePath(id), fiber.StatusSeeOther)
}

func (h *BillingHandlers) addLine(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	form := formValues(c, "description", "amount", "reason")
	_, err = h.Billing.AddManualLine(c.UserContext(), id, billing.ManualLine{Description: form["description"], Amount: form["amount"], Reason: form["reason"]})
	if invalid(err) {
		return h.renderInvoice(c, fiber.StatusUnprocessableEntity, id, errs.FieldMap(err), form)
	}
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", "Line added.")
	return c.Redirect(invoicePath(id), fiber.StatusSeeOther)
}

func (h *BillingHandlers) regenerate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if _, err := h.Billing.Regenerate(c.UserContext(), id); err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", "The draft was rated again from the ledger (manual lines kept).")
	return c.Redirect(invoicePath(id), fiber.StatusSeeOther)
}

func (h *BillingHandlers) discard(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	form := formValues(c, "discard_reason")
	err = h.Billing.Discard(c.UserContext(), id, form["discard_reason"])
	if invalid(err) {
		return h.renderInvoice(c, fiber.StatusUnprocessableEntity, id, map[string]string{"discard_reason": errs.FieldMap(err)["reason"]}, form)
	}
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", "The draft was discarded; its deliveries are billable again.")
	return c.Redirect(invoicePath(id), fiber.StatusSeeOther)
}

func (h *BillingHandlers) creditNote(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	form := formValues(c, "credit_reason", "credit_amount")
	cn, err := h.Billing.RequestCreditNote(c.UserContext(), id, billing.CreditRequest{Reason: form["credit_reason"], Amount: form["credit_amount"]})
	if invalid(err) {
		fe := errs.FieldMap(err)
		return h.renderInvoice(c, fiber.StatusUnprocessableEntity, id, map[string]string{"credit_reason": fe["reason"], "credit_amount": fe["amount"]}, form)
	}
	if err != nil {
		return h.flashErr(c, invoicePath(id), err)
	}
	templates.SetFlash(c, "success", "Credit note drafted. A second finance user reviews and issues it.")
	return c.Redirect(invoicePath(cn.ID), fiber.StatusSeeOther)
}
