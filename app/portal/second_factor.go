package portal

import (
	"net/url"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/secondfactor"
	"cardata/app/web"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/policies/totp"
	"cardata/templates"
)

// The second factor of the portal's local (password) accounts, on the
// staff sign-in's model (admin/second_factor.go) and its store
// (policies/totp): after the password an account with an authenticator app
// gets a pending session, which resolves to no principal, and is asked for
// a code (or a recovery code) at /portal/login/code. Company sign-ins
// leave the second factor to the company's identity provider.

const (
	codePath    = "/portal/login/code"
	accountPath = "/portal/account"
)

// SecondStepRoutes are the second step's routes: public, because the
// request has no principal yet; the handlers find the pending session
// themselves and send anyone without one back to the sign-in.
var SecondStepRoutes = [][2]string{{fiber.MethodGet, codePath}, {fiber.MethodPost, codePath}}

func factorOf(u *onboarding.ProviderUser) totp.Subject {
	return totp.Subject{Kind: policies.KindProvider, ID: u.ID, Account: u.Email}
}

func withNext(path, next string) string {
	if next = safeNext(next); next == "/portal" {
		return path
	}
	return path + "?next=" + url.QueryEscape(next)
}

// passwordSignIn starts the session of a password sign-in of u: a pending
// one waiting for the code when u has an authenticator app.
func (h *Handlers) passwordSignIn(c *fiber.Ctx, u *onboarding.ProviderUser, next string) error {
	if h.Factors == nil {
		return h.startSession(c, u, next)
	}
	on, err := h.Factors.Enabled(c.UserContext(), factorOf(u))
	if err != nil {
		return err
	}
	if !on {
		return h.startSession(c, u, next)
	}
	token, _, err := h.Sessions.CreatePending(c.UserContext(), policies.KindProvider, u.ID, web.ClientAddr(c), c.Get(fiber.HeaderUserAgent), session.PendingCode)
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	return c.Redirect(withNext(codePath, next), fiber.StatusSeeOther)
}

// pendingSignIn is the browser's sign-in waiting for its code, with its
// account and principal; no token when there is none (or it lapsed).
func (h *Handlers) pendingSignIn(c *fiber.Ctx) (string, *onboarding.ProviderUser, *policies.Principal, error) {
	tok := c.Cookies("cardata_session")
	s, err := h.Sessions.Lookup(c.UserContext(), tok)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			return "", nil, nil, err
		}
		return "", nil, nil, nil
	}
	if s.Pending != session.PendingCode || s.SubjectKind != policies.KindProvider {
		return "", nil, nil, nil
	}
	p, err := h.Onboarding.ResolvePrincipal(c.UserContext(), s.SubjectID, 0)
	if err != nil || p == nil { // deactivated, or the provider terminated
		return "", nil, nil, err
	}
	u, err := h.Onboarding.FindProviderUserByID(c.UserContext(), s.SubjectID)
	if err != nil {
		return "", nil, nil, err
	}
	return tok, u, p, nil
}

// noStep sends a browser signed in already on; one without a pending
// session back to the sign-in.
func (h *Handlers) noStep(c *fiber.Ctx) error {
	next := c.Query("next", c.FormValue("next"))
	if p := policies.PrincipalFrom(c.UserContext()); p != nil && p.Kind == policies.KindProvider {
		return c.Redirect(safeNext(next), fiber.StatusSeeOther)
	}
	templates.SetFlash(c, "info", "Please sign in again.")
	return c.Redirect(withNext("/portal/login", next), fiber.StatusSeeOther)
}

func (h *Handlers) codeForm(c *fiber.Ctx) error {
	_, u, _, err := h.pendingSignIn(c)
	if err != nil || u == nil {
		return firstErr(err, h.noStep(c))
	}
	return h.View.Render(c, fiber.StatusOK, "portal/login_code", &templates.Page{Title: "Partner portal sign-in",
		Form: map[string]string{"next": c.Query("next")}})
}

func (h *Handlers) code(c *fiber.Ctx) error {
	tok, u, p, err := h.pendingSignIn(c)
	if err != nil || u == nil {
		return firstErr(err, h.noStep(c))
	}
	// The audit trail names the person who passed the password.
	ctx := policies.WithPrincipal(c.UserContext(), p)
	recovery, err := h.Factors.Verify(ctx, factorOf(u), c.FormValue("code"), policies.RequestFrom(ctx).ClientAddr)
	if err != nil {
		return secondfactor.CodeRefused(h.View, c, err, "Partner portal sign-in", "portal/login_code", nil, fiber.StatusUnauthorized)
	}
	// The token that passed only the password never becomes a sign-in.
	if err := h.Sessions.Delete(c.UserContext(), tok); err != nil {
		return err
	}
	if recovery {
		templates.SetFlash(c, "info", "You signed in with a recovery code, which is now used up. If your authenticator app is lost, set it up again on your account page.")
	}
	return h.startSession(c, u, safeNext(c.FormValue("next")))
}

// The account page and its second factor.

func (h *Handlers) signedInUser(c *fiber.Ctx) (*onboarding.ProviderUser, error) {
	p, err := me(c)
	if err != nil {
		return nil, err
	}
	return h.Onboarding.FindProviderUserByID(c.UserContext(), p.ID)
}

func (h *Handlers) account(c *fiber.Ctx) error {
	return h.renderAccount(c, fiber.StatusOK, nil)
}

func (h *Handlers) renderAccount(c *fiber.Ctx, status int, fieldErrs map[string]string) error {
	u, err := h.signedInUser(c)
	if err != nil {
		return err
	}
	sec, err := h.account2FA().Section(c, factorOf(u), h.Factors != nil, false)
	if err != nil {
		return err
	}
	sec.TOTPCompanySignIn = true
	return h.View.Render(c, status, "portal/account", &templates.Page{Title: "My account", Errors: fieldErrs, Data: struct {
		User *onboarding.ProviderUser
		secondfactor.Section
	}{u, sec}})
}

// account2FA is the account page's second factor (admin/secondfactor).
func (h *Handlers) account2FA() *secondfactor.Account {
	return &secondfactor.Account{View: h.View, Factors: h.Factors, Path: accountPath, SignInTitle: "Partner portal sign-in",
		Me: func(c *fiber.Ctx) (totp.Subject, bool, error) {
			u, err := h.signedInUser(c)
			if err != nil {
				return totp.Subject{}, false, err
			}
			return factorOf(u), false, nil
		},
		RenderAccount: h.renderAccount}
}

func firstErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}
