package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"cardata/app/apptest"
	"cardata/onboarding"
	"cardata/policies"
)

// obPDF passes the document type check.
var obPDF = []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")

const providerPassword = "provider-password-1"

var providerSeq atomic.Int64

// onboardingFor returns a service on the test app's database.
func onboardingFor(tt *apptest.T) *onboarding.Service {
	return &onboarding.Service{DB: tt.DB, BcryptCost: 4, PublicURL: tt.App.Cfg.PublicURL}
}

// mustRegisterProvider registers a company through the real service.
func mustRegisterProvider(t *testing.T, tt *apptest.T, name, country, vatID string) *onboarding.Registered {
	t.Helper()
	n := providerSeq.Add(1)
	r, err := onboardingFor(tt).Register(tt.Ctx, onboarding.Registration{
		LegalName: name, LegalForm: "AG", Street: "Ring 1", PostalCode: "1010", City: "Wien", Country: country, VATID: vatID,
		RegisterNumber: "FN 1", ContactName: "Admin " + name, ContactEmail: fmt.Sprintf("admin%d@provider.example", n),
		BillingEmail: "billing@provider.example", IntendedServices: "Usage-based insurance from mileage.",
		TermsVersion: "2025-01", AcceptTerms: true, AdminPassword: providerPassword, ClientAddr: "192.0.2.9",
		Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: obPDF}}})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return r
}

// mustActiveProvider registers and approves a provider.
func mustActiveProvider(t *testing.T, tt *apptest.T, name, country, vatID string) *onboarding.Registered {
	t.Helper()
	r := mustRegisterProvider(t, tt, name, country, vatID)
	svc := onboardingFor(tt)
	for _, a := range []onboarding.Action{onboarding.ActionClaim, onboarding.ActionApprove} {
		if _, err := svc.Review(tt.Ctx, r.Provider.ID, a, ""); err != nil {
			t.Fatalf("%s %s: %v", a, name, err)
		}
	}
	return r
}

// loginProvider signs a provider user in through the portal form.
func loginProvider(t *testing.T, tt *apptest.T, email, password string) *apptest.Client {
	t.Helper()
	c := tt.Client(t)
	res := c.PostForm("/portal/login", url.Values{"email": {email}, "password": {password}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("portal login %s: %d %s", email, res.Status, res.Body)
	}
	return c
}

func obProviderCtx(u *onboarding.ProviderUser) context.Context {
	return policies.WithPrincipal(context.Background(), u.Principal(0))
}

var obSecretRe = regexp.MustCompile(`<code id="client-secret">([^<]+)</code>`)
var obClientIDRe = regexp.MustCompile(`<code id="client-id">([^<]+)</code>`)

// shownSecret extracts the client id and secret from the page shown once.
func shownSecret(t *testing.T, body string) (string, string) {
	t.Helper()
	s, id := obSecretRe.FindStringSubmatch(body), obClientIDRe.FindStringSubmatch(body)
	if s == nil || id == nil {
		t.Fatalf("no secret on the page: %s", body)
	}
	return id[1], s[1]
}

func obMustContain(t *testing.T, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Fatalf("page lacks %q:\n%s", p, body)
		}
	}
}
