package templates

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// SafeNext keeps a post-sign-in redirect on this site: next is used only when
// it is a local path under home and not under any of the excluded prefixes
// (the sign-in page itself, invitation links); otherwise home.
func SafeNext(next, home string, exclude ...string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.IsAbs() || u.Host != "" || strings.HasPrefix(next, "//") || !strings.HasPrefix(u.Path, home) {
		return home
	}
	for _, x := range exclude {
		if strings.HasPrefix(u.Path, x) {
			return home
		}
	}
	return u.RequestURI()
}

// SignInForm is what the partial "password-signin" draws: the sign-in
// page and the route its password form posts to.
type SignInForm struct {
	*Page
	Action string // the surface's sign-in route: /admin/login, /portal/login, /my/login
}

// SignInForm gives a sign-in page's password form its route (a template
// passes one value to a partial): {{template "password-signin" (.SignInForm "/my/login")}}.
func (p *Page) SignInForm(action string) SignInForm { return SignInForm{Page: p, Action: action} }

// SignInFailed re-renders a sign-in page after a refused attempt: 401 for
// wrong credentials, 429 with Retry-After when throttled. Internal errors are
// returned for the error handler instead.
func (v *View) SignInFailed(c *fiber.Ctx, err error, page, title string) error {
	e := errs.As(err)
	if e.Kind == errs.Internal {
		return err
	}
	status := fiber.StatusUnauthorized
	if e.Kind == errs.TooMany {
		status = fiber.StatusTooManyRequests
		c.Set(fiber.HeaderRetryAfter, "300")
	}
	return v.Render(c, status, page, &Page{Title: title, Errors: map[string]string{"password": ErrorText(c, e)},
		Form: map[string]string{"email": c.FormValue("email"), "next": c.FormValue("next")}})
}

// CodeRefused is the answer of an account form whose second-factor code was
// refused (removing the authenticator app, staff and portal alike): the code
// field's error with 422, or 429 with Retry-After once throttled. Any other
// error comes back as other, for the error handler.
func CodeRefused(c *fiber.Ctx, err error) (status int, fields map[string]string, other error) {
	switch errs.KindOf(err) {
	case errs.Unauthorized:
		return fiber.StatusUnprocessableEntity, map[string]string{"code": ErrorText(c, err)}, nil
	case errs.TooMany:
		c.Set(fiber.HeaderRetryAfter, "300")
		return fiber.StatusTooManyRequests, map[string]string{"code": ErrorText(c, err)}, nil
	}
	return 0, nil, err
}
