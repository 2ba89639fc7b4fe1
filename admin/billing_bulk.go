package admin

import (
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/templates"
	"cardata/templates/i18n"
)

// Finance's bulk actions on the invoice list: finalize or send the ticked
// documents, or all waiting invoices of a period, after a confirmation
// page naming how many, the gross total and the numbers range. The result
// page lists each document done, skipped (already done) or failed with its
// reason (billing.BulkAction).

// bulkVerb is the path's verb, or "" when it is none.
func bulkVerb(c *fiber.Ctx) string {
	switch v := c.Params("verb"); v {
	case billing.BulkFinalize, billing.BulkSend:
		return v
	}
	return ""
}

// bulkSelection reads the ticked ids (ids) or all=1 with the period.
func bulkSelection(c *fiber.Ctx) billing.BulkSelection {
	sel := billing.BulkSelection{All: c.FormValue("all") == "1", Period: c.FormValue("period")}
	for _, v := range formList(c, "ids") {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
			sel.IDs = append(sel.IDs, id)
		}
	}
	return sel
}

func bulkBack(sel billing.BulkSelection) string {
	if sel.Period == "" {
		return "/admin/billing/invoices"
	}
	return "/admin/billing/invoices?period=" + url.QueryEscape(sel.Period)
}

func (h *BillingHandlers) confirmBulk(c *fiber.Ctx) (confirmation, error) {
	verb := bulkVerb(c)
	if verb == "" {
		return proceed, nil // the handler answers 404
	}
	sel := bulkSelection(c)
	p, err := h.Billing.PreviewBulk(c.UserContext(), verb, sel)
	if err != nil || p.Count == 0 {
		return proceed, nil // the handler says what is wrong, or that all were done already
	}
	z := i18n.Locale{Lang: templates.LangOf(c)}
	args := []any{"N", strconv.Itoa(p.Count), "Amount", z.Money(p.Gross), "First", p.First, "Last", p.Last,
		"Skipped", strconv.Itoa(p.Skipped), "CreditNotes", strconv.Itoa(p.CreditNotes)}
	d := confirmation{Args: args, Back: bulkBack(sel)}
	if verb == billing.BulkFinalize {
		d.Title, d.Yes = "Finalize {{.N}} drafts ({{.Amount}} gross)?", "Finalize {{.N}} drafts"
		d.Effect = "Each draft gets the next number of the series, its PDF and e-invoice are stored, and it can no longer be changed: only a credit note corrects it. The invoices get the numbers {{.First}} to {{.Last}}, in this order, if none fails. Each is finalized on its own: one that fails stops no other."
		if p.First == "" {
			d.Effect = "Each draft gets the next number of its series, its PDF and e-invoice are stored, and it can no longer be changed. Each is finalized on its own: one that fails stops no other."
		}
	} else {
		d.Title, d.Yes = "Send {{.N}} documents ({{.Amount}} gross)?", "Send {{.N}} e-mails"
		d.Effect = "The documents {{.First}} to {{.Last}} are e-mailed to their buyers with the PDF and the XML attached. An e-mail cannot be called back. Each is sent on its own: one that fails stops no other."
	}
	// The effect is put together from translated sentences (Ask leaves
	// a text that is no catalog id as it is).
	d.Effect = z.T(d.Effect, args...)
	if p.Skipped > 0 {
		d.Effect += " " + z.T("{{.Skipped}} of the selected are already done and are skipped.", "Skipped", strconv.Itoa(p.Skipped))
	}
	if p.CreditNotes > 0 && verb == billing.BulkFinalize {
		d.Effect += " " + z.T("{{.CreditNotes}} of them are credit notes: each is issued only when you did not draft it.", "CreditNotes", strconv.Itoa(p.CreditNotes))
	}
	return d, nil
}

type bulkPage struct {
	Result *billing.BulkResult
	Back   string
}

func (h *BillingHandlers) bulk(c *fiber.Ctx) error {
	verb := bulkVerb(c)
	if verb == "" {
		return fiber.ErrNotFound
	}
	sel := bulkSelection(c)
	res, err := h.Billing.BulkAction(c.UserContext(), verb, sel)
	if err != nil {
		return h.flashErr(c, bulkBack(sel), err)
	}
	title := "Finalized invoices"
	if verb == billing.BulkSend {
		title = "Sent invoices"
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/invoices/bulk", &templates.Page{Title: title,
		Data: bulkPage{Result: res, Back: bulkBack(sel)}})
}
