package app

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/admin"
	"cardata/billing"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
)

// newBillingService builds billing's domain service with onboarding as its
// provider directory.
func (a *App) newBillingService() *billing.Service {
	return &billing.Service{DB: a.DB, Location: a.Cfg.BillingTimezone, PublicURL: a.Cfg.PublicURL,
		Directory: onboardingDirectory{svc: a.newOnboardingService()}, Locks: a.jobLocks()}
}

// mountBilling mounts finance's pages (/admin/billing), the published price
// list (public: GET /price-list and GET /api/v1/price-list, one list for
// every provider), and billing's scheduled jobs.
func (a *App) mountBilling() error {
	svc := a.newBillingService()
	a.Billing = svc
	// Runs started from the UI continue after their request; shutdown stops
	// them (marked interrupted) and waits until they have returned.
	shutdown, stop := context.WithCancel(context.Background())
	a.onShutdown(func() { stop(); svc.Close() })

	pages := &admin.BillingHandlers{View: a.View, Billing: svc, Shutdown: shutdown}
	pages.Routes(a.surface("/admin"))
	for _, item := range admin.BillingNav() {
		a.View.AddNav("Finance", item)
	}

	// Providers' own invoices in the partner portal (the sent e-mails link
	// here); the ownership check is in billing's query.
	portal := a.surface("/portal")
	portal.Get("/invoices", a.portalInvoices)
	portal.Get("/invoices/:id/pdf", a.portalInvoiceDocument("pdf"))
	portal.Get("/invoices/:id/xml", a.portalInvoiceDocument("ubl"))
	a.View.AddNav("Partner portal", templates.NavItem{Label: "Invoices", Path: "/portal/invoices"})

	a.Fiber.Get("/price-list", a.priceListPage)
	a.Fiber.Get("/api/v1/price-list", a.priceListAPI)
	a.Access.Public(fiber.MethodGet, "/price-list")
	a.Access.Public(fiber.MethodGet, "/api/v1/price-list")

	if a.Jobs == nil {
		return nil
	}
	for _, j := range a.billingJobs() {
		if err := a.Jobs.Register(j); err != nil {
			return err
		}
	}
	return nil
}

// billingJobs are the monthly invoice run, sending finalized invoices and
// the payment reminders.
func (a *App) billingJobs() []jobs.Job {
	return []jobs.Job{
		{Name: "invoice.monthly_run", Title: "Monthly invoice run", Spec: "0 3 1 * *", Roles: []string{policies.RoleFinance},
			CatchUp: 14 * 24 * time.Hour, Timeout: 6 * time.Hour,
			Description: "On the 1st at 03:00 (Berlin) creates the previous month's draft invoices from the delivery ledger and billable support items; idempotent, so a catch-up or a second run changes nothing.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				period := billing.PeriodOf(time.Now(), a.Cfg.BillingTimezone).Prev()
				if r.ScheduledFor != nil {
					period = billing.PeriodOf(*r.ScheduledFor, a.Cfg.BillingTimezone).Prev()
				}
				run, err := a.Billing.RunPeriod(ctx, period.String(), billing.RunOptions{Trigger: billing.TriggerSchedule,
					Progress: func(done, total int) {
						r.Progress(ctx, int64(done), int64(total), "invoicing "+period.String())
					}})
				if run != nil {
					r.Set("invoice_run_id", run.ID)
					r.Set("drafts_created", int64(run.InvoicesCreated))
					r.Set("providers_skipped", int64(run.ProvidersSkipped))
					r.Set("providers_failed", int64(run.ProvidersFailed))
					r.Set("records_billed", run.RecordsBilled)
				}
				return err
			}},
		{Name: "invoice.send_finalized", Title: "Send finalized invoices", Spec: "0 8-18 * * 1-5", Roles: []string{policies.RoleFinance},
			Timeout: time.Hour,
			Description: "Weekdays every hour from 08:00 to 18:00 (Berlin) e-mails every finalized, not yet sent invoice and credit note " +
				"to the buyer's billing address with its PDF and XML attached; documents without an address are skipped and counted, " +
				"one that fails does not stop the others.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				res, err := a.Billing.SendFinalized(ctx)
				r.Set("sent", int64(res.Sent))
				r.Set("skipped", int64(res.Skipped))
				r.Set("failed", int64(res.Failed))
				return err
			}},
		{Name: "invoice.reminders", Title: "Payment reminders", Spec: "30 8 * * 1-5", Roles: []string{policies.RoleFinance},
			Description: "E-mails a reminder for every overdue, unpaid invoice not reminded in the last 7 days.",
			Run: func(ctx context.Context, r *jobs.Run) error {
				n, err := a.Billing.SendReminders(ctx)
				r.Set("reminders_sent", int64(n))
				return err
			}},
	}
}

// onboardingDirectory is billing's ProviderDirectory over onboarding.
type onboardingDirectory struct{ svc *onboarding.Service }

func (d onboardingDirectory) BillingParty(ctx context.Context, id int64) (billing.Party, error) {
	p, err := d.svc.FindProviderByID(ctx, id)
	if err != nil {
		return billing.Party{}, err
	}
	return billingParty(p), nil
}

// BillingParties is BillingParty for many providers in one query.
func (d onboardingDirectory) BillingParties(ctx context.Context, ids []int64) (map[int64]billing.Party, error) {
	list, err := d.svc.FindProvidersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]billing.Party, len(list))
	for i := range list {
		out[list[i].ID] = billingParty(&list[i])
	}
	return out, nil
}

func billingParty(p *onboarding.Provider) billing.Party {
	email := p.BillingEmail
	if email == "" {
		email = p.ContactEmail
	}
	return billing.Party{ProviderID: p.ID, LegalName: p.LegalName, Street: p.Street, PostalCode: p.PostalCode, City: p.City,
		Country: strings.TrimSpace(p.Country), VATID: p.VATID, Email: email}
}

func (d onboardingDirectory) ActiveProviderIDs(ctx context.Context) ([]int64, error) {
	var out []int64
	for offset := 0; ; offset += 200 {
		list, total, err := d.svc.FindProviders(ctx, onboarding.ProviderFilter{Status: onboarding.StatusActive, Offset: offset, Limit: 200})
		if err != nil {
			return nil, err
		}
		for _, p := range list {
			out = append(out, p.ID)
		}
		if int64(offset+len(list)) >= total || len(list) == 0 {
			return out, nil
		}
	}
}

// PublishedPriceList is the public JSON form of the price list.
type PublishedPriceList struct {
	Currency string             `json:"currency"`
	Note     string             `json:"note"`
	Versions []PublishedVersion `json:"versions"`
}

// PublishedVersion is one version: valid from validFrom (inclusive) until
// validTo (exclusive; null while no later version is announced).
type PublishedVersion struct {
	ID        int64           `json:"id"`
	ValidFrom time.Time       `json:"validFrom"`
	ValidTo   *time.Time      `json:"validTo"`
	Current   bool            `json:"current"`
	Items     []PublishedItem `json:"items"`
}

// PublishedItem is one price. Telematics and push prices are graduated:
// each unit of a provider's monthly count is priced in the tier it falls in.
type PublishedItem struct {
	Item      string  `json:"item"`
	Label     string  `json:"label"`
	Priority  string  `json:"priority,omitempty"`
	TierFrom  *int64  `json:"tierFrom,omitempty"`
	TierTo    *int64  `json:"tierTo,omitempty"`
	UnitPrice string  `json:"unitPrice"`
	Unit      string  `json:"unit"`
	VATNote   *string `json:"vatNote,omitempty"`
}

func (a *App) publishedPriceList(ctx context.Context) (*PublishedPriceList, error) {
	vs, err := a.Billing.Published(ctx)
	if err != nil {
		return nil, err
	}
	out := &PublishedPriceList{Currency: "EUR", Versions: []PublishedVersion{},
		Note: "One published price list for every registered provider. Prices are net; German VAT applies to providers seated in Germany, reverse charge to other EU providers. Telematics and push deliveries are graduated by the provider's monthly count; only deliveries that carried data, and only accepted pushes, are billed."}
	now := time.Now()
	for _, v := range vs {
		pv := PublishedVersion{ID: v.ID, ValidFrom: v.ValidFrom.UTC(), ValidTo: v.ValidTo, Current: v.Current(now), Items: []PublishedItem{}}
		for _, it := range v.Items {
			pi := PublishedItem{Item: string(it.Item), Label: it.Item.ShortLabel(), Priority: it.Priority, UnitPrice: it.PriceString()}
			switch it.Item {
			case billing.ItemTelematics, billing.ItemPush:
				from := it.TierFrom
				pi.TierFrom, pi.TierTo = &from, it.TierTo
				pi.Unit = "delivery"
				if it.Item == billing.ItemPush {
					pi.Unit = "accepted push"
				}
			case billing.ItemSupportCase:
				pi.Unit = "billable case"
			case billing.ItemSupportTime:
				pi.Unit = "started 15 minutes"
			}
			pv.Items = append(pv.Items, pi)
		}
		out.Versions = append(out.Versions, pv)
	}
	return out, nil
}

func (a *App) priceListAPI(c *fiber.Ctx) error {
	pl, err := a.publishedPriceList(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(pl)
}

func (a *App) priceListPage(c *fiber.Ctx) error {
	vs, err := a.Billing.Published(c.UserContext())
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return errs.New(errs.NotFound, "price_list_not_published", "no price list is published yet")
	}
	for i := range vs {
		vs[i] = vs[i].InZone(a.Cfg.BillingTimezone)
	}
	return a.View.Render(c, fiber.StatusOK, "public/price-list", &templates.Page{Data: struct {
		Versions []billing.Version
		Now      time.Time
	}{vs, time.Now()}})
}

func portalProvider(c *fiber.Ctx) (int64, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindProvider || p.ProviderID == 0 {
		return 0, errs.New(errs.Forbidden, "forbidden", "provider users only")
	}
	return p.ProviderID, nil
}

// portalInvoices lists the signed-in provider's finalized invoices and
// credit notes with their documents.
func (a *App) portalInvoices(c *fiber.Ctx) error {
	pid, err := portalProvider(c)
	if err != nil {
		return err
	}
	list, err := a.Billing.ProviderInvoices(c.UserContext(), pid)
	if err != nil {
		return err
	}
	return a.View.Render(c, fiber.StatusOK, "portal/invoices/index", &templates.Page{Data: struct {
		Invoices []billing.Invoice
		Now      time.Time
	}{list, time.Now()}})
}

func (a *App) portalInvoiceDocument(format string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		pid, err := portalProvider(c)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(c.Params("id"), 10, 64)
		if err != nil || id <= 0 {
			return errs.New(errs.NotFound, "not_found", "no such invoice")
		}
		inv, err := a.Billing.FindProviderInvoice(c.UserContext(), pid, id)
		if err != nil {
			return err
		}
		d, err := a.Billing.Document(c.UserContext(), inv.ID, format)
		if err != nil {
			return err
		}
		name, ctype := d.File(inv)
		templates.Attachment(c, name, ctype)
		c.Set("Digest", "sha-256="+d.SHA256)
		return c.Send(d.Content)
	}
}
