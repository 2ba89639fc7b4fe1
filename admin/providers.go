package admin

import (
	"context"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// ProviderHandlers are the partner managers' onboarding pages: the review
// queue, providers, markets and the coverage report. Auditors read them;
// support and finance read the provider list and detail.
type ProviderHandlers struct {
	View       *templates.View
	Onboarding *onboarding.Service
	// Sandbox sums the provider's sandbox deliveries (billing's, never
	// billed); nil leaves the sandbox card out.
	Sandbox func(ctx context.Context, providerID int64) (*billing.SandboxActivity, error)
}

// Routes mounts the pages on r (the /admin group).
func (h *ProviderHandlers) Routes(r fiber.Router) {
	r.Get("/review-queue", h.queue)
	r.Post("/review-queue/claim", h.claimSelected)
	r.Get("/providers", h.listProviders)
	r.Get("/providers/export.csv", h.exportProviders)
	r.Get("/providers/:id", h.showProvider)
	r.Post("/providers/:id/transitions/:action", h.View.Confirm(h.confirmTransition), h.transition)
	r.Get("/providers/:id/documents/:doc", h.downloadDocument)
	r.Post("/providers/:id/markets/:code", h.View.Confirm(h.confirmMarketDecision), h.decideMarket)
	r.Get("/markets", h.listMarkets)
	r.Post("/markets/:code", h.View.Confirm(h.confirmMarketActive), h.setMarketActive)
	r.Get("/coverage", h.coverage)
	r.Get("/coverage/export.csv", h.coverageCSV)
	r.Get("/coverage/:code", h.coverageMarket)
}

// ProviderNav is the navigation of these pages (shown to roles allowed to GET them).
func ProviderNav() []templates.NavItem {
	return []templates.NavItem{
		{Label: "Review queue", Path: "/admin/review-queue"},
		{Label: "Providers", Path: "/admin/providers"},
		{Label: "Markets", Path: "/admin/markets"},
		{Label: "Coverage", Path: "/admin/coverage"},
	}
}

// Waiting renders a duration for people: "3 d 4 h", "5 h 10 min", "12 min".
func Waiting(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d min", int(d.Minutes()))
}

type queueRow struct {
	onboarding.Provider
	Waited string
}

func rows(ps []onboarding.Provider, now time.Time) []queueRow {
	out := make([]queueRow, len(ps))
	for i, p := range ps {
		out[i] = queueRow{Provider: p, Waited: Waiting(p.Waiting(now))}
	}
	return out
}

func (h *ProviderHandlers) queue(c *fiber.Ctx) error {
	// One ?sort on the page: its key names the table it orders (the
	// three whitelists have distinct keys); the others keep their default.
	sortKey, dir := c.Query("sort"), c.Query("dir")
	order := onboarding.QueueSort.Parse(sortKey, dir)
	answer := onboarding.AnswerSort.Parse(sortKey, dir)
	requests := onboarding.MarketRequestSort.Parse(sortKey, dir)
	waiting, withProvider, err := h.Onboarding.FindReviewQueueSorted(c.UserContext(), order, answer)
	if err != nil {
		return err
	}
	pending, err := h.Onboarding.FindPendingMarketRequestsSorted(c.UserContext(), "", requests)
	if err != nil {
		return err
	}
	shown := order
	if answer.Key != "" {
		shown = answer
	} else if requests.Key != "" {
		shown = requests
	}
	now := time.Now()
	return h.View.Render(c, fiber.StatusOK, "admin/providers/queue", &templates.Page{Title: "Review queue",
		Sort: templates.NewSort(c, shown.Key, shown.Desc),
		Data: struct {
			Waiting, WithProvider []queueRow
			MarketRequests        []onboarding.PendingMarketRequest
		}{rows(waiting, now), rows(withProvider, now), pending}})
}

type providerListPage struct {
	Providers []queueRow
	Statuses  []onboarding.Status
	Countries []onboarding.Country
	Markets   []onboarding.Country
}

func seatCountries() []onboarding.Country {
	return append(append([]onboarding.Country{}, onboarding.EU27...), onboarding.EEAOnly...)
}

// providerFilter reads the provider list's filters and order from the
// query; an unknown filter value is left out with a field error, an
// unknown sort key falls back to the default order.
func providerFilter(c *fiber.Ctx) (onboarding.ProviderFilter, map[string]string, map[string]string) {
	form := map[string]string{"status": c.Query("status"), "country": c.Query("country"), "market": c.Query("market"), "q": c.Query("q")}
	f := onboarding.ProviderFilter{Status: onboarding.Status(form["status"]), Country: form["country"], Market: form["market"],
		Query: form["q"], Order: onboarding.ProviderSort.Parse(c.Query("sort"), c.Query("dir"))}
	fieldErrs := map[string]string{}
	if f.Status != "" && !contains(onboarding.Statuses, f.Status) {
		fieldErrs["status"], f.Status = "unknown status", ""
	}
	if f.Country != "" && !onboarding.IsEEA(strings.ToUpper(f.Country)) {
		fieldErrs["country"], f.Country = "choose an EEA country", ""
	}
	if f.Market != "" && !onboarding.IsSupportedMarket(strings.ToUpper(f.Market)) {
		fieldErrs["market"], f.Market = "choose a supported market", ""
	}
	return f, form, fieldErrs
}

func (h *ProviderHandlers) listProviders(c *fiber.Ctx) error {
	pager := templates.NewPager(c, 25)
	f, form, fieldErrs := providerFilter(c)
	f.Offset, f.Limit = pager.Offset(), pager.PerPage
	ps, total, err := h.Onboarding.FindProviders(c.UserContext(), f)
	if err != nil {
		return err
	}
	pager.Total = total
	status := fiber.StatusOK
	if len(fieldErrs) > 0 {
		status = fiber.StatusUnprocessableEntity
	}
	return h.View.Render(c, status, "admin/providers/index", &templates.Page{Title: "Providers", Pager: pager, Form: form, Errors: fieldErrs,
		Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
		Data: providerListPage{Providers: rows(ps, time.Now()), Statuses: onboarding.Statuses, Countries: seatCountries(), Markets: onboarding.SupportedMarkets}})
}

// exportProviders downloads the provider list with the page's filters and
// order as CSV; a bad filter answers 422 with the list page.
func (h *ProviderHandlers) exportProviders(c *fiber.Ctx) error {
	f, _, fieldErrs := providerFilter(c)
	if len(fieldErrs) > 0 {
		return h.listProviders(c)
	}
	return templates.CSV(c, "cardata-providers.csv",
		[]string{"provider_id", "company", "seat", "vat_id", "status", "reviewer", "registered_at", "waiting_since", "approved_at"},
		func(ctx context.Context, emit func([]string) error) error {
			return h.Onboarding.EachProvider(ctx, f, func(p *onboarding.Provider) error {
				return emit([]string{strconv.FormatInt(p.ID, 10), p.LegalName, p.Country, p.VATID, string(p.Status), p.ReviewerName,
					templates.CSVTime(p.SubmittedAt), templates.CSVTime(p.WaitingSince), templates.CSVTime(p.ApprovedAt)})
			})
		})
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type providerPage struct {
	Provider  *onboarding.Provider
	Waited    string
	Events    []onboarding.Event
	Activity  []audit.Entry
	Documents []onboarding.Document
	Users     []onboarding.ProviderUser
	Clients   []onboarding.APIClient
	Markets   []onboarding.MarketAccess
	Actions   []onboarding.Transition
	Now       time.Time
	CanReview bool // partner manager: show the action forms
	CanDocs   bool // may download documents
	// Sandbox is the provider's sandbox activity (nil: not shown).
	Sandbox *billing.SandboxActivity
}

func (h *ProviderHandlers) showProvider(c *fiber.Ctx) error {
	// a refused decision comes back here (post/redirect/get) with its errors and note
	fieldErrs, form, _ := templates.TakeFormState(c, c.Path())
	return h.renderProvider(c, fiber.StatusOK, fieldErrs, form)
}

func (h *ProviderHandlers) renderProvider(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := h.Onboarding.FindProviderByID(ctx, id)
	if err != nil {
		return err
	}
	page := providerPage{Provider: p, Now: time.Now(), Actions: p.StaffActions(), Waited: Waiting(p.Waiting(time.Now()))}
	if page.Events, err = h.Onboarding.FindEvents(ctx, id); err != nil {
		return err
	}
	if page.Activity, err = audit.ForObject(ctx, h.Onboarding.DB, "provider", strconv.FormatInt(id, 10)); err != nil {
		return err
	}
	if page.Documents, err = h.Onboarding.FindDocuments(ctx, id); err != nil {
		return err
	}
	if page.Users, err = h.Onboarding.FindProviderUsers(ctx, id); err != nil {
		return err
	}
	if page.Clients, err = h.Onboarding.FindAPIClients(ctx, id); err != nil {
		return err
	}
	if page.Markets, err = h.Onboarding.FindMarketAccess(ctx, id); err != nil {
		return err
	}
	if h.Sandbox != nil {
		if page.Sandbox, err = h.Sandbox(ctx, id); err != nil {
			return err
		}
	}
	pr := policies.PrincipalFrom(ctx)
	page.CanReview = pr.HasRole(policies.RolePartnerManager)
	page.CanDocs = h.View.Can(pr, fiber.MethodGet, fmt.Sprintf("/admin/providers/%d/documents/1", id))
	return h.View.Render(c, status, "admin/providers/show", &templates.Page{Title: p.LegalName, Errors: fieldErrs, Form: form, Data: page})
}

func (h *ProviderHandlers) transition(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	action := onboarding.Action(c.Params("action"))
	note := c.FormValue("note")
	p, err := h.Onboarding.Review(c.UserContext(), id, action, note)
	page := fmt.Sprintf("/admin/providers/%d", id)
	if invalid(err) {
		// post/redirect/get: the address after a refused decision is the
		// provider's page, which a reload gets again (no 405, no re-post)
		templates.SetFormState(c, page, templates.FieldErrors(c, err), map[string]string{"action": string(action), "note": note})
		return c.Redirect(page+"#actions", fiber.StatusSeeOther)
	}
	if errs.KindOf(err) == errs.Conflict {
		// decided meanwhile (another tab, another manager): say so on the page
		templates.SetFlash(c, "error", templates.ErrorText(c, err))
		return c.Redirect(page, fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	t, _ := onboarding.TransitionFor(action)
	lang := templates.LangOf(c)
	templates.SetFlash(c, "success", i18n.T(lang, "{{.Provider}}: {{.Action}} (now {{.Status}}).", "Provider", p.LegalName, "Action", i18n.T(lang, t.Past), "Status", i18n.T(lang, p.Status.Label())))
	return c.Redirect(fmt.Sprintf("/admin/providers/%d", id), fiber.StatusSeeOther)
}

func (h *ProviderHandlers) downloadDocument(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	docID, err := strconv.ParseInt(c.Params("doc"), 10, 64)
	if err != nil || docID <= 0 {
		return errs.New(errs.NotFound, "not_found", "no such record")
	}
	d, err := h.Onboarding.FindDocument(c.UserContext(), id, docID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, d.ContentType)
	c.Set(fiber.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": d.Filename}))
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	c.Set("X-Checksum-SHA256", d.SHA256)
	return c.Send(d.Data)
}

// safeBack keeps redirects after a decision inside the staff area.
func safeBack(back, fallback string) string {
	u, err := url.Parse(back)
	if back == "" || err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, "/admin/") || strings.HasPrefix(back, "//") {
		return fallback
	}
	return u.RequestURI()
}

func (h *ProviderHandlers) decideMarket(c *fiber.Ctx) error {
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	code := strings.ToUpper(c.Params("code"))
	back := safeBack(c.FormValue("back"), fmt.Sprintf("/admin/providers/%d", id))
	decision := c.FormValue("decision")
	if decision != "approve" && decision != "reject" {
		return errs.New(errs.BadRequest, "decision_invalid", "decide approve or reject")
	}
	err = h.Onboarding.DecideMarketAccess(c.UserContext(), id, code, decision == "approve", c.FormValue("reason"))
	if invalid(err) {
		templates.SetFlash(c, "error", i18n.T(templates.LangOf(c), "{{.Market}} not decided: {{.Reasons}}", "Market", code, "Reasons", strings.Join(messages(c, err), "; ")))
		return c.Redirect(back, fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	id18 := "Market {{.Market}} rejected."
	if decision == "approve" {
		id18 = "Market {{.Market}} approved."
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), id18, "Market", code))
	return c.Redirect(back, fiber.StatusSeeOther)
}

func messages(c *fiber.Ctx, err error) []string {
	var out []string
	tr := templates.Translator(templates.LangOf(c))
	for _, f := range errs.As(err).Fields {
		out = append(out, f.Text(tr))
	}
	return out
}

// claimSelected claims the ticked applications of the review queue for the
// signed-in partner manager (onboarding.ClaimMany) and lists the outcome.
func (h *ProviderHandlers) claimSelected(c *fiber.Ctx) error {
	var ids []int64
	for _, v := range formList(c, "ids") {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	res, err := h.Onboarding.ClaimMany(c.UserContext(), ids)
	if err != nil {
		if e := errs.As(err); e.Kind == errs.BadRequest {
			templates.SetFlash(c, "error", templates.ErrorText(c, e))
			return c.Redirect("/admin/review-queue", fiber.StatusSeeOther)
		}
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/providers/claimed", &templates.Page{Title: "Claimed applications", Data: res})
}
