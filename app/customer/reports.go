package customer

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/templates"
)

type reportsPage struct {
	Reports []consent.Report
	SyncMax int
}

func (h *Handlers) reports(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	list, err := h.Consents.FindDataReports(c.UserContext(), me.ID)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "my/reports", &templates.Page{Title: "My data and reports",
		Data: reportsPage{Reports: list, SyncMax: consent.SyncReportMaxVehicles}})
}

func (h *Handlers) requestReport(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	// The archive is written in the language the customer reads /my in.
	r, err := h.Consents.RequestDataReport(c.UserContext(), me.ID, templates.LangOf(c))
	if err != nil {
		return err
	}
	if r.Status == consent.ReportReady {
		templates.SetFlash(c, "success", "Your data report is ready to download.")
	} else {
		templates.SetFlash(c, "info", "Your data report is being prepared; it appears here when ready (usually within minutes).")
	}
	return c.Redirect("/my/reports", fiber.StatusSeeOther)
}

func (h *Handlers) downloadReport(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	name, data, err := h.Consents.DataReportFile(c.UserContext(), me.ID, id)
	if err != nil {
		return err
	}
	return templates.SendFile(c, name, "application/zip", data)
}

type transactionsPage struct {
	Report *consent.TransactionReport
}

// transactions shows the transaction report for a period, or downloads it
// as CSV or PDF (?format=csv|pdf).
func (h *Handlers) transactions(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	form := map[string]string{"from": c.Query("from"), "to": c.Query("to")}
	from, to, err := consent.ParsePeriod(form["from"], form["to"], h.loc())
	if errs.KindOf(err) == errs.Invalid {
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "my/transactions", &templates.Page{Title: "Transfers to third parties",
			Errors: templates.FieldErrors(c, err), Form: form, Data: transactionsPage{}})
	}
	if err != nil {
		return err
	}
	r, err := h.Consents.BuildTransactionReport(c.UserContext(), me.ID, from, to)
	if err != nil {
		return err
	}
	return RenderTransactions(c, h.View, "my/transactions", r, c.Query("format"), form, h.loc())
}

// RenderTransactions answers a transaction report as a page, CSV or PDF.
func RenderTransactions(c *fiber.Ctx, view *templates.View, page string, r *consent.TransactionReport, format string,
	form map[string]string, loc *time.Location) error {
	base := "cardata-transactions-" + strconv.FormatInt(r.Customer.ID, 10) + "-" + r.GeneratedAt.In(loc).Format("20060102")
	switch format {
	case "csv":
		data, err := consent.TransactionsCSV(r, templates.LangOf(c))
		if err != nil {
			return err
		}
		return templates.SendFile(c, base+".csv", "text/csv; charset=utf-8", data)
	case "pdf":
		data, err := consent.TransactionsPDF(r, loc, templates.LangOf(c))
		if err != nil {
			return err
		}
		return templates.SendFile(c, base+".pdf", "application/pdf", data)
	case "", "html":
		return view.Render(c, fiber.StatusOK, page, &templates.Page{Title: "Transfers to third parties", Form: form,
			Data: transactionsPage{Report: r}})
	}
	var v errs.Validation
	v.Add("format", "format_invalid", "format is csv, pdf or html")
	return v.Err()
}
