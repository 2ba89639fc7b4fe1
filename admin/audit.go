package admin

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/audit"
	"cardata/templates"
)

// auditFilter reads the audit trail's filters and order; dates are days in
// the business time zone and "to" includes its whole day.
func (h *Handlers) auditFilter(c *fiber.Ctx) (audit.Filter, map[string]string, map[string]string) {
	form := map[string]string{}
	for _, k := range []string{"actor", "action", "object_type", "object_id", "from", "to"} {
		form[k] = c.Query(k)
	}
	f := audit.Filter{Actor: form["actor"], Action: form["action"], ObjectType: form["object_type"],
		ObjectID: form["object_id"], Order: audit.Sort.Parse(c.Query("sort"), c.Query("dir"))}
	fieldErrs := map[string]string{}
	if d, err := time.ParseInLocation("2006-01-02", form["from"], h.View.Location); err == nil {
		f.From = d.UTC()
	} else if form["from"] != "" {
		fieldErrs["from"] = "use a date like 2026-11-01"
	}
	if d, err := time.ParseInLocation("2006-01-02", form["to"], h.View.Location); err == nil {
		f.To = d.AddDate(0, 0, 1).UTC()
	} else if form["to"] != "" {
		fieldErrs["to"] = "use a date like 2026-11-30"
	}
	return f, form, fieldErrs
}

func (h *Handlers) listAudit(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 50)
	f, form, fieldErrs := h.auditFilter(c)
	f.Offset, f.Limit = pager.Offset(), pager.PerPage
	entries, total, err := audit.List(c.UserContext(), h.DB, f)
	if err != nil {
		return err
	}
	pager.Total = total
	status := fiber.StatusOK
	if len(fieldErrs) > 0 {
		status = fiber.StatusUnprocessableEntity
	}
	return h.View.Render(c, status, "admin/audit/index", &templates.Page{Pager: pager, Form: form, Errors: fieldErrs,
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Data: struct{ Entries []audit.Entry }{entries}})
}

// exportAudit downloads the audit trail with the page's filters and order
// as CSV, read row by row (a trail has no upper bound).
func (h *Handlers) exportAudit(c *fiber.Ctx) error {
	f, _, fieldErrs := h.auditFilter(c)
	if len(fieldErrs) > 0 {
		return h.listAudit(c)
	}
	return templates.CSV(c, "cardata-audit.csv",
		[]string{"entry_id", "at", "actor_kind", "actor", "action", "object_type", "object_id", "summary", "request_id", "client_addr", "hash"},
		func(ctx context.Context, emit func([]string) error) error {
			return audit.Each(ctx, h.DB, f, func(e *audit.Entry) error {
				return emit([]string{strconv.FormatInt(e.ID, 10), templates.CSVTime(e.At), e.ActorKind, e.ActorLabel, e.Action,
					e.ObjectType, e.ObjectID, e.Summary, e.RequestID, e.ClientAddr, e.Hash})
			})
		})
}
