package support_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/admin/staff"
	"cardata/admin/support"
	"cardata/app/db/dbtest"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/errs"
)

var berlin, _ = time.LoadLocation("Europe/Berlin")

// at reads a Berlin wall time.
func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
	if err != nil {
		panic(err)
	}
	return t
}

var seq atomic.Int64

// fixture is a support desk on its own database with a controllable clock,
// two support agents, a team lead, and two active providers with one portal
// user each.
type fixture struct {
	db     *gorm.DB
	svc    *support.Service
	now    time.Time
	sys    context.Context
	agent  *staff.User
	agent2 *staff.User
	lead   *staff.User
	a, b   *onboarding.Registered
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	gdb := dbtest.New(t)
	f := &fixture{db: gdb, now: at("2026-03-02 09:00")}
	f.svc = &support.Service{DB: gdb, Clock: support.NewClock(berlin), PublicURL: "http://cardata.test", Now: func() time.Time { return f.now }}
	f.sys = policies.WithPrincipal(context.Background(), policies.System("test"))
	st := &staff.Service{DB: gdb, BcryptCost: 4}
	mk := func(email, name string, roles ...string) *staff.User {
		u, err := st.Create(f.sys, staff.NewUser{Email: email, Name: name, Roles: roles, Password: "test-password-123"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.agent = mk("sam@test.local", "Sam Support", policies.RoleSupport)
	f.agent2 = mk("sue@test.local", "Sue Support", policies.RoleSupport)
	f.lead = mk("lena@test.local", "Lena Lead", policies.RoleSupport)
	pm := mk("pm@test.local", "Petra PM", policies.RolePartnerManager)
	if err := f.svc.SetTeamLead(f.sys, &f.lead.ID); err != nil {
		t.Fatal(err)
	}
	ob := &onboarding.Service{DB: gdb, BcryptCost: 4, PublicURL: "http://cardata.test"}
	reg := func(name, country, vatID string) *onboarding.Registered {
		n := seq.Add(1)
		r, err := ob.Register(f.sys, onboarding.Registration{
			LegalName: name, LegalForm: "AG", Street: "Ring 1", PostalCode: "1010", City: "Wien", Country: country, VATID: vatID,
			RegisterNumber: "FN 1", ContactName: "Carla Contact", ContactEmail: fmt.Sprintf("contact%d@provider.example", n),
			BillingEmail: "billing@provider.example", IntendedServices: "Usage-based insurance from mileage.",
			TermsVersion: "2025-01", AcceptTerms: true, AdminPassword: "provider-password-1", ClientAddr: "192.0.2.9",
			Documents: []onboarding.Upload{{Filename: "extract.pdf", Data: []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")}}})
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		for _, a := range []onboarding.Action{onboarding.ActionClaim, onboarding.ActionApprove} {
			if _, err := ob.Review(f.staff(pm), r.Provider.ID, a, ""); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	f.a = reg("Alpen Versicherung AG", "AT", "ATU13585627")
	f.b = reg("Demo Insurance AG", "DE", "DE136695976")
	return f
}

func (f *fixture) set(s string) { f.now = at(s) }

func (f *fixture) staff(u *staff.User) context.Context {
	return policies.WithPrincipal(context.Background(), u.Principal(0))
}

// portal acts as the provider's admin user in the portal.
func (f *fixture) portal(r *onboarding.Registered) context.Context {
	return policies.WithPrincipal(context.Background(), r.Admin.Principal(0))
}

func (f *fixture) mustOpen(t *testing.T, r *onboarding.Registered, p support.Priority, c support.Category, subject string) *support.Ticket {
	t.Helper()
	tk, err := f.svc.OpenTicket(f.portal(r), support.NewTicket{Subject: subject, Description: "Details of " + subject,
		Category: c, Priority: p})
	if err != nil {
		t.Fatalf("open %s: %v", subject, err)
	}
	return tk
}

func (f *fixture) emails(t *testing.T) []jobs.Email {
	t.Helper()
	var out []jobs.Email
	if err := f.db.Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) emailsOfKind(t *testing.T, kind string) []jobs.Email {
	t.Helper()
	var out []jobs.Email
	for _, e := range f.emails(t) {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// wantCode fails unless err carries code, as its own or a field's code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got none", code)
	}
	if errs.Is(err, code) {
		return
	}
	for _, fe := range errs.As(err).Fields {
		if fe.Code == code {
			return
		}
	}
	t.Fatalf("want error %s, got %v", code, err)
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
