package app

import (
	"context"

	"cardata/admin"
	"cardata/app/portal"
)

// mountBilling mounts finance's pages (/admin/billing), the published price
// list (public: GET /price-list and GET /api/v1/price-list, one list for
// every provider).
func (a *App) mountBilling() error {
	svc := a.Billing
	// Runs started from the UI continue after their request; shutdown stops
	// them (marked interrupted), and Services.Close waits until they have
	// returned.
	shutdown, stop := context.WithCancel(context.Background())
	a.onShutdown(stop)

	pages := &admin.BillingHandlers{View: a.View, Billing: svc, Shutdown: shutdown}
	pages.Routes(a.surface("/admin"))
	for _, item := range admin.BillingNav() {
		a.View.AddNav("Finance", item)
	}
	a.addWidgets(admin.FinanceWidgets(svc)...)

	// Providers' own invoices in the partner portal (the sent e-mails link
	// here); the ownership check is in billing's query.
	(&portal.InvoiceHandlers{View: a.View, Billing: svc}).Routes(a.surface("/portal"))
	a.View.AddNav("Partner portal", portal.InvoiceNav())

	(&portal.PriceListHandlers{View: a.View, Billing: svc, Location: a.Cfg.BillingTimezone}).Routes(a.Fiber)
	for _, r := range portal.PriceListRoutes {
		a.Access.Public(r[0], r[1])
	}

	return nil
}
