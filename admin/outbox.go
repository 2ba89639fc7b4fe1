package admin

import (
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/jobs"
	"cardata/policies"
	"cardata/templates"
)

var outboxStatuses = []string{jobs.EmailPending, jobs.EmailSent, jobs.EmailFailed, jobs.EmailLocal}

func (h *JobsHandlers) listOutbox(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 50)
	form := map[string]string{"status": c.Query("status"), "q": c.Query("q")}
	f := jobs.EmailFilter{Query: form["q"], Offset: pager.Offset(), Limit: pager.PerPage,
		Order: jobs.EmailSort.Parse(c.Query("sort"), c.Query("dir"))}
	for _, s := range outboxStatuses {
		if form["status"] == s {
			f.Status = s
		}
	}
	list, total, err := jobs.ListEmails(c.UserContext(), h.DB, f)
	if err != nil {
		return err
	}
	counts, err := jobs.CountByStatus(c.UserContext(), h.DB)
	if err != nil {
		return err
	}
	ids := make([]int64, len(list))
	for i, e := range list {
		ids[i] = e.ID
	}
	atts, err := jobs.EmailAttachments(c.UserContext(), h.DB, ids...)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "admin/outbox/index", &templates.Page{Title: "E-mail outbox", Pager: pager, Form: form,
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Data: struct {
			Emails      []jobs.Email
			Attachments map[int64][]jobs.AttachmentInfo
			Statuses    []string
			Counts      map[string]int64
		}{list, atts, outboxStatuses, counts}})
}

func (h *JobsHandlers) showEmail(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	e, err := jobs.FindEmail(c.UserContext(), h.DB, id)
	if err != nil {
		return err
	}
	atts, err := jobs.EmailAttachments(c.UserContext(), h.DB, e.ID)
	if err != nil {
		return err
	}
	p := policies.PrincipalFrom(c.UserContext())
	retryURL := fmt.Sprintf("/admin/outbox/%d/retry", e.ID)
	return h.View.Render(c, fiber.StatusOK, "admin/outbox/show", &templates.Page{Title: "E-mail " + strconv.FormatInt(e.ID, 10),
		Data: struct {
			Email       *jobs.Email
			Attachments []jobs.AttachmentInfo
			CanRetry    bool
			RetryURL    string
		}{e, atts[e.ID], e.Status == jobs.EmailFailed && h.mayPost(p, retryURL), retryURL}})
}

func (h *JobsHandlers) retryEmail(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := jobs.RetryEmail(c.UserContext(), h.DB, id); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "The e-mail is queued for another attempt now.")
	return c.Redirect(fmt.Sprintf("/admin/outbox/%d", id), fiber.StatusSeeOther)
}
