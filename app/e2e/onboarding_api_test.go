package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"cardata/app/apptest"
	"cardata/app/web"
)

func obRegistrationBody(country, vatID, email string) map[string]any {
	return map[string]any{
		"legalName": "Api Versicherung AG", "legalForm": "AG", "street": "Ring 1", "postalCode": "1010", "city": "Wien",
		"country": country, "vatId": vatID, "registerNumber": "FN 123456a", "contactName": "Anna Api",
		"contactEmail": email, "billingEmail": "billing@api.example", "intendedServices": "Usage-based insurance from mileage.",
		"termsVersion": "2025-01", "acceptTerms": true,
		"documents": []map[string]string{{"filename": "extract.pdf", "contentBase64": base64.StdEncoding.EncodeToString(obPDF)}},
	}
}

func obProblemField(t *testing.T, res *apptest.Response) (string, string) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q: %s", ct, res.Body)
	}
	var p web.Problem
	res.JSON(t, &p)
	if len(p.Errors) == 0 {
		return p.Code, ""
	}
	return p.Code, p.Errors[0].Field + "/" + p.Errors[0].Code
}

func TestRegistrationAPI(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	c := tt.Client(t)
	// A prospective provider's program registers with the generated client (no token).
	body, err := json.Marshal(obRegistrationBody("AT", "ATU13585627", "anna@api.example"))
	if err != nil {
		t.Fatal(err)
	}
	reg := call(apiGenOver(t, apiInProcessClient(t, tt)).RegisterWithBodyWithResponse(t.Context(), "application/json", bytes.NewReader(body))).must(t)
	if out := reg.JSON202; out == nil || out.Status != "submitted" || out.VatId != "ATU13585627" || out.PasswordSetup != "link_sent" {
		t.Fatalf("register: %d %s", reg.StatusCode(), reg.Body)
	}
	var link int64
	tt.DB.Raw("SELECT count(*) FROM email_outbox WHERE to_addr = 'anna@api.example' AND body_text LIKE '%/portal/invitations/%'").Scan(&link)
	if link != 1 {
		t.Fatal("no set-password link mailed")
	}
	// A known VAT ID is not refused (that would tell anyone who is
	// registered): the answer is the one a new application gets, and the
	// known provider's contact is told by e-mail (app/registration_abuse_test.go).
	dup := c.SendJSON(http.MethodPost, "/api/v1/registrations", obRegistrationBody("AT", "AT U13585627", "other@api.example"))
	if dup.Status != http.StatusAccepted || dup.Header.Get("Content-Type") != reg.HTTPResponse.Header.Get("Content-Type") {
		t.Fatalf("known VAT ID: %d %s", dup.Status, dup.Body)
	}

	for _, tc := range []struct {
		name         string
		country, vat string
		status       int
		code, field  string
	}{
		{"swiss seat", "CH", "CHE-123.456.788", 422, "validation_failed", "country/seat_not_eea"},
		{"uk seat", "GB", "GB980780684", 422, "validation_failed", "country/seat_not_eea"},
		{"bad check digit", "DE", "DE136695977", 422, "validation_failed", "vatId/vat_id_checksum"},
	} {
		res := c.SendJSON(http.MethodPost, "/api/v1/registrations", obRegistrationBody(tc.country, tc.vat, "other@api.example"))
		code, field := obProblemField(t, res)
		if res.Status != tc.status || code != tc.code || field != tc.field {
			t.Errorf("%s: %d %s %s", tc.name, res.Status, code, field)
		}
	}
	for name, tc := range map[string]struct{ body, code string }{
		"not json":        {"legalName=x", "invalid_json"},
		"unknown member":  {`{"legalNam": "x"}`, "unknown_member"},
		"snake_case name": {`{"legal_name": "x"}`, "unknown_member"},
		"wrong type":      {`{"acceptTerms": "yes"}`, "invalid_json"},
	} {
		res := c.SendJSON(http.MethodPost, "/api/v1/registrations", tc.body)
		if code, _ := obProblemField(t, res); res.Status != http.StatusBadRequest || code != tc.code {
			t.Errorf("%s: %d %s", name, res.Status, res.Body)
		}
	}
	bad := obRegistrationBody("DE", "DE136695976", "bad@api.example")
	bad["documents"] = []map[string]string{{"filename": "x.pdf", "contentBase64": "%%%"}}
	res := c.SendJSON(http.MethodPost, "/api/v1/registrations", bad)
	if _, f := obProblemField(t, res); res.Status != 422 || f != "documents/document_encoding" {
		t.Fatalf("bad base64: %d %s", res.Status, res.Body)
	}
	bad["documents"] = []map[string]string{{"filename": "x.pdf", "contentBase64": base64.StdEncoding.EncodeToString([]byte("<html>"))}}
	res = c.SendJSON(http.MethodPost, "/api/v1/registrations", bad)
	if _, f := obProblemField(t, res); res.Status != 422 || f != "documents/document_type" {
		t.Fatalf("html as pdf: %d %s", res.Status, res.Body)
	}
}

func TestMarketsAPIIsPublicAndShowsPausedMarkets(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	if _, err := onboardingFor(tt).SetMarketActive(tt.Ctx, "GB", false); err != nil {
		t.Fatal(err)
	}
	res := call(apiGenOver(t, apiInProcessClient(t, tt)).ListMarketsWithResponse(t.Context())).must(t) // public: no token
	if res.JSON200 == nil {
		t.Fatalf("%d %s", res.StatusCode(), res.Body)
	}
	var out struct {
		Count   int
		Markets []struct{ Code, Name, Status string }
	}
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Count != 31 || len(out.Markets) != 31 {
		t.Fatalf("%d markets", out.Count)
	}
	seen := map[string]string{}
	for _, m := range out.Markets {
		seen[m.Code] = m.Status
	}
	if seen["GB"] != "paused" || seen["CH"] != "active" || seen["DE"] != "active" || seen["IS"] != "" {
		t.Fatalf("markets: %v", seen)
	}
}
