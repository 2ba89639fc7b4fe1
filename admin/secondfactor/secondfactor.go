// Package secondfactor is the web side of the local accounts' authenticator
// apps (the store is policies/totp), once for both surfaces that have
// password accounts: the staff UI (admin) and the partner portal
// (app/portal). A surface builds one Account with its own user lookup, paths
// and page titles and mounts its handlers; the account pages draw their
// "Two-factor sign-in" section with the partial "account-totp" from a
// Section. It sits beside admin/support, which the portal imports as well;
// admin and app/portal never import each other.
package secondfactor

import (
	"html/template"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/totp"
	"cardata/templates"
)

// Account is one surface's second-factor handlers.
type Account struct {
	View    *templates.View
	Factors *totp.Store
	// Path is the surface's account page ("/admin/account"); the
	// authenticator app's routes are below it (Path+"/totp", ...).
	Path string
	// SignInTitle is the title of a code form re-rendered after a refused
	// code ("Sign in").
	SignInTitle string
	// Me is the signed-in person's second factor, and whether their role
	// requires one.
	Me func(c *fiber.Ctx) (s totp.Subject, required bool, err error)
	// RenderAccount draws the surface's account page with field errors.
	RenderAccount func(c *fiber.Ctx, status int, fieldErrs map[string]string) error
}

// Routes mounts the account page's second-factor routes on r (the group of
// the surface's root, e.g. /admin), relative paths given by rel ("/account").
func (a *Account) Routes(r fiber.Router, rel string) {
	r.Get(rel+"/totp", a.EnrolForm)
	r.Post(rel+"/totp", a.Enrol)
	r.Post(rel+"/totp/recovery-codes", a.View.Confirm(a.confirmNewRecoveryCodes), a.newRecoveryCodes)
	r.Post(rel+"/totp/disable", a.View.Confirm(a.confirmDisable), a.disable)
}

// Section is what the account page's "Two-factor sign-in" section shows
// (the partial "account-totp").
type Section struct {
	TOTP        totp.Status
	TOTPOffered bool
	// TOTPRequired: the person's role requires an authenticator app (staff).
	TOTPRequired bool
	// TOTPPath is the account page the section's forms post below.
	TOTPPath string
	// TOTPCompanySignIn: the surface also has company sign-ins, which leave
	// the second factor to the company (the portal); the section then
	// carries the form's error summary and asks the policy for its link.
	TOTPCompanySignIn bool
}

// Section is the section's data for subject s.
func (a *Account) Section(c *fiber.Ctx, s totp.Subject, offered, required bool) (Section, error) {
	sec := Section{TOTPOffered: offered, TOTPRequired: required, TOTPPath: a.Path}
	if a.Factors != nil {
		st, err := a.Factors.Status(c.UserContext(), s)
		if err != nil {
			return sec, err
		}
		sec.TOTP = st
	}
	return sec, nil
}

// EnrolPage is the data of the enrolment page (admin/totp/enrol).
type EnrolPage struct {
	*totp.Enrolment
	Action   string // where the first code is posted
	Back     string // the account page (the staff one when empty)
	Required bool   // set up because the role requires it, at sign-in
}

// QR is the QR code's data URI, for the img element (a PNG this server
// made: no external service sees the secret).
func (p EnrolPage) QR() template.URL { return template.URL(p.QRImage) }

// CodeRefused re-renders a code form with the refusal on its field: wrong
// (401 at sign-in, 422 on a signed-in page) for a wrong or used code, 429
// with Retry-After when throttled.
func CodeRefused(v *templates.View, c *fiber.Ctx, err error, title, page string, data any, wrong int) error {
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
	return v.Render(c, status, page, &templates.Page{Title: title, Data: data,
		Errors: map[string]string{"code": templates.ErrorText(c, e)}, Form: map[string]string{"next": c.FormValue("next")}})
}

// ShowRecoveryCodes shows new recovery codes, once: they are stored only
// as hashes; next is where the page's button goes on.
func ShowRecoveryCodes(v *templates.View, c *fiber.Ctx, codes []string, next string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return v.Render(c, fiber.StatusOK, "admin/totp/recovery_codes", &templates.Page{Title: "Your recovery codes",
		Data: struct {
			Codes []string
			Next  string
		}{codes, next}})
}

func (a *Account) enrolPage(c *fiber.Ctx, s totp.Subject) (EnrolPage, error) {
	e, err := a.Factors.BeginEnrolment(c.UserContext(), s)
	return EnrolPage{Enrolment: e, Action: a.Path + "/totp", Back: a.Path}, err
}

// EnrolForm shows the QR code and key of a new authenticator app.
func (a *Account) EnrolForm(c *fiber.Ctx) error {
	s, _, err := a.Me(c)
	if err != nil {
		return err
	}
	page, err := a.enrolPage(c, s)
	if errs.Is(err, "second_factor_present") {
		return c.Redirect(a.Path, fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	return a.View.Render(c, fiber.StatusOK, "admin/totp/enrol", &templates.Page{Title: "Set up your authenticator app", Data: page})
}

// Enrol takes the first code, which turns the app on, and shows the
// recovery codes.
func (a *Account) Enrol(c *fiber.Ctx) error {
	s, _, err := a.Me(c)
	if err != nil {
		return err
	}
	codes, err := a.Factors.ConfirmEnrolment(c.UserContext(), s, c.FormValue("code"), policies.RequestFrom(c.UserContext()).ClientAddr)
	switch {
	case errs.Is(err, "second_factor_present"):
		return c.Redirect(a.Path, fiber.StatusSeeOther)
	case errs.Is(err, "second_factor_missing"): // no QR code shown yet
		return c.Redirect(a.Path+"/totp", fiber.StatusSeeOther)
	}
	if err != nil {
		page, berr := a.enrolPage(c, s)
		if berr != nil {
			return berr
		}
		return CodeRefused(a.View, c, err, a.SignInTitle, "admin/totp/enrol", page, fiber.StatusUnprocessableEntity)
	}
	return ShowRecoveryCodes(a.View, c, codes, a.Path)
}

func (a *Account) confirmNewRecoveryCodes(c *fiber.Ctx) (templates.Confirmation, error) {
	return templates.Confirmation{Title: "Make new recovery codes?",
		Effect: "Your current recovery codes stop working at once; the new ones are shown once.",
		Yes:    "Make new recovery codes", Back: a.Path}, nil
}

func (a *Account) newRecoveryCodes(c *fiber.Ctx) error {
	s, _, err := a.Me(c)
	if err != nil {
		return err
	}
	codes, err := a.Factors.RegenerateRecoveryCodes(c.UserContext(), s)
	if err != nil {
		return err
	}
	return ShowRecoveryCodes(a.View, c, codes, a.Path)
}

func (a *Account) confirmDisable(c *fiber.Ctx) (templates.Confirmation, error) {
	if c.FormValue("code") == "" {
		return templates.Confirmation{Safe: true}, nil // the handler asks for the code first
	}
	eff := "Signing in will need your password only; your recovery codes stop working."
	if _, required, err := a.Me(c); err == nil && required {
		eff = "Your recovery codes stop working, and as your role requires an authenticator app you will have to set one up again at your next sign-in."
	}
	return templates.Confirmation{Title: "Remove your authenticator app?", Effect: eff,
		Yes: "Remove the authenticator app", Back: a.Path}, nil
}

func (a *Account) disable(c *fiber.Ctx) error {
	s, _, err := a.Me(c)
	if err != nil {
		return err
	}
	code := c.FormValue("code")
	if code == "" {
		return a.RenderAccount(c, fiber.StatusUnprocessableEntity, map[string]string{"code": "enter a current code from your authenticator app or a recovery code"})
	}
	if err := a.Factors.Disable(c.UserContext(), s, code, policies.RequestFrom(c.UserContext()).ClientAddr); err != nil {
		status, fields, other := templates.CodeRefused(c, err)
		if other != nil {
			return other
		}
		return a.RenderAccount(c, status, fields)
	}
	templates.SetFlash(c, "success", "The authenticator app is removed from your account.")
	return c.Redirect(a.Path, fiber.StatusSeeOther)
}
