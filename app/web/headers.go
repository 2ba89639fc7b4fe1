package web

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"

	"cardata/templates"
)

// ContentSecurityPolicy allows only the app's own script and stylesheet
// (templates/static): the templates carry no inline script, event handler
// or style attribute, so an injected one does not run. It is sent on every
// response, which also defuses a stored file that a browser would sniff as
// HTML.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// hstsValue is sent only when cookies are Secure, i.e. the deployment is
// served over TLS; a year, the usual minimum for preload lists.
const hstsValue = "max-age=31536000; includeSubDomains"

// SecurityHeaders sets the browser security headers on every response,
// error pages included (they are set before the handler runs). The same
// COOKIE_SECURE decision that marks the session and CSRF cookies Secure
// turns on HSTS and is handed to the templates' flash cookie.
// formTargets are origins a form may lead to besides this site: the
// identity providers a sign-out form redirects to (RP-initiated logout),
// which form-action also governs.
func SecurityHeaders(cs CookieSettings, formTargets ...string) fiber.Handler {
	csp := ContentSecurityPolicy
	if len(formTargets) > 0 {
		csp = strings.Replace(csp, "form-action 'self'", "form-action 'self' "+strings.Join(formTargets, " "), 1)
	}
	h := helmet.New(helmet.Config{
		ContentSecurityPolicy: csp,
		XFrameOptions:         "DENY",
		ReferrerPolicy:        "same-origin",
		PermissionPolicy:      "camera=(), microphone=(), geolocation=(), payment=()",
		// helmet sends HSTS only when the request itself came over TLS;
		// behind a TLS-terminating proxy it never does, so it is set below.
	})
	return func(c *fiber.Ctx) error {
		c.Locals(templates.LocalSecureCookies, cs.Secure)
		if cs.Secure {
			c.Set(fiber.HeaderStrictTransportSecurity, hstsValue)
		}
		return h(c)
	}
}
