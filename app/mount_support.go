package app

import (
	"cardata/admin"
	"cardata/app/portal"
)

// mountSupport mounts the support desk: the staff queue and ticket pages
// (/admin/tickets), the provider's tickets in the portal (/portal/tickets)
// and in the provider API (/api/v1/tickets).
func (a *App) mountSupport() error {
	svc := a.Support
	staffPages := &admin.TicketHandlers{View: a.View, Support: svc}
	staffPages.Routes(a.surface("/admin"))
	for _, item := range admin.TicketNav() {
		a.View.AddNav("Support", item)
	}
	a.addWidgets(admin.SupportWidgets(svc)...)
	providerPages := &portal.TicketHandlers{View: a.View, Support: svc}
	providerPages.Routes(a.surface("/portal"))
	providerPages.APIRoutes(a.Fiber.Group("/api/v1"))
	a.View.AddNav("Partner portal", portal.TicketNav())
	return nil
}
