package e2e

import (
	"encoding/base64"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/app/web"
)

// behindProxy lets tests pick client addresses: in-process requests come
// from 0.0.0.0, which stands for a trusted reverse proxy.
func behindProxy(c *config.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}
}

func clientAt(t *testing.T, tt *apptest.T, addr string) *apptest.Client {
	c := tt.Client(t)
	c.Header.Set("X-Forwarded-For", addr)
	return c
}

func regCount(t *testing.T, tt *apptest.T, q string, args ...any) (n int64) {
	t.Helper()
	if err := tt.DB.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// regFormFields is a valid /register form.
func regFormFields(email, vatID string) map[string]string {
	return map[string]string{"legal_name": "Formular Versicherung AG", "legal_form": "AG", "street": "Ring 1", "postal_code": "1010",
		"city": "Wien", "country": "AT", "vat_id": vatID, "register_number": "FN 1", "contact_name": "Franz Form",
		"contact_email": email, "billing_email": "billing@form.example",
		"intended_services": "Insurance by usage.", "accept_terms": "yes", "terms_version": "2025-01",
		"password": "form-password-123", "password_confirm": "form-password-123"}
}

// A registration whose e-mail or VAT ID is already known answers exactly
// like a new one, on the API and on the form, creates nothing, and the
// known address gets an "already registered" notice instead.
func TestKnownEmailOrVATRegistrationAnswersLikeANewOne(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)

	// API: the very same body twice; the second has a known e-mail and VAT ID.
	body := obRegistrationBody("AT", "ATU13585627", "anna@api.example")
	fresh := tt.Client(t).SendJSON(http.MethodPost, "/api/v1/registrations", body)
	known := tt.Client(t).SendJSON(http.MethodPost, "/api/v1/registrations", body)
	if fresh.Status != http.StatusAccepted || known.Status != fresh.Status || known.Body != fresh.Body ||
		known.Header.Get("Content-Type") != fresh.Header.Get("Content-Type") {
		t.Fatalf("API answers differ:\n%d %s\n%d %s", fresh.Status, fresh.Body, known.Status, known.Body)
	}
	if strings.Contains(fresh.Body, `"id"`) {
		t.Fatalf("the answer names the new provider's id: %s", fresh.Body)
	}
	if n := regCount(t, tt, "SELECT count(*) FROM providers"); n != 1 {
		t.Fatalf("%d providers, want 1", n)
	}
	if n := regCount(t, tt, "SELECT count(*) FROM email_outbox WHERE kind = 'provider.already_registered' AND to_addr = 'anna@api.example'"); n != 1 {
		t.Fatalf("%d notices to the known address, want 1", n)
	}
	// A known VAT ID with a new e-mail: the known provider's contact is told, the applicant learns nothing.
	other := obRegistrationBody("AT", "ATU 135 856 27", "otto@api.example")
	res := tt.Client(t).SendJSON(http.MethodPost, "/api/v1/registrations", other)
	if res.Status != http.StatusAccepted || strings.Replace(res.Body, "otto@api.example", "anna@api.example", 1) != fresh.Body {
		t.Fatalf("known VAT ID: %d %s", res.Status, res.Body)
	}
	if n := regCount(t, tt, "SELECT count(*) FROM email_outbox WHERE to_addr = 'otto@api.example'"); n != 0 {
		t.Fatalf("the applicant of a known VAT ID got %d e-mails", n)
	}

	// Form: the same two submissions, compared by status, redirect and flash.
	submit := func(email, vatID string) *apptest.Response {
		c := tt.Client(t)
		return c.Do(obMultipartForm(t, c, regFormFields(email, vatID), "extract.pdf", obPDF))
	}
	flash := func(r *apptest.Response) []string {
		var out []string
		for _, ck := range r.Header.Values("Set-Cookie") {
			if !strings.HasPrefix(ck, "cardata_csrf=") {
				out = append(out, ck)
			}
		}
		slices.Sort(out)
		return out
	}
	first := submit("franz@form.example", "ATU46080404")
	again := submit("FRANZ@form.example", "ATU46080404")
	if first.Status != http.StatusSeeOther || first.Header.Get("Location") != "/portal/login" ||
		again.Status != first.Status || again.Header.Get("Location") != first.Header.Get("Location") ||
		!slices.Equal(flash(again), flash(first)) || again.Body != first.Body {
		t.Fatalf("form answers differ:\n%d %v %v\n%d %v %v", first.Status, first.Header, first.Body, again.Status, again.Header, again.Body)
	}
	if n := regCount(t, tt, "SELECT count(*) FROM providers"); n != 2 {
		t.Fatalf("%d providers, want 2", n)
	}
	if n := regCount(t, tt, "SELECT count(*) FROM email_outbox WHERE kind = 'provider.already_registered' AND to_addr = 'franz@form.example'"); n != 1 {
		t.Fatalf("%d notices to the known form address, want 1", n)
	}
	loginProvider(t, tt, "franz@form.example", "form-password-123")
}

// Public registrations are limited per client address and hour, on the API
// (problem+json) and the form (re-rendered with the message), with
// Retry-After; another address is not affected.
func TestRegistrationRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, behindProxy, func(c *config.Config) { c.RegistrationRateLimit = 3 })
	c := clientAt(t, tt, "203.0.113.7")
	if res := c.SendJSON(http.MethodPost, "/api/v1/registrations", obRegistrationBody("AT", "ATU13585627", "a1@api.example")); res.Status != http.StatusAccepted {
		t.Fatalf("first: %d %s", res.Status, res.Body)
	}
	// Refused applications count too.
	if res := c.SendJSON(http.MethodPost, "/api/v1/registrations", obRegistrationBody("CH", "CHE-123.456.788", "a2@api.example")); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("second: %d %s", res.Status, res.Body)
	}
	if res := c.Do(obMultipartForm(t, c, regFormFields("a3@form.example", "ATU46080404"), "extract.pdf", obPDF)); res.Status != http.StatusSeeOther {
		t.Fatalf("third: %d %s", res.Status, res.Body)
	}
	res := c.SendJSON(http.MethodPost, "/api/v1/registrations", obRegistrationBody("DE", "DE136695976", "a4@api.example"))
	if code, _ := obProblemField(t, res); res.Status != http.StatusTooManyRequests || code != "registration_rate_limited" {
		t.Fatalf("fourth (API): %d %s", res.Status, res.Body)
	}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
		t.Fatalf("API Retry-After %q", res.Header.Get("Retry-After"))
	}
	res = c.Do(obMultipartForm(t, c, regFormFields("a5@form.example", "DE136695976"), "extract.pdf", obPDF))
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth (form): %d %s", res.Status, res.Body)
	}
	obMustContain(t, res.Body, "too many registrations from your network", `value="Formular Versicherung AG"`, `id="register"`)
	if n := regCount(t, tt, "SELECT count(*) FROM providers"); n != 2 {
		t.Fatalf("%d providers, want 2", n)
	}
	if res := clientAt(t, tt, "203.0.113.8").SendJSON(http.MethodPost, "/api/v1/registrations",
		obRegistrationBody("DE", "DE136695976", "b1@api.example")); res.Status != http.StatusAccepted {
		t.Fatalf("another address: %d %s", res.Status, res.Body)
	}
}

// Stored registration documents are capped per client address and day: an
// application over the cap gets 429 with a clear message and stores
// nothing; a refused (invalid) application's documents do not count. The
// cap here is four copies of the test PDF.
func TestRegistrationDailyUploadCap(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, behindProxy, func(c *config.Config) { c.RegistrationDailyUploadBytes = int64(4 * len(obPDF)) })
	c := clientAt(t, tt, "203.0.113.9")
	withDocs := func(country, vatID, email string, n int) map[string]any {
		b := obRegistrationBody(country, vatID, email)
		var docs []map[string]string
		for range n {
			docs = append(docs, map[string]string{"filename": "extract.pdf", "contentBase64": base64.StdEncoding.EncodeToString(obPDF)})
		}
		b["documents"] = docs
		return b
	}
	if res := c.SendJSON(http.MethodPost, "/api/v1/registrations", withDocs("AT", "ATU13585627", "u1@api.example", 2)); res.Status != http.StatusAccepted {
		t.Fatalf("two documents: %d %s", res.Status, res.Body)
	}
	if res := c.SendJSON(http.MethodPost, "/api/v1/registrations", withDocs("CH", "CHE-123.456.788", "u2@api.example", 2)); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid, two documents: %d %s", res.Status, res.Body)
	}
	docs := regCount(t, tt, "SELECT count(*) FROM provider_documents")
	res := c.SendJSON(http.MethodPost, "/api/v1/registrations", withDocs("DE", "DE136695976", "u3@api.example", 3))
	code, field := obProblemField(t, res)
	if res.Status != http.StatusTooManyRequests || code != "registration_upload_cap" || field != "documents/registration_upload_cap" ||
		res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap (API): %d %s", res.Status, res.Body)
	}
	var p web.Problem
	res.JSON(t, &p)
	if !strings.Contains(p.Errors[0].Message, "nothing was stored") {
		t.Fatalf("message: %q", p.Errors[0].Message)
	}
	f := regFormFields("u4@form.example", "DE136695976")
	res = c.Do(obMultipartForm(t, c, f, "extract.pdf", slices.Concat(obPDF, obPDF, obPDF)))
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap (form): %d %s", res.Status, res.Body)
	}
	obMustContain(t, res.Body, "documents from your network are limited", "nothing was stored")
	if n := regCount(t, tt, "SELECT count(*) FROM provider_documents"); n != docs {
		t.Fatalf("documents stored over the cap: %d -> %d", docs, n)
	}
	if n := regCount(t, tt, "SELECT count(*) FROM providers"); n != 1 {
		t.Fatalf("%d providers, want 1", n)
	}
	// Two more documents still fit: the invalid application's were not counted.
	if res := c.SendJSON(http.MethodPost, "/api/v1/registrations", withDocs("DE", "DE136695976", "u5@api.example", 2)); res.Status != http.StatusAccepted {
		t.Fatalf("within the cap: %d %s", res.Status, res.Body)
	}
}

// The confirmation e-mail has fixed wording: of the applicant's text it
// repeats only the company name, on one line, at most 80 characters,
// without markup or links, so the form cannot relay spam.
func TestConfirmationMailDoesNotEchoAttackerText(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	body := obRegistrationBody("AT", "ATU13585627", "victim@mail.example")
	body["legalName"] = "Cheap Pills AG\r\nBcc: list@spam.example\n\n<a href=\"https://spam.example/buy\">BUY NOW</a> www.spam.example " + strings.Repeat("W", 500)
	body["contactName"] = "Visit https://phish.example"
	body["intendedServices"] = "Limited offer: http://offer.example/win click here now"
	body["legalForm"] = "AG https://form.example"
	if res := tt.Client(t).SendJSON(http.MethodPost, "/api/v1/registrations", body); res.Status != http.StatusAccepted {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	var mail struct{ Subject, BodyText string }
	tt.DB.Raw("SELECT subject, body_text FROM email_outbox WHERE to_addr = 'victim@mail.example'").Scan(&mail)
	if mail.Subject != "Your CarData registration" || !strings.HasPrefix(mail.BodyText, "Hello,\n\nthank you for registering \"Cheap Pills AG Bcc list spam. example a href https spam. example buy BUY NOW") {
		t.Fatalf("mail: %q %q", mail.Subject, mail.BodyText)
	}
	for _, bad := range []string{"phish", "offer", "click", "form.example", "<", ">", "@", "www.spam", "spam.example", "\r", strings.Repeat("W", 80)} {
		if strings.Contains(mail.BodyText, bad) {
			t.Errorf("the confirmation echoes %q: %q", bad, mail.BodyText)
		}
	}
	if n := strings.Count(mail.BodyText, "://"); n == 0 || n != strings.Count(mail.BodyText, tt.App.Cfg.PublicURL+"/portal") {
		t.Errorf("links other than the portal's: %q", mail.BodyText)
	}
	line := strings.Split(mail.BodyText, "\n")[2]
	name := line[strings.Index(line, `"`)+1 : strings.LastIndex(line, `"`)]
	if n := len([]rune(name)); n > 80 {
		t.Errorf("company name of %d characters: %q", n, name)
	}
}
