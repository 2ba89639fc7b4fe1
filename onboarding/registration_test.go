package onboarding_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cardata/onboarding"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

func fieldCode(err error, field string) string {
	e := errs.As(err)
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Code
		}
	}
	return ""
}

func TestRegistrationCreatesApplicationAdminDocumentAndMail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.mustRegister(t, "Demo Versicherung AG", "DE", "de 136 695 976")
	p := r.Provider
	if p.Status != onboarding.StatusSubmitted || p.VATID != "DE136695976" || p.TermsVersion != "2025-01" || p.TermsClientAddr != "192.0.2.1" {
		t.Fatalf("provider: %+v", p)
	}
	if r.Admin.Role != onboarding.RoleProviderAdmin || r.Admin.Pending() || r.SetPasswordLink != "" {
		t.Fatalf("admin: %+v link %q", r.Admin, r.SetPasswordLink)
	}
	docs, err := f.svc.FindDocuments(f.ctx, p.ID)
	if err != nil || len(docs) != 1 || docs[0].ContentType != "application/pdf" || len(docs[0].SHA256) != 64 || docs[0].Data != nil {
		t.Fatalf("documents: %+v %v", docs, err)
	}
	full, err := f.svc.FindDocument(f.ctx, p.ID, docs[0].ID)
	if err != nil || !bytes.Equal(full.Data, tinyPDF) {
		t.Fatalf("document content: %v", err)
	}
	var mails, audits int64
	f.svc.DB.Raw("SELECT count(*) FROM email_outbox WHERE kind = 'provider.submitted' AND to_addr = ?", r.Admin.Email).Scan(&mails)
	f.svc.DB.Raw("SELECT count(*) FROM audit_entries WHERE action = 'provider.submit' AND object_id = ?", itoa(p.ID)).Scan(&audits)
	if mails != 1 || audits != 1 {
		t.Fatalf("mails %d audits %d", mails, audits)
	}
	// The admin signs in with the password chosen at registration.
	if _, err := f.svc.Authenticate(f.ctx, r.Admin.Email, "a-long-password", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

func TestRegistrationWithoutPasswordMailsASetPasswordLink(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := registration("Linkless GmbH", "AT", "ATU13585627")
	reg.AdminPassword, reg.PasswordByMail = "", true
	r, err := f.svc.Register(f.ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Admin.Pending() || !strings.HasPrefix(r.SetPasswordLink, "http://cardata.test/portal/invitations/") {
		t.Fatalf("admin %+v link %q", r.Admin, r.SetPasswordLink)
	}
	var body string
	f.svc.DB.Raw("SELECT body_text FROM email_outbox WHERE to_addr = ?", r.Admin.Email).Scan(&body)
	if !strings.Contains(body, r.SetPasswordLink) {
		t.Fatalf("mail lacks link: %q", body)
	}
	if _, err := f.svc.Authenticate(f.ctx, r.Admin.Email, "", "192.0.2.1"); err == nil {
		t.Fatal("pending user signed in without a password")
	}
	token := r.SetPasswordLink[strings.LastIndex(r.SetPasswordLink, "/")+1:]
	if _, err := f.svc.AcceptInvitation(f.ctx, token, "short"); fieldCode(err, "password") != "password_too_short" {
		t.Fatalf("short password: %v", err)
	}
	if _, err := f.svc.AcceptInvitation(f.ctx, token, "my-new-portal-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptInvitation(f.ctx, token, "my-new-portal-password"); !errs.Is(err, "invitation_invalid") {
		t.Fatalf("token reused: %v", err)
	}
	if _, err := f.svc.Authenticate(f.ctx, r.Admin.Email, "my-new-portal-password", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

func TestRegistrationChecksSeatVATTermsAndDocuments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cases := []struct {
		name        string
		mod         func(r *onboarding.Registration)
		field, code string
	}{
		{"swiss seat", func(r *onboarding.Registration) { r.Country, r.VATID = "CH", "CHE-123.456.788" }, "country", "seat_not_eea"},
		{"british seat", func(r *onboarding.Registration) { r.Country, r.VATID = "GB", "GB980780684" }, "country", "seat_not_eea"},
		{"us seat", func(r *onboarding.Registration) { r.Country = "US" }, "country", "seat_not_eea"},
		{"no seat", func(r *onboarding.Registration) { r.Country = "" }, "country", "country_required"},
		{"country name", func(r *onboarding.Registration) { r.Country = "Germany" }, "country", "country_invalid"},
		{"no terms version", func(r *onboarding.Registration) { r.TermsVersion = "" }, "terms_version", "terms_version_required"},
		{"vat check digit", func(r *onboarding.Registration) { r.VATID = "DE136695977" }, "vat_id", "vat_id_checksum"},
		{"vat format", func(r *onboarding.Registration) { r.VATID = "DE12" }, "vat_id", "vat_id_format"},
		{"vat prefix", func(r *onboarding.Registration) { r.VATID = "ATU13585627" }, "vat_id", "vat_id_country_mismatch"},
		{"vat missing", func(r *onboarding.Registration) { r.VATID = " " }, "vat_id", "vat_id_required"},
		{"norway orgnr", func(r *onboarding.Registration) { r.Country, r.VATID = "NO", "988077918" }, "vat_id", "vat_id_checksum"},
		{"terms", func(r *onboarding.Registration) { r.AcceptTerms = false }, "accept_terms", "terms_not_accepted"},
		{"old terms", func(r *onboarding.Registration) { r.TermsVersion = "2019-01" }, "terms_version", "terms_outdated"},
		{"no document", func(r *onboarding.Registration) { r.Documents = nil }, "documents", "document_required"},
		{"text as pdf", func(r *onboarding.Registration) {
			r.Documents = []onboarding.Upload{{Filename: "extract.pdf", Data: []byte("just text, not a PDF")}}
		}, "documents", "document_type"},
		{"too large", func(r *onboarding.Registration) {
			r.Documents = []onboarding.Upload{{Filename: "big.pdf", Data: append([]byte("%PDF-"), make([]byte, onboarding.MaxDocumentSize)...)}}
		}, "documents", "document_too_large"},
		{"email", func(r *onboarding.Registration) { r.ContactEmail = "not-an-email" }, "contact_email", "email_invalid"},
		{"password", func(r *onboarding.Registration) { r.AdminPassword = "short" }, "admin_password", "password_too_short"},
		{"services", func(r *onboarding.Registration) { r.IntendedServices = "" }, "intended_services", "intended_services_required"},
	}
	for _, tc := range cases {
		r := registration("Refused AG", "DE", "DE136695976")
		tc.mod(&r)
		_, err := f.svc.Register(f.ctx, r)
		if errs.KindOf(err) != errs.Invalid || fieldCode(err, tc.field) != tc.code {
			t.Errorf("%s: want %s/%s, got %v", tc.name, tc.field, tc.code, err)
		}
	}
	var n int64
	f.svc.DB.Raw("SELECT count(*) FROM providers").Scan(&n)
	if n != 0 {
		t.Fatalf("%d refused applications were stored", n)
	}
	// Iceland is an EEA seat although not a market; a PNG extract is fine.
	r := registration("Reykjavik Telematics ehf", "IS", "450401-3150")
	r.Documents = []onboarding.Upload{{Filename: "extract.png", Data: []byte("\x89PNG\r\n\x1a\nrest")}}
	if _, err := f.svc.Register(f.ctx, r); err != nil {
		t.Fatalf("icelandic seat: %v", err)
	}
}

// A known VAT ID or e-mail is not a field error (that would tell anyone who
// is registered): Register creates nothing, mails a notice with fixed
// wording to the known address and returns ErrAlreadyRegistered.
func TestDuplicateVATOrEmailNoticedAndSimilarNamesFlagged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.mustRegister(t, "Alpen Versicherung AG", "AT", "ATU13585627")
	count := func(q string, args ...any) (n int64) {
		t.Helper()
		if err := f.svc.DB.Raw(q, args...).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	providers := count("SELECT count(*) FROM providers")
	dupVAT := registration("Other Name GmbH", "AT", "AT U 135 856 27")
	dupVAT.LegalName = "Other Name GmbH\nVisit https://spam.example"
	if _, err := f.svc.Register(f.ctx, dupVAT); !errors.Is(err, onboarding.ErrAlreadyRegistered) {
		t.Fatalf("duplicate VAT: %v", err)
	}
	var notice string
	f.svc.DB.Raw("SELECT body_text FROM email_outbox WHERE kind = 'provider.already_registered' AND to_addr = ?", first.Admin.Email).Scan(&notice)
	if !strings.Contains(notice, "ATU13585627") || strings.Contains(notice, "Other Name") || strings.Contains(notice, "spam") {
		t.Fatalf("VAT notice to the known contact: %q", notice)
	}
	if n := count("SELECT count(*) FROM email_outbox WHERE to_addr = ?", dupVAT.ContactEmail); n != 0 {
		t.Fatalf("the applicant of a known VAT ID got %d e-mails", n)
	}
	dupEmail := registration("Third AG", "DE", "DE136695976")
	dupEmail.ContactEmail = strings.ToUpper(first.Admin.Email)
	if _, err := f.svc.Register(f.ctx, dupEmail); !errors.Is(err, onboarding.ErrAlreadyRegistered) {
		t.Fatalf("known e-mail: %v", err)
	}
	// Once a day per address: a second attempt does not mail again.
	if _, err := f.svc.Register(f.ctx, dupEmail); !errors.Is(err, onboarding.ErrAlreadyRegistered) {
		t.Fatalf("known e-mail again: %v", err)
	}
	if n := count("SELECT count(*) FROM email_outbox WHERE kind = 'provider.already_registered' AND to_addr = ?", first.Admin.Email); n != 1 {
		t.Fatalf("%d notices to the known address, want 1 a day", n)
	}
	if n := count("SELECT count(*) FROM providers"); n != providers {
		t.Fatalf("a known applicant created a provider (%d -> %d)", providers, n)
	}
	similar := f.mustRegister(t, "Alpen-Versicherung GmbH", "AT", "ATU46080404")
	if !strings.Contains(similar.Provider.ReviewFlags, "Alpen Versicherung AG") {
		t.Fatalf("similar name not flagged: %q", similar.Provider.ReviewFlags)
	}
	// Same name in another country is not flagged.
	elsewhere := f.mustRegister(t, "Alpen Versicherung AG", "DE", "DE136695976")
	if elsewhere.Provider.ReviewFlags != "" {
		t.Fatalf("flagged across countries: %q", elsewhere.Provider.ReviewFlags)
	}
	// After a rejection the company may apply again; the reviewer sees the history.
	if _, err := f.svc.Review(f.staff, first.Provider.ID, onboarding.ActionClaim, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Review(f.staff, first.Provider.ID, onboarding.ActionReject, "register extract missing"); err != nil {
		t.Fatal(err)
	}
	again := f.mustRegister(t, "Alpen Versicherung AG", "AT", "ATU13585627")
	if !strings.Contains(again.Provider.ReviewFlags, "Same VAT ID") {
		t.Fatalf("re-application not flagged: %q", again.Provider.ReviewFlags)
	}
	// The audit entry lists the flags as the review sees them in English,
	// and flag by flag in German (the earlier provider's state too).
	entries, err := audit.ForObject(f.ctx, f.svc.DB, "provider", fmt.Sprint(again.Provider.ID))
	if err != nil || len(entries) == 0 || entries[0].Action != "provider.submit" {
		t.Fatalf("audit: %v %v", entries, err)
	}
	e := entries[0]
	flags := strings.ReplaceAll(again.Provider.ReviewFlags, "\n", "; ")
	if !strings.HasSuffix(e.Summary, "; flagged: "+flags) {
		t.Errorf("English: %q, want the flags %q", e.Summary, flags)
	}
	de := e.SummaryIn("de")
	if want := fmt.Sprintf("; Hinweise: Gleiche USt-IdNr. wie Alpen Versicherung AG (#%d, abgelehnt)", first.Provider.ID); !strings.Contains(de, want) ||
		strings.Contains(de, "Same VAT ID") {
		t.Errorf("German: %q, want %q", de, want)
	}
}

func TestSimilarity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b    string
		similar bool
	}{
		{"Alpen Versicherung AG", "Alpen Versicherung GmbH", true},
		{"Müller Telematik GmbH", "Mueller Telematik", true},
		{"Müller Telematik GmbH", "MULLER TELEMATIK", true},
		{"Demo Insurance AG", "Demo Insurances SE", true},
		{"Nordic Fleet AS", "Baltic Leasing UAB", false},
	} {
		if got := onboarding.Similarity(tc.a, tc.b) >= 0.6; got != tc.similar {
			t.Errorf("Similarity(%q, %q) = %.2f", tc.a, tc.b, onboarding.Similarity(tc.a, tc.b))
		}
	}
}

// The confirmation repeats no applicant text but the company name, on one
// line, shortened, without links.
func TestConfirmationMailHasFixedWordingAndASafeCompanyName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hostile := "Evil AG\r\nBcc: victim@example.org\n\n<a href=\"https://spam.example\">WIN</a> www.spam.example\u202e" + strings.Repeat("x", 500)
	reg := registration(hostile, "DE", "DE136695976")
	reg.ContactName = "Click https://phish.example now"
	reg.IntendedServices = "Buy cheap pills at https://pills.example today"
	r, err := f.svc.Register(f.ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	var body, subject string
	f.svc.DB.Raw("SELECT body_text FROM email_outbox WHERE to_addr = ?", r.Admin.Email).Scan(&body)
	f.svc.DB.Raw("SELECT subject FROM email_outbox WHERE to_addr = ?", r.Admin.Email).Scan(&subject)
	if subject != "Your CarData registration" || !strings.HasPrefix(body, "Hello,\n\nthank you for registering \"Evil AG Bcc victim") {
		t.Fatalf("mail: %q %q", subject, body)
	}
	for _, bad := range []string{"phish", "pills", "Click", "<", ">", "@", "www.spam", "spam.example", "\r", "\u202e", strings.Repeat("x", 80)} {
		if strings.Contains(body, bad) {
			t.Errorf("the confirmation echoes %q: %q", bad, body)
		}
	}
	if strings.Count(body, "://") != 1 { // only our own portal link
		t.Errorf("links in the confirmation: %q", body)
	}
	line := strings.Split(body, "\n")[2]
	name := line[strings.Index(line, "\"")+1 : strings.LastIndex(line, "\"")]
	if n := len([]rune(name)); n > onboarding.MailNameLength {
		t.Fatalf("company name of %d characters in the mail: %q", n, name)
	}
}

func TestMailSafeName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Müller & Söhne GmbH & Co. KG":  "Müller & Söhne GmbH & Co. KG",
		"Alpen\nVersicherung\tAG":       "Alpen Versicherung AG",
		"  visit www.spam.example/now ": "visit www. spam. example now",
		"<b>Bold</b>":                   "b Bold b",
		"O’Brien (Ireland) Ltd.":        "O’Brien (Ireland) Ltd.",
		"\u202eevil\u200b":              "evil",
	} {
		if got := onboarding.MailSafeName(in); got != want {
			t.Errorf("MailSafeName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := []rune(onboarding.MailSafeName(strings.Repeat("ab ", 100))); len(got) != onboarding.MailNameLength || got[len(got)-1] != '…' {
		t.Errorf("long name: %q", string(got))
	}
}

// Apply limits applications per address and hour and stored document bytes
// per address and day; the clock is the service's, so nothing waits.
func TestApplyLimitsPerAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	f.svc.Now = func() time.Time { return now }
	f.svc.RegistrationLimits = onboarding.RegistrationLimits{PerHour: 2, DailyUploadBytes: int64(3 * len(tinyPDF))}
	apply := func(vatID, addr string) error {
		r := registration("Limit AG", "DE", vatID)
		r.ClientAddr = addr
		_, err := f.svc.Apply(f.ctx, r)
		return err
	}
	if err := apply("DE136695976", "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	bad := registration("Limit AG", "DE", "DE136695977")
	bad.ClientAddr = "198.51.100.1"
	if _, err := f.svc.Apply(f.ctx, bad); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("invalid application: %v", err)
	}
	var limited *onboarding.LimitError
	err := apply("DE811569869", "198.51.100.1")
	if !errors.As(err, &limited) || !errs.Is(err, "registration_rate_limited") || limited.RetryAfter != time.Hour {
		t.Fatalf("third in an hour: %v", err)
	}
	if err := apply("DE811569877", "198.51.100.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	now = now.Add(time.Hour)
	// The refused application stored nothing, so two more documents fit.
	if err := apply("DE811569869", "198.51.100.1"); err != nil {
		t.Fatalf("next hour: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if err := apply("DE811569885", "198.51.100.1"); err != nil {
		t.Fatalf("third document of the day: %v", err)
	}
	now = now.Add(2 * time.Hour)
	err = apply("DE811569893", "198.51.100.1")
	if !errors.As(err, &limited) || fieldCode(err, "documents") != "registration_upload_cap" || limited.RetryAfter != 19*time.Hour {
		t.Fatalf("over the daily upload cap: %v %+v", err, limited)
	}
	var n int64
	f.svc.DB.Raw("SELECT count(*) FROM providers WHERE vat_id = 'DE811569893'").Scan(&n)
	if n != 0 {
		t.Fatal("stored over the cap")
	}
}
