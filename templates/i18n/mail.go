package i18n

import (
	"time"
)

// E-mails are written in the recipient's language (the sender looks it up:
// jobs.RecipientLang). Their subjects and bodies live in their own catalogs,
// mail.de.toml and mail.en.toml, keyed by kind rather than by the English
// text (a body is a paragraph): "mail.<kind>.subject" and
// "mail.<kind>.body", plain-text go-i18n templates whose parameters the
// sender passes already formatted for the language (Locale.Money, Date).

// Berlin is Europe/Berlin, the time zone of the dates people read.
var Berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// MailLocale is the locale of an e-mail in l: l's formats, Europe/Berlin.
func MailLocale(l Lang) Locale {
	if l == "" {
		l = EN
	}
	return Locale{Lang: l, Loc: Berlin}
}

// Mail is the subject and body of the e-mail kind in the locale's language
// ("provider.approve": "mail.provider.approve.subject" and ".body"); args
// are the parameters of both, as name/value pairs.
func (z Locale) Mail(kind string, args ...any) (subject, body string) {
	return z.T("mail."+kind+".subject", args...), z.T("mail."+kind+".body", args...)
}
