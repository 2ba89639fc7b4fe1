package templates

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
	"cardata/policies/identity"
	"cardata/policies/session"
)

// SignInWith is a sign-in page's offer to sign in through an identity
// provider (View.SignInWith, keyed by the page's template name).
type SignInWith struct {
	Label string // the button: "Sign in with the company account"
	Path  string // the surface's start route, e.g. /admin/oidc/login
	// Note is a line under the button (the development provider's warning).
	Note string
	// NoPasswords hides the password form: the provider is the only way in.
	NoPasswords bool
}

// OIDCSignIn is what a browser surface (staff, /my, the partner portal)
// needs to sign people in through policies/identity: it keeps the cookie
// that binds a sign-in to the browser that started it and renders a
// refusal on the surface's sign-in page. Build one per surface and RP.
type OIDCSignIn struct {
	RP           *identity.RP
	CallbackPath string // the callback route: the cookie is sent there only
	Secure       bool   // COOKIE_SECURE
	Domain       string // COOKIE_DOMAIN
	Page, Title  string // the sign-in page's template and title, for refusals
	// SignInURL is the surface's sign-in page as an absolute URL: the
	// provider sends the browser there after its logout.
	SignInURL string
}

// SignOut ends the browser's session and clears its cookie (clear), then
// sends the browser to the sign-in page at local, or, for a session
// started through this provider, to the provider's end-session endpoint
// (AfterLogout). o may be nil (no provider).
func (o *OIDCSignIn) SignOut(c *fiber.Ctx, sessions *session.Store, clear func(*fiber.Ctx), local string) error {
	via := ""
	if tok := c.Cookies("cardata_session"); tok != "" {
		if s, err := sessions.Lookup(c.UserContext(), tok); err == nil {
			via = s.IdentityProvider
		}
		if err := sessions.Delete(c.UserContext(), tok); err != nil {
			return err
		}
	}
	clear(c)
	SetFlash(c, "info", "You have signed out.")
	return c.Redirect(o.AfterLogout(c, via, local), fiber.StatusSeeOther)
}

// AfterLogout is where a browser goes once the local session has ended:
// the provider's end-session endpoint when the session was started through
// this provider (via: session.Session.IdentityProvider) and the provider
// offers one (RP-initiated logout), otherwise local.
func (o *OIDCSignIn) AfterLogout(c *fiber.Ctx, via, local string) string {
	if o == nil || via == "" || via != o.RP.Name() {
		return local
	}
	if u := o.RP.LogoutURL(c.UserContext(), o.SignInURL); u != "" {
		return u
	}
	return local
}

// Begin sends the browser to the provider, to come back to next; 404
// when the surface has no provider (o is nil).
func (o *OIDCSignIn) Begin(c *fiber.Ctx, next string) error {
	if o == nil {
		return fiber.ErrNotFound
	}
	u, err := o.Start(c, next, "")
	if err != nil {
		return err
	}
	return c.Redirect(u, fiber.StatusSeeOther)
}

// Start starts a sign-in for the person who entered loginHint (may be
// empty), sets the cookie that binds it to this browser and returns the
// provider's URL to send the browser to. Begin redirects there; a page
// reached by a form (the partner portal's company sign-in) cannot, since
// the Content-Security-Policy's form-action does not name every
// provider's origin, and leads there by a link instead.
func (o *OIDCSignIn) Start(c *fiber.Ctx, next, loginHint string) (string, error) {
	start, err := o.RP.BeginFor(c.UserContext(), next, loginHint)
	if err != nil {
		return "", err
	}
	c.Cookie(&fiber.Cookie{Name: identity.CookieName(o.RP.Name()), Value: start.Cookie, Path: o.CallbackPath,
		Domain: o.Domain, HTTPOnly: true, Secure: o.Secure, SameSite: fiber.CookieSameSiteLaxMode,
		MaxAge: int(identity.Lifetime / time.Second)})
	return start.URL, nil
}

// Finish reads the provider's answer on the callback route and clears the
// cookie; the identity is verified (identity.RP.Finish). 404 when the
// surface has no provider.
func (o *OIDCSignIn) Finish(c *fiber.Ctx) (*identity.Identity, error) {
	if o == nil {
		return nil, fiber.ErrNotFound
	}
	name := identity.CookieName(o.RP.Name())
	cookie := c.Cookies(name)
	c.Cookie(&fiber.Cookie{Name: name, Value: "", Path: o.CallbackPath, Domain: o.Domain, HTTPOnly: true,
		Secure: o.Secure, SameSite: fiber.CookieSameSiteLaxMode, MaxAge: -1, Expires: time.Unix(1, 0)})
	return o.RP.Finish(c.UserContext(), cookie, identity.Callback{State: c.Query("state"), Code: c.Query("code"),
		Error: c.Query("error"), ErrorDescription: c.Query("error_description")})
}

// Refused renders the sign-in page with the reason a sign-in through the
// provider was refused: 401, 403 or 503 by the error's kind. Internal
// errors go to the error handler.
func (o *OIDCSignIn) Refused(v *View, c *fiber.Ctx, err error) error {
	if o == nil {
		return err
	}
	e := errs.As(err)
	status := fiber.StatusUnauthorized
	switch e.Kind {
	case errs.Forbidden, errs.Invalid:
		status = fiber.StatusForbidden
	case errs.Unavailable:
		status = fiber.StatusServiceUnavailable
	case errs.Unauthorized:
	default:
		return err
	}
	return v.Render(c, status, o.Page, &Page{Title: o.Title, Flash: &Flash{Kind: "error", Message: ErrorText(c, e)}})
}
