package app

import "cardata/admin"

// mountSearch mounts the staff header's search (/admin/search) over the
// providers, tickets, invoices and vehicles the signed-in roles may open.
func (a *App) mountSearch() error {
	(&admin.SearchHandlers{View: a.View, Onboarding: a.Onboarding, Support: a.Support, Billing: a.Billing, Vehicles: a.Vehicles}).Routes(a.surface("/admin"))
	return nil
}
