package admin

import (
	"html/template"
	"net/url"
	"slices"

	"github.com/gofiber/fiber/v2"

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
		return h.codeRefused(c, err, "admin/login_code", nil, fiber.StatusUnauthorized)
	}
	if err := h.promote(c, tok, u); err != nil {
		return err
	}
	if recovery {
		templates.SetFlash(c, "info", "You signed in with a recovery code, which is now used up. If your authenticator app is lost, set it up again on your account page.")
	}
	return c.Redirect(safeNext(c.FormValue("next")), fiber.StatusSeeOther)
}

// codeRefused re-renders a code form with the refusal on its field:
// wrong (401 at sign-in, 422 on a signed-in page) for a wrong or used code,
// 429 with Retry-After when throttled.
func (h *Handlers) codeRefused(c *fiber.Ctx, err error, page string, data any, wrong int) error {
	e := errs.As(err)
	status := wrong
	switch e.Kind {
	case errs.Unauthorized:
	case errs.TooMany:
		status = fiber.StatusTooManyRequests
		c.Set(fiber.HeaderRetryAfter, "300")
	default:
		return err
	}
	return h.View.Render(c, status, page, &templates.Page{Title: "Sign in", Data: data,
		Errors: map[string]string{"code": e.Message}, Form: map[string]string{"next": c.FormValue("next")}})
}

// enrolPage is the data of the enrolment page.
type enrolPage struct {
	*totp.Enrolment
	Action   string // where the first code is posted
	Back     string // the account page (the staff one when empty)
	Required bool   // set up because the role requires it, at sign-in
}

// QR is the QR code's data URI, for the img element (a PNG this server
// made: no external service sees the secret).
func (p enrolPage) QR() template.URL { return template.URL(p.QRImage) }

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
		Data: enrolPage{Enrolment: e, Action: enrolPath, Required: true}, Form: map[string]string{"next": c.Query("next")}})
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
		return h.codeRefused(c, err, "admin/totp/enrol", enrolPage{Enrolment: e, Action: enrolPath, Required: true}, fiber.StatusUnauthorized)
	}
	if err := h.promote(c, tok, u); err != nil {
		return err
	}
	return h.showRecoveryCodes(c, codes, safeNext(c.FormValue("next")))
}

// showRecoveryCodes shows new recovery codes, once: they are stored only
// as hashes.
func (h *Handlers) showRecoveryCodes(c *fiber.Ctx, codes []string, next string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.View.Render(c, fiber.StatusOK, "admin/totp/recovery_codes", &templates.Page{Title: "Your recovery codes",
		Data: struct {
			Codes []string
			Next  string
		}{codes, next}})
}

// The account page's second factor.

func (h *Handlers) accountEnrolForm(c *fiber.Ctx) error {
	u, err := h.me(c)
	if err != nil {
		return err
	}
	e, err := h.Factors.BeginEnrolment(c.UserContext(), factorOf(u))
	if errs.Is(err, "second_factor_present") {
		return c.Redirect("/admin/account", fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/totp/enrol", &templates.Page{Title: "Set up your authenticator app",
		Data: enrolPage{Enrolment: e, Action: "/admin/account/totp"}})
}

func (h *Handlers) accountEnrol(c *fiber.Ctx) error {
	u, err := h.me(c)
	if err != nil {
		return err
	}
	codes, err := h.Factors.ConfirmEnrolment(c.UserContext(), factorOf(u), c.FormValue("code"), policies.RequestFrom(c.UserContext()).ClientAddr)
	switch {
	case errs.Is(err, "second_factor_present"):
		return c.Redirect("/admin/account", fiber.StatusSeeOther)
	case errs.Is(err, "second_factor_missing"): // no QR code shown yet
		return c.Redirect("/admin/account/totp", fiber.StatusSeeOther)
	}
	if err != nil {
		e, berr := h.Factors.BeginEnrolment(c.UserContext(), factorOf(u))
		if berr != nil {
			return berr
		}
		return h.codeRefused(c, err, "admin/totp/enrol", enrolPage{Enrolment: e, Action: "/admin/account/totp"}, fiber.StatusUnprocessableEntity)
	}
	return h.showRecoveryCodes(c, codes, "/admin/account")
}

func (h *Handlers) confirmNewRecoveryCodes(c *fiber.Ctx) (templates.Confirmation, error) {
	return templates.Confirmation{Title: "Make new recovery codes?",
		Effect: "Your current recovery codes stop working at once; the new ones are shown once.",
		Yes:    "Make new recovery codes", Back: "/admin/account"}, nil
}

func (h *Handlers) newRecoveryCodes(c *fiber.Ctx) error {
	u, err := h.me(c)
	if err != nil {
		return err
	}
	codes, err := h.Factors.RegenerateRecoveryCodes(c.UserContext(), factorOf(u))
	if err != nil {
		return err
	}
	return h.showRecoveryCodes(c, codes, "/admin/account")
}

func (h *Handlers) confirmDisableTOTP(c *fiber.Ctx) (templates.Confirmation, error) {
	if c.FormValue("code") == "" {
		return proceed, nil // the handler asks for the code first
	}
	eff := "Signing in will need your password only; your recovery codes stop working."
	if u, err := h.me(c); err == nil && h.totpRequired(u) {
		eff = "Your recovery codes stop working, and as your role requires an authenticator app you will have to set one up again at your next sign-in."
	}
	return templates.Confirmation{Title: "Remove your authenticator app?", Effect: eff,
		Yes: "Remove the authenticator app", Back: "/admin/account"}, nil
}

func (h *Handlers) disableTOTP(c *fiber.Ctx) error {
	u, err := h.me(c)
	if err != nil {
		return err
	}
	code := c.FormValue("code")
	if code == "" {
		return h.renderAccount(c, fiber.StatusUnprocessableEntity, map[string]string{"code": "enter a current code from your authenticator app or a recovery code"})
	}
	if err := h.Factors.Disable(c.UserContext(), factorOf(u), code, policies.RequestFrom(c.UserContext()).ClientAddr); err != nil {
		status, fields, other := templates.CodeRefused(c, err)
		if other != nil {
			return other
		}
		return h.renderAccount(c, status, fields)
	}
	templates.SetFlash(c, "success", "The authenticator app is removed from your account.")
	return c.Redirect("/admin/account", fiber.StatusSeeOther)
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
