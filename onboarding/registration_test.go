package onboarding_test

import (
	"bytes"
	"strings"
	"testing"

	"cardata/onboarding"
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

func TestDuplicateVATRefusedAndSimilarNamesFlagged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.mustRegister(t, "Alpen Versicherung AG", "AT", "ATU13585627")
	_, err := f.svc.Register(f.ctx, registration("Other Name GmbH", "AT", "AT U 135 856 27"))
	if fieldCode(err, "vat_id") != "vat_id_taken" {
		t.Fatalf("duplicate VAT: %v", err)
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
