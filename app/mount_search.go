package app

import (
	"cardata/admin"
	"cardata/app/portal"
)

// mountSearch mounts the header's search: the staff's (/admin/search) over
// the providers, tickets, invoices and vehicles the signed-in roles may
// open, and the portal's (/portal/search) over the provider's own tickets
// and invoices.
func (a *App) mountSearch() error {
	(&admin.SearchHandlers{View: a.View, Onboarding: a.Onboarding, Support: a.Support, Billing: a.Billing, Vehicles: a.Vehicles}).Routes(a.surface("/admin"))
	(&portal.SearchHandlers{View: a.View, Support: a.Support, Billing: a.Billing}).Routes(a.surface("/portal"))
	return nil
}
