package admin

import (
	"net/url"
	"slices"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/secondfactor"
	"cardata/admin/staff"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/session"
	"cardata/policies/totp"
	"cardata/templates"
)

// The second factor of local staff accounts (policies/totp). After the
// password, an account with an authenticator app gets a pending session
// and is asked for a code (or a recovery code) at /admin/login/code; an
// account whose role requires one and has none is sent to set it up at
// /admin/login/enrol. A pending session carries no principal, so no other
// page of the staff UI is reachable in between; once the step is done it
// is replaced by a full session under a new token. Sign-ins through the
// company's identity provider leave the second factor to the provider.

// sessionCookie is the session cookie's name (app/web.SessionCookie).
const sessionCookie = "cardata_session"

// ErrLocalSignInOff refuses a staff password sign-in with LOCAL_STAFF_SIGNIN=off.
var ErrLocalSignInOff = errs.New(errs.Forbidden, "local_staff_signin_off",
	"Staff sign in with their company account; sign-in with a password is turned off")

// Paths of the second step.
const (
	codePath  = "/admin/login/code"
	enrolPath = "/admin/login/enrol"
)

// SecondStepRoutes are the second step's routes: public, because the
// request has no principal yet; each handler finds the pending session
// itself and sends anyone without one back to the sign-in.
var SecondStepRoutes = [][2]string{
	{fiber.MethodGet, codePath}, {fiber.MethodPost, codePath},
	{fiber.MethodGet, enrolPath}, {fiber.MethodPost, enrolPath},
}

func factorOf(u *staff.User) totp.Subject {
	return totp.Subject{Kind: policies.KindStaff, ID: u.ID, Account: u.Email}
}

// totpRequired reports whether one of u's roles requires an authenticator
// app (STAFF_TOTP_REQUIRED_ROLES).
func (h *Handlers) totpRequired(u *staff.User) bool {
	for _, r := range u.Roles {
		if slices.Contains(h.TOTPRequiredRoles, r) {
			return true
		}
	}
	return false
}

// secondStep is what a password sign-in of u still needs: a code, the
// enrolment its role requires, or nothing.
func (h *Handlers) secondStep(c *fiber.Ctx, u *staff.User) (string, error) {
	if h.Factors == nil {
		return "", nil
	}
	on, err := h.Factors.Enabled(c.UserContext(), factorOf(u))
	switch {
	case err != nil:
		return "", err
	case on:
		return session.PendingCode, nil
	case h.totpRequired(u):
		return session.PendingEnrol, nil
	}
	return "", nil
}

func withNext(path, next string) string {
	if next = safeNext(next); next == "/admin" {
		return path
	}
	return path + "?next=" + url.QueryEscape(next)
}

// pendingSignIn is the browser's sign-in waiting for step, with its
// account; no token when there is none (or it lapsed).
func (h *Handlers) pendingSignIn(c *fiber.Ctx, step string) (string, *staff.User, error) {
	tok := c.Cookies(sessionCookie)
	s, err := h.Sessions.Lookup(c.UserContext(), tok)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			return "", nil, err
		}
		return "", nil, nil
	}
	if s.Pending != step || s.SubjectKind != policies.KindStaff {
		return "", nil, nil
	}
	u, err := h.Staff.FindByID(c.UserContext(), s.SubjectID)
	if err != nil && errs.KindOf(err) == errs.Internal {
		return "", nil, err
	}
	if err != nil || !u.Active {
		return "", nil, nil
	}
	return tok, u, nil
}

// noStep sends a browser that is signed in already on; one without the
// pending session the step needs back to the sign-in.
func (h *Handlers) noStep(c *fiber.Ctx) error {
	if p := policies.PrincipalFrom(c.UserContext()); p != nil && p.Kind == policies.KindStaff {
		return c.Redirect(safeNext(c.Query("next", c.FormValue("next"))), fiber.StatusSeeOther)
	}
	templates.SetFlash(c, "info", "Please sign in again.")
	return c.Redirect(withNext("/admin/login", c.Query("next", c.FormValue("next"))), fiber.StatusSeeOther)
}

// promote ends the pending session behind tok and starts a full one for u
// under a new token; the request goes on as u.
func (h *Handlers) promote(c *fiber.Ctx, tok string, u *staff.User) error {
	if err := h.Sessions.Delete(c.UserContext(), tok); err != nil {
		return err
	}
	token, s, err := h.Sessions.Create(c.UserContext(), policies.KindStaff, u.ID, policies.RequestFrom(c.UserContext()).ClientAddr, c.Get(fiber.HeaderUserAgent))
	if err != nil {
		return err
	}
	h.StartSession(c, token)
	c.SetUserContext(policies.WithPrincipal(c.UserContext(), u.Principal(s.ID)))
	return nil
}

func (h *Handlers) codeForm(c *fiber.Ctx) error {
	_, u, err := h.pendingSignIn(c, session.PendingCode)
	if err != nil || u == nil {
		return firstErr(err, h.noStep(c))
	}
	return h.View.Render(c, fiber.StatusOK, "admin/login_code", &templates.Page{Title: "Sign in",
		Form: map[string]string{"next": c.Query("next")}})
}

func (h *Handlers) code(c *fiber.Ctx) error {
	tok, u, err := h.pendingSignIn(c, session.PendingCode)
	if err != nil || u == nil {
		return firstErr(err, h.noStep(c))
	}
	// The audit trail names the person who passed the password.
	ctx := policies.WithPrincipal(c.UserContext(), u.Principal(0))
	recovery, err := h.Factors.Verify(ctx, factorOf(u), c.FormValue("code"), policies.RequestFrom(ctx).ClientAddr)
	if err != nil {
		return secondfactor.CodeRefused(h.View, c, err, "Sign in", "admin/login_code", nil, fiber.StatusUnauthorized)
	}
	if err := h.promote(c, tok, u); err != nil {
		return err
	}
	if recovery {
		templates.SetFlash(c, "info", "You signed in with a recovery code, which is now used up. If your authenticator app is lost, set it up again on your account page.")
	}
	return c.Redirect(safeNext(c.FormValue("next")), fiber.StatusSeeOther)
}

// account is the account page's second factor (admin/secondfactor).
func (h *Handlers) account2FA() *secondfactor.Account {
	return &secondfactor.Account{View: h.View, Factors: h.Factors, Path: "/admin/account", SignInTitle: "Sign in",
		Me: func(c *fiber.Ctx) (totp.Subject, bool, error) {
			u, err := h.me(c)
			if err != nil {
				return totp.Subject{}, false, err
			}
			return factorOf(u), h.totpRequired(u), nil
		},
		RenderAccount: h.renderAccount}
}

func (h *Handlers) enrolForm(c *fiber.Ctx) error {
	_, u, err := h.pendingSignIn(c, session.PendingEnrol)
	if err != nil || u == nil {
		return firstErr(err, h.noStep(c))
	}
	e, err := h.Factors.BeginEnrolment(c.UserContext(), factorOf(u))
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/totp/enrol", &templates.Page{Title: "Set up your authenticator app",
		Data: secondfactor.EnrolPage{Enrolment: e, Action: enrolPath, Required: true}, Form: map[string]string{"next": c.Query("next")}})
}

func (h *Handlers) enrol(c *fiber.Ctx) error {
	tok, u, err := h.pendingSignIn(c, session.PendingEnrol)
	if err != nil || u == nil {
		return firstErr(err, h.noStep(c))
	}
	ctx := policies.WithPrincipal(c.UserContext(), u.Principal(0))
	codes, err := h.Factors.ConfirmEnrolment(ctx, factorOf(u), c.FormValue("code"), policies.RequestFrom(ctx).ClientAddr)
	if errs.Is(err, "second_factor_missing") { // no QR code shown yet
		return c.Redirect(withNext(enrolPath, c.FormValue("next")), fiber.StatusSeeOther)
	}
	if err != nil {
		e, berr := h.Factors.BeginEnrolment(c.UserContext(), factorOf(u))
		if berr != nil {
			return berr
		}
		return secondfactor.CodeRefused(h.View, c, err, "Sign in", "admin/totp/enrol", secondfactor.EnrolPage{Enrolment: e, Action: enrolPath, Required: true}, fiber.StatusUnauthorized)
	}
	if err := h.promote(c, tok, u); err != nil {
		return err
	}
	return secondfactor.ShowRecoveryCodes(h.View, c, codes, safeNext(c.FormValue("next")))
}

func (h *Handlers) me(c *fiber.Ctx) (*staff.User, error) {
	return h.Staff.FindByID(c.UserContext(), policies.PrincipalFrom(c.UserContext()).ID)
}

func firstErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}
