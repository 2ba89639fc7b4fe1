package admin

import (
	"context"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"

	"cardata/billing"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// BillingHandlers are finance's pages: the price list, invoice runs with
// live progress, invoices through their life cycle, and the seller
// identity. Finance may act; auditors read (policies/rules/60_billing.csv).
type BillingHandlers struct {
	View    *templates.View
	Billing *billing.Service
	// Shutdown stops runs started from the UI when the app stops (they
	// outlive the request that started them).
	Shutdown context.Context
}

// Routes mounts the finance pages on r (the /admin group).
func (h *BillingHandlers) Routes(r fiber.Router) {
	r.Get("/billing", func(c *fiber.Ctx) error { return c.Redirect("/admin/billing/invoices", fiber.StatusSeeOther) })
	r.Get("/billing/revenue", h.revenue)
	r.Get("/billing/export.csv", h.exportCSV)
	r.Get("/billing/prices", h.listPrices)
	r.Get("/billing/prices/new", h.newPrices)
	r.Post("/billing/prices", h.createPrices)
	r.Get("/billing/prices/:id", h.showPrices)
	r.Post("/billing/prices/:id/withdraw", h.View.Confirm(h.confirmWithdrawPrices), h.withdrawPrices)
	r.Get("/billing/runs", h.listRuns)
	r.Post("/billing/runs", h.startRun)
	r.Get("/billing/runs/:id", h.showRun)
	r.Get("/billing/runs/:id/progress", h.runProgress)
	r.Get("/billing/invoices", h.listInvoices)
	r.Post("/billing/bulk/:verb", h.View.Confirm(h.confirmBulk), h.bulk)
	r.Get("/billing/invoices/:id", h.showInvoice)
	r.Get("/billing/invoices/:id/records", h.invoiceRecords)
	r.Get("/billing/invoices/:id/pdf", h.download("pdf"))
	r.Get("/billing/invoices/:id/xml", h.download("ubl"))
	r.Post("/billing/invoices/:id/finalize", h.View.Confirm(h.confirmInvoice("finalize")), h.finalize)
	r.Post("/billing/invoices/:id/send", h.View.Confirm(h.confirmInvoice("send")), h.send)
	r.Post("/billing/invoices/:id/payments", h.bookPayment)
	r.Get("/billing/invoices/:id/preview", h.preview)
	r.Post("/billing/invoices/:id/lines", h.addLine)
	r.Post("/billing/invoices/:id/lines/:line/delete", h.View.Confirm(h.confirmRemoveLine), h.removeLine)
	r.Post("/billing/invoices/:id/regenerate", h.regenerate)
	r.Post("/billing/invoices/:id/discard", h.View.Confirm(h.confirmInvoice("discard")), h.discard)
	r.Post("/billing/invoices/:id/credit-notes", h.View.Confirm(h.confirmInvoice("credit")), h.creditNote)
	r.Get("/billing/seller", h.seller)
	r.Post("/billing/seller", h.updateSeller)
}

// BillingNav is the finance section of the navigation.
func BillingNav() []templates.NavItem {
	return []templates.NavItem{
		{Label: "Invoices", Path: "/admin/billing/invoices"},
		{Label: "Invoice runs", Path: "/admin/billing/runs"},
		{Label: "Price list", Path: "/admin/billing/prices"},
		{Label: "Revenue", Path: "/admin/billing/revenue"},
		{Label: "Seller identity", Path: "/admin/billing/seller"},
	}
}

func (h *BillingHandlers) flashErr(c *fiber.Ctx, back string, err error) error {
	e := errs.As(err)
	if e.Kind == errs.Internal || e.Kind == errs.NotFound {
		return err
	}
	tr := templates.Translator(templates.LangOf(c))
	msg := e.Text(tr)
	if len(e.Fields) > 0 {
		var parts []string
		for _, f := range e.Fields {
			parts = append(parts, f.Text(tr))
		}
		msg = strings.Join(parts, "; ")
	}
	templates.SetFlash(c, "error", msg)
	return c.Redirect(back, fiber.StatusSeeOther)
}

// ---- price list ----

type pricesPage struct {
	Versions []billing.Version
	Version  *billing.Version
	Now      time.Time
}

func (h *BillingHandlers) listPrices(c *fiber.Ctx) error {
	pl, err := h.Billing.PriceList(c.UserContext())
	if err != nil {
		return err
	}
	vs := []billing.Version(pl)
	order := billing.VersionSort.Parse(c.Query("sort"), c.Query("dir"))
	billing.SortVersions(vs, order)
	return h.View.Render(c, fiber.StatusOK, "admin/billing/prices/index", &templates.Page{Sort: templates.NewSort(c, order.Key, order.Desc),
		Data: pricesPage{Versions: vs, Now: time.Now()}})
}

func (h *BillingHandlers) showPrices(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	v, err := h.Billing.FindVersion(c.UserContext(), id)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/prices/show", &templates.Page{Data: pricesPage{Version: v, Now: time.Now()}})
}

var priceFields = []string{"valid_from", "note", "support_case_p1", "support_case_p2", "support_case_p3", "support_case_p4", "support_time"}

// tierItems are the graduated items the price form edits as rows.
var tierItems = []struct {
	Field string
	Item  billing.Item
	Label string
}{
	{"telematics", billing.ItemTelematics, "Telematics deliveries: tiers"},
	{"push", billing.ItemPush, "Push deliveries: tiers"},
}

// maxTierRows bounds the rows one item's tiers may have in the form.
const maxTierRows = 20

// tierRow is one row of the tier editor with its errors.
type tierRow struct {
	Index                 int
	From, Price           string
	FromError, PriceError string
	FromField, PriceField string
}

// tierGroup is one item's tier editor.
type tierGroup struct {
	Field, Label string
	Rows         []tierRow
	Error        string
	CanAdd       bool
}

type priceFormPage struct {
	Tiers []tierGroup
}

func tierGroups(rows map[string][]billing.TierRow, fieldErrs map[string]string) []tierGroup {
	var out []tierGroup
	for _, it := range tierItems {
		g := tierGroup{Field: it.Field, Label: it.Label, Error: fieldErrs[it.Field], CanAdd: len(rows[it.Field]) < maxTierRows}
		for i, r := range rows[it.Field] {
			ff, pf := billing.TierFieldFrom(it.Field, i), billing.TierFieldPrice(it.Field, i)
			g.Rows = append(g.Rows, tierRow{Index: i, From: r.From, Price: r.Price, FromField: ff, PriceField: pf,
				FromError: fieldErrs[ff], PriceError: fieldErrs[pf]})
		}
		out = append(out, g)
	}
	return out
}

// tierRowsFromForm reads the rows of each tier editor (the count of rows is
// the hidden field FIELD_rows, bounded).
func tierRowsFromForm(c *fiber.Ctx) map[string][]billing.TierRow {
	out := map[string][]billing.TierRow{}
	for _, it := range tierItems {
		n, _ := strconv.Atoi(c.FormValue(it.Field + "_rows"))
		n = max(0, min(n, maxTierRows))
		rows := make([]billing.TierRow, 0, n)
		for i := 0; i < n; i++ {
			rows = append(rows, billing.TierRow{From: c.FormValue(billing.TierFieldFrom(it.Field, i)), Price: c.FormValue(billing.TierFieldPrice(it.Field, i))})
		}
		out[it.Field] = rows
	}
	return out
}

func (h *BillingHandlers) renderPriceForm(c *fiber.Ctx, status int, form map[string]string, rows map[string][]billing.TierRow, fieldErrs map[string]string) error {
	return h.View.Render(c, status, "admin/billing/prices/form", &templates.Page{Form: form, Errors: fieldErrs,
		Data: priceFormPage{Tiers: tierGroups(rows, fieldErrs)}})
}

func (h *BillingHandlers) newPrices(c *fiber.Ctx) error {
	form := map[string]string{}
	rows := map[string][]billing.TierRow{}
	pl, err := h.Billing.PriceList(c.UserContext())
	if err != nil {
		return err
	}
	// Start from the latest version's prices, effective the 1st of next month.
	if len(pl) > 0 {
		v := pl[len(pl)-1]
		for _, it := range tierItems {
			rows[it.Field] = billing.TierRows(v.Tiers(it.Item))
		}
		for _, p := range billing.Priorities {
			if price, ok := v.Price(billing.ItemSupportCase, p); ok {
				form["support_case_"+strings.ToLower(p)] = price.StringFixed(2)
			}
		}
		if price, ok := v.Price(billing.ItemSupportTime, ""); ok {
			form["support_time"] = price.StringFixed(2)
		}
	}
	for _, it := range tierItems {
		if len(rows[it.Field]) == 0 {
			rows[it.Field] = []billing.TierRow{{From: "1"}}
		}
	}
	loc := h.Billing.Location
	now := time.Now().In(loc)
	form["valid_from"] = time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, loc).Format("2006-01-02")
	return h.renderPriceForm(c, fiber.StatusOK, form, rows, nil)
}

// editTierRows applies a tier editor button ("add telematics", "remove
// push 2"): the form comes back with a row more or less and nothing saved,
// so rows are added and removed without JavaScript.
func editTierRows(rows map[string][]billing.TierRow, edit string) bool {
	parts := strings.Fields(edit)
	if len(parts) < 2 {
		return false
	}
	field := parts[1]
	if _, ok := rows[field]; !ok {
		return false
	}
	switch {
	case parts[0] == "add" && len(parts) == 2:
		if len(rows[field]) < maxTierRows {
			rows[field] = append(rows[field], billing.TierRow{})
		}
		return true
	case parts[0] == "remove" && len(parts) == 3:
		i, err := strconv.Atoi(parts[2])
		if err == nil && i >= 0 && i < len(rows[field]) {
			rows[field] = append(rows[field][:i:i], rows[field][i+1:]...)
		}
		return true
	}
	return false
}

func (h *BillingHandlers) createPrices(c *fiber.Ctx) error {
	form := formValues(c, priceFields...)
	rows := tierRowsFromForm(c)
	if edit := c.FormValue("edit"); edit != "" && editTierRows(rows, edit) {
		return h.renderPriceForm(c, fiber.StatusOK, form, rows, nil)
	}
	v := &errs.Validation{}
	in := billing.NewVersion{Note: form["note"], SupportCase: map[string]decimal.Decimal{}}
	if d, err := time.ParseInLocation("2006-01-02", strings.TrimSpace(form["valid_from"]), h.Billing.Location); err != nil {
		v.Add("valid_from", "valid_from_invalid", "give the first day the prices apply (YYYY-MM-DD); they apply from 00:00 Berlin time")
	} else {
		in.ValidFrom = d
	}
	in.Telematics = billing.ParseTierRows(v, "telematics", rows["telematics"])
	in.Push = billing.ParseTierRows(v, "push", rows["push"])
	for _, p := range billing.Priorities {
		f := "support_case_" + strings.ToLower(p)
		if strings.TrimSpace(form[f]) == "" {
			continue // the service names the missing price
		}
		if d, err := billing.ParsePrice(form[f]); err != nil {
			v.Add(f, "price_invalid", "%s", err.Error())
		} else {
			in.SupportCase[p] = d
		}
	}
	if d, err := billing.ParsePrice(form["support_time"]); err != nil {
		v.Add("support_time", "price_invalid", "%s", err.Error())
	} else {
		in.SupportTime = d
	}
	if err := v.Err(); err == nil {
		var ver *billing.Version
		ver, err = h.Billing.CreateVersion(c.UserContext(), in)
		if err == nil {
			templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "The new price list version is published; it applies from {{.Date}}.", "Date", i18n.Locale{Lang: templates.LangOf(c)}.Date(ver.ValidFrom)))
			return c.Redirect("/admin/billing/prices/"+strconv.FormatInt(ver.ID, 10), fiber.StatusSeeOther)
		}
		if !invalid(err) {
			return err
		}
		v.Fields = append(v.Fields, errs.As(err).Fields...)
	}
	return h.renderPriceForm(c, fiber.StatusUnprocessableEntity, form, rows, templates.FieldErrors(c, v.Err()))
}

func (h *BillingHandlers) withdrawPrices(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if err := h.Billing.WithdrawVersion(c.UserContext(), id); err != nil {
		return h.flashErr(c, "/admin/billing/prices/"+strconv.FormatInt(id, 10), err)
	}
	templates.SetFlash(c, "success", "The future version was withdrawn.")
	return c.Redirect("/admin/billing/prices", fiber.StatusSeeOther)
}

// ---- invoice runs ----

type runsPage struct {
	Runs    []billing.InvoiceRun
	Run     *billing.InvoiceRun
	Periods []string
	Panel   template.HTML // the progress fragment, rendered once for the page
}

func lastPeriods(loc *time.Location, n int) []string {
	p := billing.PeriodOf(time.Now(), loc).Prev()
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, p.String())
		p = p.Prev()
	}
	return out
}

func (h *BillingHandlers) listRuns(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 25)
	order := billing.RunSort.Parse(c.Query("sort"), c.Query("dir"))
	runs, total, err := h.Billing.ListRunsSorted(c.UserContext(), order, pager.Offset(), pager.PerPage)
	if err != nil {
		return err
	}
	pager.Total = total
	periods := lastPeriods(h.Billing.Location, 12)
	return h.View.Render(c, fiber.StatusOK, "admin/billing/runs/index", &templates.Page{Pager: pager,
		Sort: templates.NewSort(c, order.Key, order.Desc),
		Form: map[string]string{"period": periods[0]}, Data: runsPage{Runs: runs, Periods: periods}})
}

func (h *BillingHandlers) startRun(c *fiber.Ctx) error {
	period := strings.TrimSpace(c.FormValue("period"))
	handle, err := h.Billing.StartRun(c.UserContext(), h.Shutdown, period, billing.RunOptions{Trigger: billing.TriggerUI})
	if invalid(err) {
		runs, total, lerr := h.Billing.ListRuns(c.UserContext(), 0, 25)
		if lerr != nil {
			return lerr
		}
		e := errs.As(err)
		fields := templates.FieldErrors(c, err)
		if len(fields) == 0 {
			fields = map[string]string{"period": templates.ErrorText(c, e)}
		}
		pager := templates.NewPager(c, 25)
		pager.Total = total
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "admin/billing/runs/index", &templates.Page{Pager: pager,
			Errors: fields, Form: map[string]string{"period": period},
			Data: runsPage{Runs: runs, Periods: lastPeriods(h.Billing.Location, 12)}})
	}
	if err != nil {
		return h.flashErr(c, "/admin/billing/runs", err)
	}
	return c.Redirect("/admin/billing/runs/"+strconv.FormatInt(handle.RunID, 10), fiber.StatusSeeOther)
}

func (h *BillingHandlers) loadRun(c *fiber.Ctx) (*billing.InvoiceRun, error) {
	id, err := templates.PathID(c)
	if err != nil {
		return nil, err
	}
	return h.Billing.FindRun(c.UserContext(), id)
}

func (h *BillingHandlers) showRun(c *fiber.Ctx) error {
	r, err := h.loadRun(c)
	if err != nil {
		return err
	}
	// The panel is the same fragment the page polls (admin/billing/runs/progress).
	panel, err := h.View.RenderString("admin/billing/runs/progress", &templates.Page{Lang: templates.LangOf(c), Data: runsPage{Run: r}})
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/runs/show", &templates.Page{Data: runsPage{Run: r, Panel: template.HTML(panel)}})
}

// runProgress is the fragment the run page polls (data-poll).
func (h *BillingHandlers) runProgress(c *fiber.Ctx) error {
	r, err := h.loadRun(c)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/runs/progress", &templates.Page{Data: runsPage{Run: r}})
}

// ---- revenue, export ----

func (h *BillingHandlers) revenue(c *fiber.Ctx) error {
	r, err := h.Billing.RevenueReport(c.UserContext())
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/revenue", &templates.Page{Data: r})
}

func (h *BillingHandlers) exportCSV(c *fiber.Ctx) error {
	period := c.Query("period")
	b, err := h.Billing.ExportCSV(c.UserContext(), period, templates.LangOf(c))
	if err != nil {
		return err
	}
	name := "cardata-invoices.csv"
	if period != "" {
		name = "cardata-invoices-" + period + ".csv"
	}
	templates.Attachment(c, name, "text/csv; charset=utf-8")
	return c.Send(b)
}

// ---- seller ----

var sellerFields = []string{"name", "street", "postal_code", "city", "country", "vat_id", "tax_number", "register_id",
	"iban", "bic", "bank_name", "email", "phone", "payment_terms_days"}

func sellerForm(s *billing.Seller) map[string]string {
	return map[string]string{"name": s.Name, "street": s.Street, "postal_code": s.PostalCode, "city": s.City, "country": s.Country,
		"vat_id": s.VATID, "tax_number": s.TaxNumber, "register_id": s.RegisterID, "iban": s.IBAN, "bic": s.BIC,
		"bank_name": s.BankName, "email": s.Email, "phone": s.Phone, "payment_terms_days": strconv.Itoa(s.PaymentTermsDays)}
}

func (h *BillingHandlers) seller(c *fiber.Ctx) error {
	s, err := h.Billing.Seller(c.UserContext())
	if err != nil {
		return err
	}
	timeline, err := audit.ForObject(c.UserContext(), h.Billing.DB, "billing_seller", "1")
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/billing/seller", &templates.Page{Form: sellerForm(s), Data: timeline})
}

func (h *BillingHandlers) updateSeller(c *fiber.Ctx) error {
	form := formValues(c, sellerFields...)
	days, convErr := strconv.Atoi(strings.TrimSpace(form["payment_terms_days"]))
	in := billing.Seller{Name: form["name"], Street: form["street"], PostalCode: form["postal_code"], City: form["city"],
		Country: form["country"], VATID: form["vat_id"], TaxNumber: form["tax_number"], RegisterID: form["register_id"],
		IBAN: form["iban"], BIC: form["bic"], BankName: form["bank_name"], Email: form["email"], Phone: form["phone"], PaymentTermsDays: days}
	if convErr != nil {
		in.PaymentTermsDays = -1
	}
	if _, err := h.Billing.UpdateSeller(c.UserContext(), in); err != nil {
		if !invalid(err) {
			return err
		}
		timeline, terr := audit.ForObject(c.UserContext(), h.Billing.DB, "billing_seller", "1")
		if terr != nil {
			return terr
		}
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "admin/billing/seller", &templates.Page{Errors: templates.FieldErrors(c, err), Form: form, Data: timeline})
	}
	templates.SetFlash(c, "success", "Seller identity saved; documents finalized from now on carry it.")
	return c.Redirect("/admin/billing/seller", fiber.StatusSeeOther)
}
