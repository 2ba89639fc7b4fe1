package web

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// LangPath is the language switch every page's header posts to.
const LangPath = "/lang"

// LanguageSwitch answers POST /lang (fields lang and back): it sets the
// cardata_lang cookie for a year, remembers the choice for the signed-in
// person through remember (staff, provider user or customer; nothing for
// an anonymous visitor) and returns to back, a path on this site.
func LanguageSwitch(cs CookieSettings, remember func(ctx context.Context, p *policies.Principal, lang i18n.Lang) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		lang, ok := i18n.Parse(c.FormValue("lang"))
		if !ok {
			v := errs.Validation{}
			v.Add("lang", "lang_unsupported", "choose de or en")
			return v.Err()
		}
		if p := policies.PrincipalFrom(c.UserContext()); p != nil && remember != nil {
			if err := remember(c.UserContext(), p, lang); err != nil {
				return err
			}
		}
		c.Cookie(&fiber.Cookie{Name: i18n.Cookie, Value: string(lang), Path: "/", Domain: cs.Domain,
			HTTPOnly: true, Secure: cs.Secure, SameSite: fiber.CookieSameSiteLaxMode,
			MaxAge: int((365 * 24 * time.Hour).Seconds())})
		return c.Redirect(LocalBack(c.FormValue("back")), fiber.StatusSeeOther)
	}
}

// LocalBack is back when it is a path on this site ("/my?x=1"), else "/".
// It refuses other hosts ("//evil", "/\evil", "https://..."), so the switch
// is no open redirect.
func LocalBack(back string) string {
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.HasPrefix(back, "/\\") ||
		strings.ContainsAny(back, "\r\n\\") || len(back) > 2000 {
		return "/"
	}
	return back
}
