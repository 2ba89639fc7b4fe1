package jobs

import (
	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// RecipientLang is the language of an e-mail to the address to: the
// language the person behind it chose with the switch in the header (the
// lang column of staff_users, provider_users or customer_accounts, the first
// one set), else fallback (English when empty). The texts come from the
// e-mail catalogs (i18n.Locale.Mail).
func RecipientLang(tx *gorm.DB, to string, fallback i18n.Lang) (i18n.Lang, error) {
	if fallback == "" {
		fallback = i18n.EN
	}
	var langs []string
	err := tx.Raw(`SELECT lang FROM (
		SELECT lang, 1 AS o FROM staff_users WHERE lower(email) = lower(?) AND lang <> ''
		UNION ALL SELECT lang, 2 FROM provider_users WHERE lower(email) = lower(?) AND lang <> ''
		UNION ALL SELECT lang, 3 FROM customer_accounts WHERE lower(email) = lower(?) AND lang <> '') x
		ORDER BY o LIMIT 1`, to, to, to).Scan(&langs).Error
	if err != nil {
		return fallback, errs.Wrap(err, "recipient language")
	}
	if len(langs) == 1 {
		if l, ok := i18n.Parse(langs[0]); ok {
			return l, nil
		}
	}
	return fallback, nil
}

// MailLocale is the locale of an e-mail to the address to (RecipientLang;
// Europe/Berlin).
func MailLocale(tx *gorm.DB, to string, fallback i18n.Lang) (i18n.Locale, error) {
	l, err := RecipientLang(tx, to, fallback)
	return i18n.MailLocale(l), err
}

// ProviderMailLocale is the locale of an e-mail to an address of provider
// providerID (its contact, its billing address): the person's own language
// (RecipientLang), else the language the provider's portal users chose
// (administrators first), else English.
func ProviderMailLocale(tx *gorm.DB, to string, providerID int64) (i18n.Locale, error) {
	var langs []string
	if err := tx.Raw(`SELECT lang FROM provider_users WHERE provider_id = ? AND lang <> '' AND active
		ORDER BY role = 'provider_admin' DESC, updated_at DESC LIMIT 1`, providerID).Scan(&langs).Error; err != nil {
		return i18n.MailLocale(i18n.EN), errs.Wrap(err, "provider language")
	}
	fallback := i18n.EN
	if len(langs) == 1 {
		if l, ok := i18n.Parse(langs[0]); ok {
			fallback = l
		}
	}
	return MailLocale(tx, to, fallback)
}
