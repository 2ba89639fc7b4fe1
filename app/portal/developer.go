package portal

import (
	"html/template"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/templates"
)

// DeveloperPage is /portal/developer: what a provider's developer needs to
// start with the provider API in one place: the base and token URLs, the
// provider's client ids, the limits that apply, the reference, the
// changelog and the example program. Its figures come from the API handler
// (app wires them in), never from text written here.
type DeveloperPage struct {
	View       *templates.View
	Onboarding *onboarding.Service
	BaseURL    string           // PUBLIC_URL: the API is served under it
	Limits     func() APILimits // the limits the API applies now
	Example    string           // the example program's source (app/providerapi/client/example)
	Changelog  template.HTML    // the API changelog, rendered
}

// APILimits are the provider API's limits (providerapi.Limits, converted
// by app).
type APILimits struct {
	RatePerSecond   float64
	Burst           int
	TokenTTL        time.Duration
	PageMax         int
	PageDefault     int
	AuthFailures    int
	AuthWindow      time.Duration
	IdempotencyKept time.Duration
}

// Routes mounts the page on r (the /portal group).
func (h *DeveloperPage) Routes(r fiber.Router) {
	r.Get("/developer", h.show)
}

// DeveloperNav is the page's navigation entry.
func DeveloperNav() templates.NavItem {
	return templates.NavItem{Label: "Developers", Path: "/portal/developer"}
}

type developerPage struct {
	BaseURL, APIURL, TokenURL string
	Clients                   []onboarding.APIClient // the provider's production clients that are not revoked
	SandboxClients            []onboarding.APIClient // its sandbox clients that are not revoked, listed apart
	Limits                    shownLimits
	Example                   string
	Changelog                 template.HTML
}

// shownLimits are the limits in the units the page states them in.
type shownLimits struct {
	Rate                                                                                   float64 // requests back per second
	Burst, TokenMinutes, PageMax, PageDefault, AuthFailures, AuthMinutes, IdempotencyHours int
}

func (h *DeveloperPage) show(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	all, err := h.Onboarding.FindAPIClients(c.UserContext(), me.ProviderID)
	if err != nil {
		return err
	}
	d := developerPage{BaseURL: h.BaseURL, APIURL: h.BaseURL + "/api/v1", TokenURL: h.BaseURL + "/oauth/token",
		Example: h.Example, Changelog: h.Changelog}
	for _, cl := range all {
		switch {
		case cl.Revoked():
		case cl.Sandbox:
			d.SandboxClients = append(d.SandboxClients, cl)
		default:
			d.Clients = append(d.Clients, cl)
		}
	}
	l := h.Limits()
	d.Limits = shownLimits{Rate: l.RatePerSecond, Burst: l.Burst, TokenMinutes: int(l.TokenTTL.Minutes()), PageMax: l.PageMax, PageDefault: l.PageDefault,
		AuthFailures: l.AuthFailures, AuthMinutes: int(l.AuthWindow.Minutes()), IdempotencyHours: int(l.IdempotencyKept.Hours())}
	return h.View.Render(c, fiber.StatusOK, "portal/developer", &templates.Page{Title: "Developers", Data: d})
}
