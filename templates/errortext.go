package templates

import (
	"cardata/policies/errs"
	"cardata/templates/i18n"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"
)

// Translator says error messages in lang: the English printf format is the
// catalog's id (errors-*.toml), errs.Term arguments are translated with it,
// an amount (a value with Amount() decimal.Decimal, billing.Money) is
// formatted as the page formats money, an errs.Day as the page's date,
// an argument that is itself a message passed on (it has a
// Text(errs.Translator) method, as billing's composed messages do) is said
// in lang too, and every other argument is printed as it is.
func Translator(lang i18n.Lang) errs.Translator {
	var tr errs.Translator
	tr = func(format string, args []any) string {
		if len(args) > 0 {
			said := make([]any, len(args))
			for i, a := range args {
				switch x := a.(type) {
				case errs.Term:
					a = i18n.T(lang, string(x))
				case errs.Day:
					a = i18n.Locale{Lang: lang}.Date(x.T)
				case interface{ Amount() decimal.Decimal }:
					a = i18n.Locale{Lang: lang}.Money(x.Amount())
				case interface{ Text(errs.Translator) string }:
					a = x.Text(tr)
				}
				said[i] = a
			}
			args = said
		}
		return i18n.Sprintf(lang, format, args...)
	}
	return tr
}

// ErrorText is err's message in the language of c's page.
func ErrorText(c *fiber.Ctx, err error) string {
	return errs.As(err).Text(Translator(LangOf(c)))
}

// FieldErrors indexes err's field errors by field, in the language of c's
// page (errs.FieldMap is their English).
func FieldErrors(c *fiber.Ctx, err error) map[string]string {
	return errs.FieldMapIn(err, Translator(LangOf(c)))
}
