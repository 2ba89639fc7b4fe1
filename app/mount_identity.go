package app

import (
	"fmt"
	"net"
	"net/url"
	"strconv"

	"cardata/admin/staff"
	"cardata/app/config"
	"cardata/app/devidp"
	"cardata/policies/identity"
	"cardata/templates"
)

// signInWith builds a surface's sign-in through an OpenID provider
// (policies/identity) and offers it on the surface's sign-in page; nil
// when the provider is not configured.
func (a *App) signInWith(name string, o config.OIDC, prefix, page, title, label string) (*templates.OIDCSignIn, error) {
	if !o.Enabled() {
		return nil, nil
	}
	rp, err := identity.New(a.DB, identity.Settings{Name: name, Issuer: o.Issuer, ClientID: o.ClientID,
		ClientSecret: o.ClientSecret, RedirectURL: a.Cfg.PublicURL + prefix + "/oidc/callback", Scopes: o.Scopes})
	if err != nil {
		return nil, err
	}
	offer := templates.SignInWith{Label: label, Path: prefix + "/oidc/login"}
	if a.Cfg.DevIdP {
		offer.Note = "Development identity provider: choose a demo identity on its page."
	}
	if a.View.SignInWith == nil {
		a.View.SignInWith = map[string]templates.SignInWith{}
	}
	a.View.SignInWith[page] = offer
	return &templates.OIDCSignIn{RP: rp, CallbackPath: prefix + "/oidc/callback", Secure: a.Cookies.Secure,
		Domain: a.Cookies.Domain, Page: page, Title: title, SignInURL: a.Cfg.PublicURL + prefix + "/login"}, nil
}

// staffSignIn is the staff sign-in through the company's provider
// (STAFF_OIDC_*), its role mapping checked against the known roles.
func (a *App) staffSignIn() (*templates.OIDCSignIn, error) {
	if err := staff.CheckRoleMap(a.Cfg.StaffOIDC.RoleMap); err != nil {
		return nil, fmt.Errorf("configuration: STAFF_OIDC_ROLE_MAP: %w", err)
	}
	return a.signInWith("staff", a.Cfg.StaffOIDC, "/admin", "admin/login", "Sign in", "Sign in with your company account")
}

// identityOrigins are the configured providers' origins: sign-out forms
// lead there (the browser checks a form's redirects against the
// Content-Security-Policy's form-action).
func identityOrigins(cfg config.Config) []string {
	var out []string
	for _, o := range []config.OIDC{cfg.StaffOIDC, cfg.CustomerOIDC} {
		if u, err := url.Parse(o.Issuer); err == nil && o.Enabled() {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}

// StartDevIdP starts the development identity providers when DEV_IDP=1
// (config has pointed STAFF_OIDC_* and CUSTOMER_OIDC_* at them): the
// company's on DEV_IDP_ADDR, the customers' on the next port. They stop
// with the app.
func (a *App) StartDevIdP() error {
	if !a.Cfg.DevIdP {
		return nil
	}
	host, port, _ := net.SplitHostPort(a.Cfg.DevIdPAddr)
	p, _ := strconv.Atoi(port)
	st, err := devidp.Start(a.Cfg.DevIdPAddr, "Company identity (staff)", a.Cfg.StaffOIDC.ClientID, config.DevIdPClientSecret, devidp.Staff())
	if err != nil {
		return err
	}
	a.onShutdown(st.Close)
	cu, err := devidp.Start(net.JoinHostPort(host, strconv.Itoa(p+1)), "Manufacturer customer identity (vehicle owners)",
		a.Cfg.CustomerOIDC.ClientID, config.DevIdPClientSecret, devidp.Customers())
	if err != nil {
		return err
	}
	a.onShutdown(cu.Close)
	a.Log.Warn("development identity provider running: not for production", "staff", st.Addr(), "customers", cu.Addr())
	return nil
}
