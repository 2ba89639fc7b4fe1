// Package customer is the customer portal at /my: a vehicle owner signs in,
// sees their vehicles and the providers' consent requests (provider,
// purpose, the data keys in plain language), grants or denies them, revokes
// a grant in two clicks, reads the history, and downloads the data report
// and the transaction report. Every page acts for the signed-in customer:
// the account id comes from the session, never from the URL.
package customer

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/templates"
	"cardata/templates/i18n"
)

// Handlers holds what the customer pages need.
type Handlers struct {
	View     *templates.View
	Consents *consent.Service
	Sessions *session.Store
	// StartSession and EndSession set and clear the session cookie (app/web owns cookies).
	StartSession func(c *fiber.Ctx, token string)
	EndSession   func(c *fiber.Ctx)
	Location     *time.Location
	// OIDC signs vehicle owners in through the manufacturer's customer
	// identity (CUSTOMER_OIDC_*); nil when none is configured.
	OIDC *templates.OIDCSignIn
	// NoPasswords refuses local customer passwords: with a customer
	// identity configured they remain for the development provider only.
	NoPasswords bool
}

// Routes mounts the portal on r (the /my group).
func (h *Handlers) Routes(r fiber.Router) {
	r.Get("/login", h.loginForm)
	r.Post("/login", h.login)
	r.Post("/logout", h.logout)
	r.Get("/oidc/login", h.oidcLogin)
	r.Get("/oidc/callback", h.oidcCallback)
	r.Get("", h.home)
	r.Get("/consents/:id", h.showConsent)
	r.Post("/consents/:id/grant", h.grant)
	r.Post("/consents/:id/deny", h.deny)
	r.Get("/consents/:id/revoke", h.confirmRevoke)
	r.Post("/consents/:id/revoke", h.View.Confirm(h.confirmRevokePost), h.revoke)
	r.Get("/history", h.history)
	r.Get("/reports", h.reports)
	r.Post("/reports", h.requestReport)
	r.Get("/reports/:id/download", h.downloadReport)
	r.Get("/transactions", h.transactions)
}

// PublicRoutes are the routes anyone may call (method, path as registered).
var PublicRoutes = [][2]string{{fiber.MethodGet, "/my/login"}, {fiber.MethodPost, "/my/login"},
	{fiber.MethodGet, "/my/oidc/login"}, {fiber.MethodGet, "/my/oidc/callback"}}

// Nav is the customer navigation.
func Nav() []templates.NavItem {
	return []templates.NavItem{
		{Label: "My vehicles and consents", Path: "/my", Also: []string{"/my/consents"}},
		{Label: "History", Path: "/my/history"},
		{Label: "My data and reports", Path: "/my/reports", Also: []string{"/my/transactions"}},
	}
}

// me returns the signed-in customer; the guard has checked the role.
func me(c *fiber.Ctx) (*policies.Principal, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindCustomer || p.ID == 0 {
		return nil, errs.New(errs.Forbidden, "customer_only", "these pages are for vehicle owners")
	}
	return p, nil
}

// safeNext keeps post-login redirects inside /my.
func safeNext(next string) string { return templates.SafeNext(next, "/my", "/my/login") }

func (h *Handlers) loginForm(c *fiber.Ctx) error {
	if p := policies.PrincipalFrom(c.UserContext()); p != nil && p.Kind == policies.KindCustomer {
		return c.Redirect(safeNext(c.Query("next")), fiber.StatusSeeOther)
	}
	return h.View.Render(c, fiber.StatusOK, "my/login", &templates.Page{Title: "Sign in to My CarData",
		Form: map[string]string{"next": c.Query("next")}})
}

// ErrPasswordsOff refuses a password sign-in to /my where vehicle owners
// sign in through the manufacturer's customer identity.
var ErrPasswordsOff = errs.New(errs.Forbidden, "customer_passwords_off",
	"Vehicle owners sign in with their BMW or MINI account")

func (h *Handlers) login(c *fiber.Ctx) error {
	if h.NoPasswords {
		return h.View.Render(c, fiber.StatusForbidden, "my/login", &templates.Page{Title: "Sign in to My CarData",
			Flash: &templates.Flash{Kind: "error", Message: ErrPasswordsOff.Message}})
	}
	email := c.FormValue("email")
	cust, err := h.Consents.AuthenticateCustomer(c.UserContext(), email, c.FormValue("password"), web.ClientAddr(c))
	if err != nil {
		return h.View.SignInFailed(c, err, "my/login", "Sign in to My CarData")
	}
	token, _, err := h.Sessions.Create(c.UserContext(), policies.KindCustomer, cust.ID, web.ClientAddr(c), c.Get(fiber.HeaderUserAgent))
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(safeNext(c.FormValue("next")), fiber.StatusSeeOther)
}

func (h *Handlers) logout(c *fiber.Ctx) error {
	// A session from the identity provider ends there too.
	return h.OIDC.SignOut(c, h.Sessions, h.EndSession, "/my/login")
}

// oidcLogin sends the browser to the manufacturer's customer identity.
func (h *Handlers) oidcLogin(c *fiber.Ctx) error {
	return h.OIDC.Begin(c, safeNext(c.Query("next")))
}

// oidcCallback signs in the account the customer identity's subject maps
// to (consent.Service.SignInExternal); the session records the subject,
// which the consent decisions made in it record in turn.
func (h *Handlers) oidcCallback(c *fiber.Ctx) error {
	id, err := h.OIDC.Finish(c)
	if err != nil {
		return h.OIDC.Refused(h.View, c, err)
	}
	cust, err := h.Consents.SignInExternal(c.UserContext(), id.Subject, id.Email, id.EmailVerified)
	if err != nil {
		return h.OIDC.Refused(h.View, c, err)
	}
	token, _, err := h.Sessions.CreateVia(c.UserContext(), policies.KindCustomer, cust.ID, web.ClientAddr(c), c.Get(fiber.HeaderUserAgent), id.Provider, id.Subject)
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(safeNext(id.Next), fiber.StatusSeeOther)
}

// vehicleRow is a vehicle with its consents, for the overview.
type vehicleRow struct {
	consent.Vehicle
	Pending []consent.Consent
	Active  []consent.Consent
	// NoData is why the vehicle sends nothing a provider could receive
	// (the capability service's reasons); empty when it can.
	NoData []consent.Ineligibility
}

type homePage struct {
	Vehicles []vehicleRow
	Pending  int
	Active   int
}

func (h *Handlers) home(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	vs, err := h.Consents.CustomerVehicles(ctx, me.ID)
	if err != nil {
		return err
	}
	list, err := h.Consents.FindCustomerConsents(ctx, me.ID)
	if err != nil {
		return err
	}
	page := homePage{}
	index := map[int64]int{}
	for _, v := range vs {
		index[v.ID] = len(page.Vehicles)
		noData, err := h.Consents.WhyNoData(ctx, v.VIN)
		if err != nil {
			return err
		}
		page.Vehicles = append(page.Vehicles, vehicleRow{Vehicle: v, NoData: noData})
	}
	for _, k := range list {
		i, ok := index[k.VehicleID]
		if !ok {
			continue
		}
		switch k.State {
		case consent.Requested:
			page.Vehicles[i].Pending = append(page.Vehicles[i].Pending, k)
			page.Pending++
		case consent.Granted:
			page.Vehicles[i].Active = append(page.Vehicles[i].Active, k)
			page.Active++
		}
	}
	return h.View.Render(c, fiber.StatusOK, "my/home", &templates.Page{Title: "My vehicles and consents", Data: page})
}

type consentPage struct {
	Consent  *consent.Consent
	Keys     []consent.Key
	History  []consent.Change
	Purpose  consent.Purpose
	Primary  bool // the signed-in customer decides on it
	Provider string
	MaxEnd   string // the latest end date the customer may choose (yyyy-mm-dd)
	MinEnd   string
}

func (h *Handlers) loadConsent(c *fiber.Ctx) (*consentPage, error) {
	me, err := me(c)
	if err != nil {
		return nil, err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return nil, err
	}
	ctx := c.UserContext()
	k, err := h.Consents.FindCustomerConsent(ctx, me.ID, id)
	if err != nil {
		return nil, err
	}
	keys, err := h.Consents.KeysOfVersions(ctx, k.ContainerVersionID)
	if err != nil {
		return nil, err
	}
	changes, err := h.Consents.Changes(ctx, k.ID)
	if err != nil {
		return nil, err
	}
	vs, err := h.Consents.CustomerVehicles(ctx, me.ID)
	if err != nil {
		return nil, err
	}
	primary := false
	for _, v := range vs {
		if v.ID == k.VehicleID && v.IsPrimary() && k.AccountID == me.ID {
			primary = true
		}
	}
	purpose, _ := consent.PurposeByCode(k.PurposeCode)
	p := &consentPage{Consent: k, Keys: keys[k.ContainerVersionID], History: changes[k.ID], Purpose: purpose, Primary: primary,
		MinEnd: time.Now().In(h.loc()).AddDate(0, 0, 1).Format("2006-01-02")}
	if k.EndsAt != nil {
		p.MaxEnd = k.EndsAt.In(h.loc()).Format("2006-01-02")
	}
	return p, nil
}

func (h *Handlers) loc() *time.Location {
	if h.Location != nil {
		return h.Location
	}
	return time.UTC
}

func (h *Handlers) showConsent(c *fiber.Ctx) error {
	p, err := h.loadConsent(c)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "my/consent", &templates.Page{Title: p.Consent.ProviderName, Data: p})
}

// consentError re-renders the consent page with the domain's refusal.
func (h *Handlers) consentError(c *fiber.Ctx, err error, form map[string]string) error {
	status := fiber.StatusConflict
	var fe map[string]string
	switch errs.KindOf(err) {
	case errs.Invalid:
		status, fe = fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err)
	case errs.Conflict, errs.Forbidden:
		if errs.KindOf(err) == errs.Forbidden {
			status = fiber.StatusForbidden
		}
		fe = map[string]string{"decision": templates.ErrorText(c, err)}
	default:
		return err
	}
	p, lerr := h.loadConsent(c)
	if lerr != nil {
		return lerr
	}
	return h.View.Render(c, status, "my/consent", &templates.Page{Title: p.Consent.ProviderName, Data: p, Errors: fe, Form: form})
}

func (h *Handlers) grant(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	var end *time.Time
	raw := strings.TrimSpace(c.FormValue("ends_at"))
	if raw != "" {
		d, perr := time.ParseInLocation("2006-01-02", raw, h.loc())
		if perr != nil {
			var v errs.Validation
			v.Add("ends_at", "ends_at_invalid", "enter the date as YYYY-MM-DD")
			return h.consentError(c, v.Err(), map[string]string{"ends_at": raw})
		}
		e := d.AddDate(0, 0, 1) // the consent holds through the chosen day
		end = &e
	}
	if err := h.Consents.Grant(c.UserContext(), me.ID, id, end); err != nil {
		return h.consentError(c, err, map[string]string{"ends_at": raw})
	}
	templates.SetFlash(c, "success", "Consent granted. You can revoke it at any time.")
	return c.Redirect("/my/consents/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

func (h *Handlers) deny(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if err := h.Consents.Deny(c.UserContext(), me.ID, id); err != nil {
		return h.consentError(c, err, nil)
	}
	templates.SetFlash(c, "success", "Request denied. The provider receives no data.")
	return c.Redirect("/my/consents/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
}

// confirmRevoke is the second of the two clicks: the first is "Revoke" on
// the overview or the consent page, this page asks once more.
func (h *Handlers) confirmRevoke(c *fiber.Ctx) error {
	p, err := h.loadConsent(c)
	if err != nil {
		return err
	}
	if p.Consent.State != consent.Granted || !p.Primary {
		return c.Redirect("/my/consents/"+strconv.FormatInt(p.Consent.ID, 10), fiber.StatusSeeOther)
	}
	return h.View.Ask(c, revokeConfirmation(c, p), "/my/consents/"+strconv.FormatInt(p.Consent.ID, 10)+"/revoke")
}

// confirmRevokePost asks before a revocation posted from a page's form.
func (h *Handlers) confirmRevokePost(c *fiber.Ctx) (templates.Confirmation, error) {
	p, err := h.loadConsent(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	return revokeConfirmation(c, p), nil
}

func revokeConfirmation(c *fiber.Ctx, p *consentPage) templates.Confirmation {
	k := p.Consent
	return templates.Confirmation{
		Title: "Revoke this consent?",
		Effect: "{{.Provider}} will receive no more data of your {{.Vehicle}} (VIN {{.VIN}}) for “{{.Purpose}}”, from its very next request on. " +
			"The provider may then no longer offer you this service; to share data again, it has to ask you anew.",
		Yes: "Yes, revoke", No: "Keep it", Back: "/my",
		Args: []any{"Provider", k.ProviderName, "Vehicle", k.Brand + " " + k.Model, "VIN", k.VIN, "Purpose", i18n.T(templates.LangOf(c), p.Purpose.Label)}}
}

func (h *Handlers) revoke(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	if err := h.Consents.Revoke(c.UserContext(), me.ID, id); err != nil {
		return h.consentError(c, err, nil)
	}
	templates.SetFlash(c, "success", "Consent revoked. The provider receives no more data from now on.")
	return c.Redirect("/my", fiber.StatusSeeOther)
}

type historyRow struct {
	consent.Consent
	Changes []consent.Change
}

func (h *Handlers) history(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	list, err := h.Consents.FindCustomerConsents(ctx, me.ID)
	if err != nil {
		return err
	}
	ids := make([]int64, len(list))
	for i, k := range list {
		ids[i] = k.ID
	}
	changes, err := h.Consents.Changes(ctx, ids...)
	if err != nil {
		return err
	}
	rows := make([]historyRow, len(list))
	for i, k := range list {
		rows[i] = historyRow{Consent: k, Changes: changes[k.ID]}
	}
	return h.View.Render(c, fiber.StatusOK, "my/history", &templates.Page{Title: "History", Data: rows})
}
