package app

import "cardata/app/portal"

// mountSandbox mounts the portal's sandbox page (issue 19): the provider's
// simulated fleet, the simulated customers' consent buttons and the
// sandbox's deliveries (never billed). The sandbox itself is the same
// provider API (mountAPI) for sandbox clients, isolated by the data-access
// decision; its job is registered in jobs.go.
func (a *App) mountSandbox() error {
	s := a.Services
	pages := &portal.SandboxPages{View: a.View, Onboarding: s.Onboarding, Vehicles: s.Vehicles, Consents: s.Consents, Containers: s.Containers,
		Billing: s.Billing, Location: a.Cfg.BillingTimezone}
	pages.Routes(a.surface("/portal"))
	a.View.AddNav("Partner portal", portal.SandboxNav())
	return nil
}
