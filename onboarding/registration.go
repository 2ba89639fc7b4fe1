package onboarding

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/onboarding/vat"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// Terms is a published version of the partner terms.
type Terms struct {
	Version string `gorm:"primaryKey"`
	Title   string
	Summary string
	// BodyEN and BodyDE are the full text (paragraphs separated by blank
	// lines), shown at /register/terms.
	BodyEN      string
	BodyDE      string
	PublishedAt time.Time
}

// Paragraphs splits a terms text into its paragraphs for display.
func Paragraphs(body string) []string {
	var out []string
	for _, p := range strings.Split(body, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (Terms) TableName() string { return "terms_versions" }

// FindCurrentTerms returns the newest published terms.
func (s *Service) FindCurrentTerms(ctx context.Context) (*Terms, error) {
	var t Terms
	err := s.DB.WithContext(ctx).Where("published_at <= ?", s.now()).Order("published_at DESC").Take(&t).Error
	if err != nil {
		return nil, translate(err, "terms")
	}
	return &t, nil
}

// Registration is a company's application, from the web form or the API.
type Registration struct {
	// Lang is the language the form was filled in: the applicant's e-mails
	// and, remembered, the new portal administrator's pages.
	Lang             i18n.Lang `json:"-"`
	LegalName        string    `json:"legalName"`
	LegalForm        string    `json:"legalForm"`
	Street           string    `json:"street"`
	PostalCode       string    `json:"postalCode"`
	City             string    `json:"city"`
	Country          string    `json:"country"` // country of seat, ISO 3166-1 alpha-2
	VATID            string    `json:"vatId"`
	RegisterNumber   string    `json:"registerNumber"`
	ContactName      string    `json:"contactName"`
	ContactEmail     string    `json:"contactEmail"` // also the first provider admin's login
	ContactPhone     string    `json:"contactPhone"`
	BillingEmail     string    `json:"billingEmail"`
	IntendedServices string    `json:"intendedServices"`
	TermsVersion     string    `json:"termsVersion"`
	AcceptTerms      bool      `json:"acceptTerms"`
	// AdminPassword is the first provider admin's password. When empty and
	// PasswordByMail is set, the admin receives a one-time link to set it.
	AdminPassword  string   `json:"adminPassword"`
	PasswordByMail bool     `json:"-"`
	Documents      []Upload `json:"-"`
	ClientAddr     string   `json:"-"`
}

// MaxDocumentsPerRegistration caps the uploads of one application.
const MaxDocumentsPerRegistration = 5

// Registered is the outcome of a registration.
type Registered struct {
	Provider *Provider
	Admin    *ProviderUser
	// SetPasswordLink is set when the admin must set a password by link.
	SetPasswordLink string
}

func clean(s string, max int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' {
			return -1
		}
		return r
	}, s))
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max])
	}
	return s
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && len(s) <= 254
}

// seatError explains why a country cannot be a seat.
func seatError(v *errs.Validation, country string) {
	switch {
	case country == "":
		v.Add("country", "country_required", "choose the country of your registered seat")
	case len(country) != 2:
		v.Add("country", "country_invalid", "use the two-letter ISO 3166 code of the country, e.g. AT")
	case country == "CH" || country == "GB":
		v.Add("country", "seat_not_eea", "%s is a CarData market, but only companies seated in the EEA (EU, Iceland, Liechtenstein, Norway) can register", errs.Term(CountryName(country)))
	case !IsEEA(country):
		v.Add("country", "seat_not_eea", "only companies seated in the EEA (EU, Iceland, Liechtenstein, Norway) can register")
	}
}

// checkVAT validates the VAT ID (or organisation number) for the seat.
func checkVAT(v *errs.Validation, country, id string) string {
	if strings.TrimSpace(id) == "" {
		v.Add("vat_id", "vat_id_required", "enter the VAT ID (for Norway, Iceland and Liechtenstein: the organisation number)")
		return ""
	}
	if v.Has("country") {
		return ""
	}
	n, err := vat.Check(country, id)
	switch {
	case errors.Is(err, vat.ErrCountryMismatch):
		v.Add("vat_id", "vat_id_country_mismatch", "the VAT ID's country prefix does not match the country of seat (%s)", errs.Term(CountryName(country)))
	case errors.Is(err, vat.ErrChecksum):
		v.Add("vat_id", "vat_id_checksum", "the check digit of this %s number does not match; please check for a typing error", errs.Term(CountryName(country)))
	case err != nil:
		v.Add("vat_id", "vat_id_format", "this is not a valid %s %s", errs.Term(CountryName(country)), errs.Term(vatName(country)))
	}
	return n
}

func vatName(country string) string {
	switch country {
	case "NO", "IS":
		return "organisation number"
	case "LI":
		return "register number (FL-0002.123.456-7)"
	}
	return "VAT ID"
}

func (r *Registration) normalise() {
	r.LegalName = clean(r.LegalName, 200)
	r.LegalForm = clean(r.LegalForm, 80)
	r.Street = clean(r.Street, 200)
	r.PostalCode = clean(r.PostalCode, 20)
	r.City = clean(r.City, 100)
	r.Country = strings.ToUpper(clean(r.Country, 10))
	r.VATID = clean(r.VATID, 40)
	r.RegisterNumber = clean(r.RegisterNumber, 80)
	r.ContactName = clean(r.ContactName, 120)
	r.ContactEmail = strings.ToLower(clean(r.ContactEmail, 254))
	r.ContactPhone = clean(r.ContactPhone, 40)
	r.BillingEmail = strings.ToLower(clean(r.BillingEmail, 254))
	r.IntendedServices = clean(r.IntendedServices, 4000)
	r.TermsVersion = clean(r.TermsVersion, 40)
}

// ErrAlreadyRegistered means the application's contact e-mail already signs
// in to the partner portal, or its VAT ID belongs to a provider registered
// or under review: nothing was created, and the known address was told by
// e-mail. The public registration answers it exactly like a new application
// (see Apply), so the form cannot be used to find out who is registered.
var ErrAlreadyRegistered = errs.New(errs.Conflict, "already_registered", "this company or e-mail address is already registered")

// errDuplicateKey marks a unique-index conflict inside Register's
// transaction: a concurrent application with the same e-mail or VAT ID.
var errDuplicateKey = errors.New("duplicate key")

// Register records a company's application (status submitted) with its
// documents and its first provider admin, after checking the EEA seat, the
// VAT ID and duplicates. Similar names in the same country are flagged for
// the reviewer, never refused. A known e-mail or VAT ID is not a field
// error: Register mails an "already registered" notice to the known address
// and returns ErrAlreadyRegistered.
func (s *Service) Register(ctx context.Context, r Registration) (*Registered, error) {
	r.normalise()
	var v errs.Validation
	for _, f := range []struct{ name, val, what string }{
		{"legal_name", r.LegalName, "the company's legal name"}, {"legal_form", r.LegalForm, "the legal form (e.g. AG, GmbH, SA)"},
		{"street", r.Street, "the street and number of the registered address"}, {"postal_code", r.PostalCode, "the postal code"},
		{"city", r.City, "the city"},
	} {
		if f.val == "" {
			v.Add(f.name, f.name+"_required", "enter %s", errs.Term(f.what))
		}
	}
	seatError(&v, r.Country)
	vatID := checkVAT(&v, r.Country, r.VATID)
	if r.RegisterNumber == "" {
		v.Add("register_number", "register_number_required", "enter the commercial register number")
	}
	if r.ContactName == "" {
		v.Add("contact_name", "contact_name_required", "enter the contact person's name")
	}
	if !validEmail(r.ContactEmail) {
		v.Add("contact_email", "email_invalid", "enter a valid e-mail address")
	}
	if !validEmail(r.BillingEmail) {
		v.Add("billing_email", "email_invalid", "enter a valid e-mail address for invoices")
	}
	if utf8.RuneCountInString(r.IntendedServices) < 10 {
		v.Add("intended_services", "intended_services_required", "describe the services you intend to offer (at least a sentence)")
	}
	terms, err := s.FindCurrentTerms(ctx)
	if err != nil {
		return nil, err
	}
	if !r.AcceptTerms {
		v.Add("accept_terms", "terms_not_accepted", "accept the partner terms to register")
	} else if r.TermsVersion == "" {
		v.Add("terms_version", "terms_version_required", "name the version of the terms you accept (current: %s)", terms.Version)
	} else if r.TermsVersion != terms.Version {
		v.Add("terms_version", "terms_outdated", "the partner terms changed; accept the current version %s", terms.Version)
	}
	if r.AdminPassword != "" || !r.PasswordByMail {
		validatePassword(&v, "admin_password", r.AdminPassword)
	}
	docs := checkUploads(&v, r.Documents, true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Hashed before the duplicate check, so an application whose e-mail or
	// VAT ID is already known costs the same time as a new one.
	var hash string
	if r.AdminPassword != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(r.AdminPassword), s.BcryptCost)
		if err != nil {
			return nil, errs.Wrap(err, "hash password")
		}
		hash = string(h)
	}
	known, flags, err := s.knownApplicant(s.DB.WithContext(ctx), r.ContactEmail, vatID)
	if err != nil {
		return nil, err
	}
	if len(known) > 0 {
		return nil, s.noticeKnown(ctx, known, vatID)
	}
	similar, err := s.similarNames(ctx, r.Country, r.LegalName)
	if err != nil {
		return nil, err
	}
	flags = append(flags, similar...)

	now := s.now()
	p := &Provider{LegalName: r.LegalName, LegalForm: r.LegalForm, Street: r.Street, PostalCode: r.PostalCode, City: r.City,
		Country: r.Country, VATID: vatID, RegisterNumber: r.RegisterNumber, ContactName: r.ContactName,
		ContactEmail: r.ContactEmail, ContactPhone: r.ContactPhone, BillingEmail: r.BillingEmail,
		IntendedServices: r.IntendedServices, Status: StatusSubmitted, ReviewFlags: errs.ListOf("\n", flags).String(),
		TermsVersion: terms.Version, TermsAcceptedAt: now, TermsClientAddr: clean(r.ClientAddr, 100),
		SubmittedAt: now, WaitingSince: now, CreatedAt: now, UpdatedAt: now}
	out := &Registered{Provider: p}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Omit("ReviewerName").Create(p).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errDuplicateKey
			}
			return errs.Wrap(err, "create provider")
		}
		act := policies.ActorOf(ctx, nil)
		kind, actorID, label := act.Kind, act.ID, act.Name
		if kind == "anonymous" {
			kind, label = "applicant", r.ContactEmail
		}
		ev := Event{ProviderID: p.ID, At: now, Action: ActionSubmit, ToStatus: StatusSubmitted, ActorKind: kind, ActorID: actorID,
			ActorLabel: label, Note: fmt.Sprintf("accepted terms %s from %s", terms.Version, p.TermsClientAddr)}
		if err := tx.Create(&ev).Error; err != nil {
			return errs.Wrap(err, "record provider event")
		}
		for _, d := range docs {
			if err := s.storeDocument(tx, p.ID, d, r.ContactEmail, now); err != nil {
				return err
			}
		}
		admin := &ProviderUser{ProviderID: p.ID, Email: r.ContactEmail, Name: r.ContactName, Role: RoleProviderAdmin,
			PasswordHash: hash, Active: true, CreatedAt: now, UpdatedAt: now, Lang: string(r.Lang)}
		var token string
		if hash == "" {
			token = randomToken(32)
			exp := now.Add(s.inviteTTL())
			admin.InviteTokenHash, admin.InviteExpiresAt = sha(token), &exp
			out.SetPasswordLink = s.link("/portal/invitations/" + token)
		}
		if err := tx.Create(admin).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errDuplicateKey
			}
			return errs.Wrap(err, "create provider admin")
		}
		out.Admin = admin
		item := audit.ItemOf("provider.submit", "provider", fmt.Sprint(p.ID),
			"%s (%s, %s) applied; admin %s; %d document(s)", p.LegalName, p.Country, p.VATID, admin.Email, len(docs))
		if len(flags) > 0 { // the flags are one argument, a list said flag by flag
			item = audit.ItemOf("provider.submit", "provider", fmt.Sprint(p.ID),
				"%s (%s, %s) applied; admin %s; %d document(s); flagged: %s", p.LegalName, p.Country, p.VATID, admin.Email, len(docs),
				errs.ListOf("; ", flags))
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		// Fixed wording: the only applicant text in it is the company name,
		// made safe for one line, so the form cannot send spam in our name.
		z, err := jobs.MailLocale(tx, p.ContactEmail, r.Lang)
		if err != nil {
			return err
		}
		subject, body := z.Mail("provider.submitted", "Company", MailSafeName(p.LegalName), "Portal", s.link("/portal"),
			"Terms", terms.Title, "SetPassword", out.SetPasswordLink, "Days", int(s.inviteTTL().Hours()/24))
		if token == "" {
			subject, body = z.Mail("provider.submitted", "Company", MailSafeName(p.LegalName), "Portal", s.link("/portal"), "Terms", terms.Title)
		}
		return enqueueMail(ctx, tx, "provider.submitted", p.ContactEmail, subject, body, p.ID, fmt.Sprintf("provider-event-%d", ev.ID))
	})
	if errors.Is(err, errDuplicateKey) {
		// Another application with this e-mail or VAT ID committed first.
		known, _, kerr := s.knownApplicant(s.DB.WithContext(ctx), r.ContactEmail, vatID)
		if kerr != nil {
			return nil, kerr
		}
		return nil, s.noticeKnown(ctx, known, vatID)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// knownApplicant finds who already holds the application's e-mail (a
// provider user) or VAT ID (a provider registered or under review), and the
// review flags for VAT IDs of providers that were rejected or terminated
// (who may apply again).
func (s *Service) knownApplicant(db *gorm.DB, email, vatID string) ([]knownAddress, []errs.Phrase, error) {
	var known []knownAddress
	var users []ProviderUser
	if err := db.Where("lower(email) = ?", email).Limit(1).Find(&users).Error; err != nil {
		return nil, nil, errs.Wrap(err, "check e-mail")
	}
	for _, u := range users {
		known = append(known, knownAddress{email: u.Email, providerID: u.ProviderID, byEmail: true})
	}
	var flags []errs.Phrase
	if vatID != "" {
		var dups []Provider
		if err := db.Where("vat_id = ?", vatID).Order("id").Find(&dups).Error; err != nil {
			return nil, nil, errs.Wrap(err, "check duplicates")
		}
		for _, d := range dups {
			if d.Status.Open() {
				known = append(known, knownAddress{email: d.ContactEmail, providerID: d.ID})
				continue
			}
			flags = append(flags, errs.Phrasef("Same VAT ID as %s (#%d, %s)", d.LegalName, d.ID, errs.Term(d.Status.Label())))
		}
	}
	return known, flags, nil
}

// knownAddress is an address that hears about an application naming it:
// a provider user whose e-mail was given, or the contact of a provider
// whose VAT ID was given.
type knownAddress struct {
	email      string
	providerID int64
	byEmail    bool
}

// noticeKnown mails the "already registered" notice to the known addresses
// and returns ErrAlreadyRegistered. The notice has fixed wording with no
// applicant text but the (validated) VAT ID, and goes out at most once per
// address and day, so repeating the form cannot flood a known mailbox.
func (s *Service) noticeKnown(ctx context.Context, known []knownAddress, vatID string) error {
	day := s.now().Format("2006-01-02")
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		sent := map[string]bool{}
		for _, k := range known {
			to := strings.ToLower(k.email)
			if to == "" || sent[to] {
				continue
			}
			sent[to] = true
			z, err := jobs.ProviderMailLocale(tx, to, k.providerID)
			if err != nil {
				return err
			}
			subject, body := z.Mail("provider.already_registered_email", "Link", s.link("/portal/login"))
			if !k.byEmail {
				subject, body = z.Mail("provider.already_registered_vat", "VATID", vatID, "Link", s.link("/portal/users"))
			}
			if err := enqueueMail(ctx, tx, "provider.already_registered", to, subject, body, k.providerID,
				"provider.already_registered:"+day+":"+to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return ErrAlreadyRegistered
}

// MailNameLength is how much of a company name an e-mail repeats.
const MailNameLength = 80

// MailSafeName makes applicant text fit to repeat in an e-mail we send:
// one line (control, format and separator characters become spaces, runs
// of spaces one), only the characters company names use, at most
// MailNameLength characters, and no web address a mail program would turn
// into a link (a dot before a letter or digit gets a space after it, which
// reads naturally in "Co. KG").
func MailSafeName(s string) string {
	var b strings.Builder
	space := false
	rs := []rune(s)
	for i, r := range rs {
		keep := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || strings.ContainsRune("&'’.,-()+", r)
		if !keep {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if r == '.' && i+1 < len(rs) && (unicode.IsLetter(rs[i+1]) || unicode.IsDigit(rs[i+1])) {
			space = true
		}
	}
	out := []rune(b.String())
	if len(out) > MailNameLength {
		out = append([]rune(strings.TrimSpace(string(out[:MailNameLength-1]))), '…')
	}
	return string(out)
}

// legalForms are dropped before names are compared, so "Alpen Versicherung
// AG" and "Alpen Versicherung GmbH" count as similar.
var legalForms = map[string]bool{
	"ag": true, "gmbh": true, "se": true, "sa": true, "sas": true, "sarl": true, "srl": true, "spa": true, "bv": true,
	"nv": true, "ltd": true, "limited": true, "plc": true, "oy": true, "oyj": true, "ab": true, "as": true, "asa": true,
	"aps": true, "kg": true, "co": true, "ohg": true, "ug": true, "sp": true, "zoo": true, "kft": true, "doo": true,
	"ehf": true, "hf": true, "sro": true, "eood": true, "ood": true, "ad": true, "ou": true, "sia": true, "uab": true,
	"teo": true, "lda": true, "sl": true, "slu": true, "the": true, "und": true, "and": true, "&": true, "mbh": true,
}

// nameKey folds a company name for comparison: lower case, no accents, no
// punctuation, no legal-form words.
func nameKey(name string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(strings.ToLower(name)) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == 'ß':
			b.WriteString("ss")
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		default:
			b.WriteRune(' ')
		}
	}
	var words []string
	for _, w := range strings.Fields(b.String()) {
		if !legalForms[w] {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

func trigrams(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.Fields(s) {
		w = "  " + w + " "
		r := []rune(w)
		for i := 0; i+3 <= len(r); i++ {
			out[string(r[i:i+3])] = true
		}
	}
	return out
}

// Similarity is the trigram overlap (Jaccard) of two folded names, 0..1.
func Similarity(a, b string) float64 {
	ka, kb := nameKey(a), nameKey(b)
	if ka == "" || kb == "" {
		return 0
	}
	if ka == kb {
		return 1
	}
	ta, tb := trigrams(ka), trigrams(kb)
	inter := 0
	for t := range ta {
		if tb[t] {
			inter++
		}
	}
	return float64(inter) / float64(len(ta)+len(tb)-inter)
}

// similarNames lists providers in the same country whose name resembles name.
func (s *Service) similarNames(ctx context.Context, country, name string) ([]errs.Phrase, error) {
	var rows []Provider
	err := s.DB.WithContext(ctx).Select("id, legal_name, status").Where("country = ? AND status <> ?", country, StatusTerminated).
		Order("id").Limit(5000).Find(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "similar names")
	}
	var out []errs.Phrase
	for _, r := range rows {
		if Similarity(name, r.LegalName) >= 0.6 {
			out = append(out, errs.Phrasef("Similar name in %s: %s (#%d, %s)", country, r.LegalName, r.ID, errs.Term(r.Status.Label())))
		}
	}
	return out, nil
}

func validatePassword(v *errs.Validation, field, pw string) {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLength:
		v.Add(field, "password_too_short", "use at least %d characters", MinPasswordLength)
	case len(pw) > 72:
		v.Add(field, "password_too_long", "use at most 72 bytes")
	}
}

// MinPasswordLength applies to provider user passwords.
const MinPasswordLength = 12

var _ = policies.KindProvider
