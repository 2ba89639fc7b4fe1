package admin

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/audit"
	"cardata/templates"
)

func (h *Handlers) listAudit(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 50)
	form := map[string]string{}
	for _, k := range []string{"actor", "action", "object_type", "object_id", "from", "to"} {
		form[k] = c.Query(k)
	}
	f := audit.Filter{Actor: form["actor"], Action: form["action"], ObjectType: form["object_type"],
		ObjectID: form["object_id"], Offset: pager.Offset(), Limit: pager.PerPage}
	fieldErrs := map[string]string{}
	// Dates are days in the business time zone; "to" includes its whole day.
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
		Data: struct{ Entries []audit.Entry }{entries}})
}
