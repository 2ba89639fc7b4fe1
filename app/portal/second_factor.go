package portal

import (
	"html/template"
	"net/url"

	"github.com/gofiber/fiber/v2"

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
	token, _, err := h.Sessions.CreatePending(c.UserContext(), policies.KindProvider, u.ID, c.IP(), c.Get(fiber.HeaderUserAgent), session.PendingCode)
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
		return h.codeRefused(c, err, "portal/login_code", nil, fiber.StatusUnauthorized)
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

// codeRefused re-renders a code form with the refusal on its field: wrong
// (401 at sign-in, 422 on a signed-in page) for a wrong or used code, 429
// with Retry-After when throttled.
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
	return h.View.Render(c, status, page, &templates.Page{Title: "Partner portal sign-in", Data: data,
		Errors: map[string]string{"code": e.Message}, Form: map[string]string{"next": c.FormValue("next")}})
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
	var factor totp.Status
	if h.Factors != nil {
		if factor, err = h.Factors.Status(c.UserContext(), factorOf(u)); err != nil {
			return err
		}
	}
	return h.View.Render(c, status, "portal/account", &templates.Page{Title: "My account", Errors: fieldErrs, Data: struct {
		User        *onboarding.ProviderUser
		TOTP        totp.Status
		TOTPOffered bool
	}{u, factor, h.Factors != nil}})
}

// enrolPage is the data of the shared enrolment page (admin/totp/enrol).
type enrolPage struct {
	*totp.Enrolment
	Action, Back string
	Required     bool
}

// QR is the QR code's data URI (a PNG this server made).
func (p enrolPage) QR() template.URL { return template.URL(p.QRImage) }

func (h *Handlers) enrolPage(c *fiber.Ctx, u *onboarding.ProviderUser) (enrolPage, error) {
	e, err := h.Factors.BeginEnrolment(c.UserContext(), factorOf(u))
	return enrolPage{Enrolment: e, Action: accountPath + "/totp", Back: accountPath}, err
}

func (h *Handlers) accountEnrolForm(c *fiber.Ctx) error {
	u, err := h.signedInUser(c)
	if err != nil {
		return err
	}
	page, err := h.enrolPage(c, u)
	if errs.Is(err, "second_factor_present") {
		return c.Redirect(accountPath, fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/totp/enrol", &templates.Page{Title: "Set up your authenticator app", Data: page})
}

func (h *Handlers) accountEnrol(c *fiber.Ctx) error {
	u, err := h.signedInUser(c)
	if err != nil {
		return err
	}
	codes, err := h.Factors.ConfirmEnrolment(c.UserContext(), factorOf(u), c.FormValue("code"), policies.RequestFrom(c.UserContext()).ClientAddr)
	switch {
	case errs.Is(err, "second_factor_present"):
		return c.Redirect(accountPath, fiber.StatusSeeOther)
	case errs.Is(err, "second_factor_missing"): // no QR code shown yet
		return c.Redirect(accountPath+"/totp", fiber.StatusSeeOther)
	}
	if err != nil {
		page, berr := h.enrolPage(c, u)
		if berr != nil {
			return berr
		}
		return h.codeRefused(c, err, "admin/totp/enrol", page, fiber.StatusUnprocessableEntity)
	}
	return h.showRecoveryCodes(c, codes)
}

// showRecoveryCodes shows new recovery codes, once: they are stored only
// as hashes.
func (h *Handlers) showRecoveryCodes(c *fiber.Ctx, codes []string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return h.View.Render(c, fiber.StatusOK, "admin/totp/recovery_codes", &templates.Page{Title: "Your recovery codes",
		Data: struct {
			Codes []string
			Next  string
		}{codes, accountPath}})
}

func (h *Handlers) confirmNewRecoveryCodes(c *fiber.Ctx) (templates.Confirmation, error) {
	return templates.Confirmation{Title: "Make new recovery codes?",
		Effect: "Your current recovery codes stop working at once; the new ones are shown once.",
		Yes:    "Make new recovery codes", Back: accountPath}, nil
}

func (h *Handlers) newRecoveryCodes(c *fiber.Ctx) error {
	u, err := h.signedInUser(c)
	if err != nil {
		return err
	}
	codes, err := h.Factors.RegenerateRecoveryCodes(c.UserContext(), factorOf(u))
	if err != nil {
		return err
	}
	return h.showRecoveryCodes(c, codes)
}

func (h *Handlers) confirmDisableTOTP(c *fiber.Ctx) (templates.Confirmation, error) {
	if c.FormValue("code") == "" {
		return templates.Confirmation{Safe: true}, nil // the handler asks for the code first
	}
	return templates.Confirmation{Title: "Remove your authenticator app?",
		Effect: "Signing in will need your password only; your recovery codes stop working.",
		Yes:    "Remove the authenticator app", Back: accountPath}, nil
}

func (h *Handlers) disableTOTP(c *fiber.Ctx) error {
	u, err := h.signedInUser(c)
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
	return c.Redirect(accountPath, fiber.StatusSeeOther)
}

func firstErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}
