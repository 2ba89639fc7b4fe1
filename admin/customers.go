package admin

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// CustomerHandlers let support and auditors produce a customer's data
// report and transaction report on the customer's request (GDPR right of
// access). Every report produced or downloaded here is audited by the
// consent service.
type CustomerHandlers struct {
	View     *templates.View
	Consents *consent.Service
	Location *time.Location
}

// Routes mounts the pages on r (the /admin group).
func (h *CustomerHandlers) Routes(r fiber.Router) {
	r.Get("/customers", h.index)
	r.Get("/customers/:id", h.show)
	r.Post("/customers/:id/data-reports", h.requestReport)
	r.Get("/customers/:id/data-reports/:report", h.download)
	r.Post("/customers/:id/data-reports/:report/retry", h.retryReport)
	r.Get("/customers/:id/transactions", h.transactions)
}

// CustomerNav is the navigation entry.
func CustomerNav() templates.NavItem {
	return templates.NavItem{Label: "Customer requests", Path: "/admin/customers"}
}

func (h *CustomerHandlers) loc() *time.Location {
	if h.Location != nil {
		return h.Location
	}
	return time.UTC
}

type customersIndex struct {
	Customers []consent.Customer
	// DeadReports are the data reports the builder set aside (all
	// customers), DeadTotal how many there are.
	DeadReports []consent.DeadReport
	DeadTotal   int64
}

func (h *CustomerHandlers) index(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 25)
	q := c.Query("q")
	order := consent.CustomerSort.Parse(c.Query("sort"), c.Query("dir"))
	var data customersIndex
	if q != "" {
		var total int64
		var err error
		data.Customers, total, err = h.Consents.FindCustomersSorted(c.UserContext(), q, order, pager.Offset(), pager.PerPage)
		if err != nil {
			return err
		}
		pager.Total = total
	}
	var err error
	data.DeadReports, data.DeadTotal, err = h.Consents.DeadReports(c.UserContext(), 50)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/customers/index", &templates.Page{Title: "Customer requests", Pager: pager,
		Sort: templates.NewSort(c, order.Key, order.Desc),
		Form: map[string]string{"q": q}, Data: data})
}

type customerPage struct {
	Customer *consent.Customer
	Vehicles []consent.Vehicle
	Consents []consent.Consent
	Reports  []consent.Report
}

func (h *CustomerHandlers) show(c *fiber.Ctx) error {
	return h.render(c, fiber.StatusOK, nil, nil)
}

func (h *CustomerHandlers) render(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	cust, err := h.Consents.FindCustomer(ctx, id)
	if err != nil {
		return err
	}
	vs, err := h.Consents.CustomerVehicles(ctx, id)
	if err != nil {
		return err
	}
	list, err := h.Consents.FindConsentsOfAccount(ctx, id)
	if err != nil {
		return err
	}
	reports, err := h.Consents.FindDataReports(ctx, id)
	if err != nil {
		return err
	}
	return h.View.Render(c, status, "admin/customers/show", &templates.Page{Title: cust.Name, Errors: fieldErrs, Form: form,
		Data: customerPage{Customer: cust, Vehicles: vs, Consents: list, Reports: reports}})
}

func (h *CustomerHandlers) requestReport(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	// Staff's page language says nothing of the customer's: theirs decides.
	r, err := h.Consents.RequestDataReport(c.UserContext(), id, "")
	if err != nil {
		return err
	}
	if r.Status == consent.ReportReady {
		templates.SetFlash(c, "success", "The data report is ready. Hand it to the customer through a secure channel.")
	} else {
		templates.SetFlash(c, "info", i18n.T(templates.LangOf(c), "The data report ({{.Vehicles}} vehicles) is being built in the background; it appears below when ready.", "Vehicles", r.Vehicles))
	}
	return c.Redirect("/admin/customers/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

func (h *CustomerHandlers) download(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	rid, err := strconv.ParseInt(c.Params("report"), 10, 64)
	if err != nil || rid <= 0 {
		return consent.ErrReportNotFound
	}
	name, data, err := h.Consents.DataReportFile(c.UserContext(), id, rid)
	if err != nil {
		return err
	}
	return templates.SendFile(c, name, "application/zip", data)
}

// retryReport queues a data report the builder set aside once more.
func (h *CustomerHandlers) retryReport(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	rid, err := strconv.ParseInt(c.Params("report"), 10, 64)
	if err != nil || rid <= 0 {
		return consent.ErrDeadReportNotFound
	}
	if err := h.Consents.RetryDataReport(c.UserContext(), id, rid); err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Data report {{.ID}} is queued again; it is built in the background within a few minutes.", "ID", rid))
	return c.Redirect("/admin/customers/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

// transactions downloads the transaction report as CSV or PDF.
func (h *CustomerHandlers) transactions(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	form := map[string]string{"from": c.Query("from"), "to": c.Query("to"), "format": c.Query("format")}
	from, to, err := consent.ParsePeriod(form["from"], form["to"], h.loc())
	if err == nil && form["format"] != "csv" && form["format"] != "pdf" {
		var v errs.Validation
		v.Add("format", "format_invalid", "choose CSV or PDF")
		err = v.Err()
	}
	if errs.KindOf(err) == errs.Invalid {
		return h.render(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err), form)
	}
	if err != nil {
		return err
	}
	r, err := h.Consents.BuildTransactionReport(c.UserContext(), id, from, to)
	if err != nil {
		return err
	}
	base := fmt.Sprintf("cardata-transactions-%d-%s", id, r.GeneratedAt.In(h.loc()).Format("20060102"))
	if form["format"] == "csv" {
		data, err := consent.TransactionsCSV(r, templates.LangOf(c))
		if err != nil {
			return err
		}
		return templates.SendFile(c, base+".csv", "text/csv; charset=utf-8", data)
	}
	// The PDF is for the customer: in their language when they chose one.
	data, err := consent.TransactionsPDF(r, h.loc(), readerLang(r.Customer.Lang, templates.LangOf(c)))
	if err != nil {
		return err
	}
	return templates.SendFile(c, base+".pdf", "application/pdf", data)
}

// readerLang is the language of a document made for someone else: theirs
// when they chose one, else the page's.
func readerLang(theirs string, page i18n.Lang) i18n.Lang {
	if l, ok := i18n.Parse(theirs); ok {
		return l
	}
	return page
}
