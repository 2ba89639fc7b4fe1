package onboarding_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"cardata/app/db/dbtest"
	"cardata/onboarding"
	"cardata/policies"
)

// tinyPDF is the smallest file the type sniffing accepts as a PDF.
var tinyPDF = []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")

type fixture struct {
	svc     *onboarding.Service
	ctx     context.Context // system principal
	staff   context.Context // a partner manager
	staffID int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	gdb := dbtest.New(t)
	svc := &onboarding.Service{DB: gdb, BcryptCost: 4, PublicURL: "http://cardata.test"}
	var id int64
	if err := gdb.Raw(`INSERT INTO staff_users (email, name, password_hash) VALUES ('pm@test.local', 'Petra PM', 'x') RETURNING id`).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	staffCtx := policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindStaff, ID: id,
		Email: "pm@test.local", Name: "Petra PM", Roles: []string{policies.RolePartnerManager}})
	return &fixture{svc: svc, ctx: policies.WithPrincipal(context.Background(), policies.System("test")), staff: staffCtx, staffID: id}
}

var seq atomic.Int64

// registration returns a valid German application; vatID must be unique per test database.
func registration(name, country, vatID string) onboarding.Registration {
	n := seq.Add(1)
	return onboarding.Registration{
		LegalName: name, LegalForm: "AG", Street: "Hauptstraße 1", PostalCode: "80331", City: "München",
		Country: country, VATID: vatID, RegisterNumber: "HRB 12345", ContactName: "Clara Contact",
		ContactEmail: fmt.Sprintf("contact%d@example.com", n), BillingEmail: "billing@example.com",
		IntendedServices: "Pay-as-you-drive insurance based on mileage.", TermsVersion: "2025-01", AcceptTerms: true,
		AdminPassword: "a-long-password", ClientAddr: "192.0.2.1",
		Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: tinyPDF}},
	}
}

func (f *fixture) mustRegister(t *testing.T, name, country, vatID string) *onboarding.Registered {
	t.Helper()
	r, err := f.svc.Register(f.ctx, registration(name, country, vatID))
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return r
}

// mustActivate walks an application to active through the real workflow.
func (f *fixture) mustActivate(t *testing.T, id int64) {
	t.Helper()
	for _, a := range []onboarding.Action{onboarding.ActionClaim, onboarding.ActionApprove} {
		if _, err := f.svc.Review(f.staff, id, a, ""); err != nil {
			t.Fatalf("%s provider %d: %v", a, id, err)
		}
	}
}

// providerCtx acts as a provider user.
func providerCtx(u *onboarding.ProviderUser) context.Context {
	return policies.WithPrincipal(context.Background(), u.Principal(0))
}
