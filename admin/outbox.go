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
			Kinds       map[string]string
		}{list, atts, outboxStatuses, counts, mailKindLabels}})
}

func (h *JobsHandlers) showEmail(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
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
			KindLabel   string
		}{e, atts[e.ID], e.Status == jobs.EmailFailed && h.mayPost(p, retryURL), retryURL, mailKindLabels[e.Kind]}})
}

func (h *JobsHandlers) retryEmail(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if err := jobs.RetryEmail(c.UserContext(), h.DB, id); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "The e-mail is queued for another attempt now.")
	return c.Redirect(fmt.Sprintf("/admin/outbox/%d", id), fiber.StatusSeeOther)
}

// mailKindLabels name the outbox's e-mail kinds for people (the catalogs
// translate them; the page shows the kind's code beside its label). A kind
// missing here shows its code alone.
var mailKindLabels = map[string]string{
	"consent.requested":                 "Consent request to a vehicle owner",
	"container.approved":                "Data container approved",
	"container.deprecated":              "Data container deprecated",
	"container.rejected":                "Data container rejected",
	"container.withdrawn":               "Data container withdrawn",
	"credit_note.sent":                  "Credit note to a provider",
	"invoice.reminder":                  "Payment reminder",
	"invoice.sent":                      "Invoice to a provider",
	"market_access.approved":            "Market request approved",
	"market_access.rejected":            "Market request rejected",
	"provider.already_registered_email": "Registration with a known e-mail address",
	"provider.already_registered_vat":   "Registration with a known VAT ID",
	"provider.answered":                 "Provider answered a query",
	"provider.approve":                  "Provider approved",
	"provider.claim":                    "Application under review",
	"provider.reactivate":               "Provider reactivated",
	"provider.reject":                   "Application rejected",
	"provider.request_info":             "Query to the provider",
	"provider.submitted":                "Registration received",
	"provider.suspend":                  "Provider suspended",
	"provider.terminate":                "Partnership ended",
	"provider_user.invited":             "Portal user invited",
	"staff.welcome":                     "Welcome to a new staff member",
	"support.p1_opened":                 "P1 ticket opened",
	"support.provider_message":          "Provider wrote on a ticket",
	"support.provider_reopened":         "Provider reopened a ticket",
	"support.reopen":                    "Ticket reopened",
	"support.reply":                     "Reply on a ticket",
	"support.resolve":                   "Ticket resolved",
	"support.sla_breach":                "SLA target missed",
	"support.sla_warning":               "SLA warning (80 %)",
	"support.ticket_opened":             "Ticket received",
	"support.wait":                      "Information needed from the provider",
	"webhook.endpoint_disabled":         "Webhook endpoint disabled",
}
