package e2e

import (
	"net/http"
	"strings"
	"testing"

	"cardata/app/apptest"
)

// The public registration form, asked for in German (Accept-Language: de),
// says its refusals in German with their values (the country of seat, the
// current terms version, the file name) and keeps what was typed; the same
// post in English reads as before.
func TestRegisterFormSaysItsErrorsInGermanWithTheirValues(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	fields := func(country, vatID string) map[string]string {
		return map[string]string{"legal_name": "Grenzland Versicherung AG", "legal_form": "AG", "street": "Ring 1", "postal_code": "80331",
			"city": "München", "country": country, "vat_id": vatID, "register_number": "HRB 123456", "contact_name": "Greta Grenz",
			"contact_email": "greta@grenzland.example", "billing_email": "rechnung@grenzland.example",
			"intended_services": "Versicherung nach Fahrleistung.", "accept_terms": "yes", "terms_version": "2024-01",
			"password": "grenz-password-123", "password_confirm": "grenz-password-123"}
	}
	de := tt.Client(t)
	de.Header.Set("Accept-Language", "de")
	de.Get("/register")

	// An Austrian VAT ID for a German seat, outdated terms, a text file.
	res := de.Do(obMultipartForm(t, de, fields("DE", "ATU13585627"), "auszug.txt", []byte("hello")))
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("German registration: status %d: %.2000s", res.Status, res.Body)
	}
	obMustContain(t, res.Body,
		"Das Länderkürzel der USt-IdNr. passt nicht zum Land des Sitzes (Deutschland)",
		"Die Partnerbedingungen haben sich geändert; akzeptieren Sie die aktuelle Version 2025-01",
		"auszug.txt ist keine PDF-, PNG- oder JPEG-Datei",
		// what was typed stays
		`value="Grenzland Versicherung AG"`, `value="greta@grenzland.example"`, `value="HRB 123456"`, `value="München"`,
		"Versicherung nach Fahrleistung.", `<option value="DE" selected`)
	for _, english := range []string{"country prefix does not match", "(Germany)", "the partner terms changed", "is not a PDF, PNG or JPEG file"} {
		if strings.Contains(res.Body, english) {
			t.Errorf("the German form says %q", english)
		}
	}

	// A market that is no seat: the country's name is German too.
	res = de.Do(obMultipartForm(t, de, fields("CH", "CHE-123.456.788"), "auszug.pdf", obPDF))
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("Swiss seat: status %d", res.Status)
	}
	obMustContain(t, res.Body, "CarData ist im Markt Schweiz vertreten, registrieren können sich aber nur Unternehmen mit Sitz im EWR")
	if strings.Contains(res.Body, "Switzerland is a CarData market") {
		t.Error("the German form names the seat in English")
	}

	// The same post in English is unchanged.
	en := tt.Client(t)
	en.Get("/register")
	res = en.Do(obMultipartForm(t, en, fields("DE", "ATU13585627"), "extract.txt", []byte("hello")))
	obMustContain(t, res.Body, "the VAT ID&#39;s country prefix does not match the country of seat (Germany)",
		"the partner terms changed; accept the current version 2025-01", "extract.txt is not a PDF, PNG or JPEG file")
}
