package portal

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/identity"
	"cardata/templates"
)

// Company sign-in: provider users sign in through their own company's
// OpenID Connect provider, which the provider's administrator configures
// at /portal/company-sign-in. The person enters their e-mail address; its
// domain selects the provider whose configuration allows it; the flow is
// policies/identity's, one relying party per provider, all returning to
// one callback (/portal/oidc/callback).

// companySignInTitle is the sign-in page's title, for refusals.
const companySignInTitle = "Partner portal sign-in"

// company is the company sign-in of rp (nil: none yet) with the portal's
// cookie settings.
func (h *Handlers) company(rp *identity.RP) *templates.OIDCSignIn {
	o := h.Company
	o.RP = rp
	o.CallbackPath = onboarding.CompanySignInCallbackPath
	o.Page, o.Title = "portal/login", companySignInTitle
	return &o
}

// companyContinue is the page between the e-mail form and the company's
// identity provider. A form's redirect may only lead where the
// Content-Security-Policy's form-action allows, which cannot name every
// provider's company; so this page leads on by a Refresh (and a link),
// which is no form submission. It looks the same whether or not a
// provider allows the address, so the answer tells nobody which domains
// are configured beyond where the browser is sent.
type companyContinue struct{ URL string }

// companyLogin (POST /portal/oidc/login) starts a company sign-in for the
// address entered.
func (h *Handlers) companyLogin(c *fiber.Ctx) error {
	email := strings.ToLower(strings.TrimSpace(c.FormValue("email")))
	next := safeNext(c.FormValue("next"))
	if !strings.Contains(email, "@") || len(email) > 254 {
		return h.View.Render(c, fiber.StatusUnprocessableEntity, "portal/login", &templates.Page{Title: companySignInTitle,
			Errors: map[string]string{"company_email": "enter your e-mail address"},
			Form:   map[string]string{"company_email": email, "next": c.FormValue("next")}})
	}
	target := "/portal/login?company=unavailable"
	rp, _, err := h.Onboarding.SignInRPForEmail(c.UserContext(), email)
	if err != nil {
		return err
	}
	if rp != nil {
		u, err := h.company(rp).Start(c, next, email)
		switch {
		case err == nil:
			target = u
		case !identity.IsRefusal(err):
			return err
		}
		// The company's provider unreachable: the same answer as none.
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Refresh", "0; url="+target)
	return h.View.Render(c, fiber.StatusOK, "portal/company_continue", &templates.Page{Title: "Company sign-in",
		Data: companyContinue{URL: target}})
}

// companyCallback (GET /portal/oidc/callback) completes a company
// sign-in: the state names the provider whose sign-in it is, that
// provider's relying party verifies the answer (policies/identity), and
// the onboarding service finds the invited user it is
// (onboarding.Service.SignInCompany). The session is the same as a
// password's, and records the identity provider and subject.
func (h *Handlers) companyCallback(c *fiber.Ctx) error {
	ctx := c.UserContext()
	providerID, err := h.Onboarding.CompanySignInOf(ctx, c.Query("state"))
	if err != nil {
		return h.company(nil).Refused(h.View, c, err)
	}
	rp, err := h.Onboarding.SignInRP(ctx, providerID)
	if err != nil {
		return err
	}
	if rp == nil {
		if err := h.Onboarding.RecordCompanySignInFailure(ctx, providerID, onboarding.ErrCompanyOff.Code,
			"the company sign-in was switched off or removed during the sign-in"); err != nil {
			return err
		}
		return h.company(nil).Refused(h.View, c, onboarding.ErrCompanyOff)
	}
	o := h.company(rp)
	id, err := o.Finish(c)
	if err != nil {
		if identity.IsRefusal(err) {
			if aerr := h.Onboarding.RecordCompanySignInFailure(ctx, providerID, errs.As(err).Code, err.Error()); aerr != nil {
				return aerr
			}
		}
		return o.Refused(h.View, c, err)
	}
	in := onboarding.CompanyIdentity{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Entered: id.LoginHint}
	if v, ok := id.Claims["email_verified"]; ok {
		b := v == true || v == "true"
		in.EmailVerified = &b
	}
	if in.Email == "" { // Entra ID without the optional email claim: its user principal name
		in.Email, _ = id.Claims["preferred_username"].(string)
	}
	u, err := h.Onboarding.SignInCompany(ctx, providerID, in)
	if err != nil {
		return o.Refused(h.View, c, err)
	}
	token, _, err := h.Sessions.CreateVia(ctx, policies.KindProvider, u.ID, web.ClientAddr(c), c.Get(fiber.HeaderUserAgent), id.Provider, id.Subject)
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(safeNext(id.Next), fiber.StatusSeeOther)
}

// signInPage is the administrator's page of the company sign-in.
type signInPage struct {
	Config      *onboarding.SignInConfig // nil: none yet
	RedirectURI string
	// RetypeSecret: a secret was entered with a refused form; it is never
	// shown again, so it must be entered again.
	RetypeSecret bool
}

func (h *Handlers) signInSettings(c *fiber.Ctx) error {
	return h.renderSignInSettings(c, fiber.StatusOK, nil, nil, false)
}

func (h *Handlers) renderSignInSettings(c *fiber.Ctx, status int, fieldErrs, form map[string]string, retype bool) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	cfg, err := h.Onboarding.FindSignInConfig(c.UserContext(), me.ProviderID)
	if err != nil {
		return err
	}
	if form == nil {
		form = map[string]string{}
		if cfg != nil {
			form = map[string]string{"issuer": cfg.Issuer, "client_id": cfg.ClientID, "domains": strings.Join(cfg.Domains, ", ")}
		}
	}
	return h.View.Render(c, status, "portal/company_sign_in", &templates.Page{Title: "Company sign-in", Errors: fieldErrs, Form: form,
		Data: signInPage{Config: cfg, RedirectURI: h.Onboarding.CompanySignInRedirectURL(), RetypeSecret: retype}})
}

func (h *Handlers) saveSignInSettings(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	in := onboarding.SignInSettings{Issuer: c.FormValue("issuer"), ClientID: c.FormValue("client_id"),
		ClientSecret: c.FormValue("client_secret"), Domains: c.FormValue("domains")}
	_, err = h.Onboarding.SaveSignInConfig(c.UserContext(), me.ProviderID, in)
	if invalid(err) {
		// The input comes back, the secret never.
		return h.renderSignInSettings(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err),
			map[string]string{"issuer": in.Issuer, "client_id": in.ClientID, "domains": in.Domains}, strings.TrimSpace(in.ClientSecret) != "")
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Company sign-in saved.")
	return c.Redirect("/portal/company-sign-in", fiber.StatusSeeOther)
}

func (h *Handlers) enableSignIn(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	if err := h.Onboarding.SetSignInEnabled(c.UserContext(), me.ProviderID, true); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Company sign-in enabled.")
	return c.Redirect("/portal/company-sign-in", fiber.StatusSeeOther)
}

func (h *Handlers) disableSignIn(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	if err := h.Onboarding.SetSignInEnabled(c.UserContext(), me.ProviderID, false); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Company sign-in disabled.")
	return c.Redirect("/portal/company-sign-in", fiber.StatusSeeOther)
}

func (h *Handlers) removeSignIn(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	if err := h.Onboarding.RemoveSignInConfig(c.UserContext(), me.ProviderID); err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Company sign-in removed.")
	return c.Redirect("/portal/company-sign-in", fiber.StatusSeeOther)
}

func (h *Handlers) confirmDisableSignIn(c *fiber.Ctx) (templates.Confirmation, error) {
	cfg, err := h.currentSignIn(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	return templates.Confirmation{
		Title:  "Disable the company sign-in?",
		Effect: "Nobody can sign in through {{.Issuer}} any more, and everyone signed in through it is signed out at once. Users with a password keep signing in with it. You can enable it again.",
		Yes:    "Disable the company sign-in", Back: "/portal/company-sign-in", Args: []any{"Issuer", cfg.Issuer}}, nil
}

func (h *Handlers) confirmRemoveSignIn(c *fiber.Ctx) (templates.Confirmation, error) {
	cfg, err := h.currentSignIn(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	return templates.Confirmation{
		Title:  "Remove the company sign-in?",
		Effect: "The configuration of {{.Issuer}}, its client secret and its domains ({{.Domains}}) are deleted, and everyone signed in through it is signed out at once. Users with a password keep signing in with it.",
		Yes:    "Remove the company sign-in", Back: "/portal/company-sign-in",
		Args: []any{"Issuer", cfg.Issuer, "Domains", strings.Join(cfg.Domains, ", ")}}, nil
}

func (h *Handlers) currentSignIn(c *fiber.Ctx) (*onboarding.SignInConfig, error) {
	me, err := me(c)
	if err != nil {
		return nil, err
	}
	cfg, err := h.Onboarding.FindSignInConfig(c.UserContext(), me.ProviderID)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errs.New(errs.NotFound, "company_sign_in_not_found", "no company sign-in is configured")
	}
	return cfg, nil
}
