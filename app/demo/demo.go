// Package demo loads the demo data (`cardata demo`, README "Demo data")
// through the real services of an app: staff logins, jobs, providers and
// their reviews, a vehicle fleet with readings, containers and consents,
// support tickets, and an invoice run. Every step is idempotent.
package demo

import (
	"context"
	"fmt"
	"io"

	"cardata/admin/staff"
	"cardata/app"
	"cardata/policies"
	"cardata/policies/errs"
)

// Password is the password of every demo login.
const Password = "cardata-demo"

// Load creates demo data through the real services. It is idempotent:
// every step checks what exists before creating.
func Load(ctx context.Context, s *app.Services, out io.Writer) error {
	a := loader{s}
	steps := []struct {
		name string
		run  func(context.Context, io.Writer) error
	}{
		{"staff", a.demoStaff},
		{"jobs", a.demoJobs},
		{"onboarding", a.demoOnboarding},
		{"vehicles", a.demoVehicles},
		{"consent", a.demoConsent},
		{"support", a.demoSupport},
		{"billing", a.demoBilling},
	}
	for _, step := range steps {
		if err := step.run(ctx, out); err != nil {
			return fmt.Errorf("demo %s: %w", step.name, err)
		}
	}
	return nil
}

// loader runs the demo steps on the app's services.
type loader struct{ *app.Services }

// Staff are the demo staff logins (one per role; two partner managers for
// the second approval of sensitive containers, two finance users for
// credit notes).
var Staff = []staff.NewUser{
	{Email: "manager@demo.local", Name: "Maria Manager", Roles: []string{policies.RolePartnerManager}},
	{Email: "manager2@demo.local", Name: "Paul Partner", Roles: []string{policies.RolePartnerManager}},
	{Email: "finance@demo.local", Name: "Fiona Finance", Roles: []string{policies.RoleFinance}},
	// A credit note is drafted by one finance user and issued by another
	// (billing's four eyes), so the demo has two.
	{Email: "finance2@demo.local", Name: "Felix Finance", Roles: []string{policies.RoleFinance}},
	{Email: "support@demo.local", Name: "Sam Support", Roles: []string{policies.RoleSupport}},
	{Email: "admin@demo.local", Name: "Ada Admin", Roles: []string{policies.RoleAdmin}},
	{Email: "auditor@demo.local", Name: "Otto Auditor", Roles: []string{policies.RoleAuditor}},
}

func (a loader) demoStaff(ctx context.Context, out io.Writer) error {
	for _, u := range Staff {
		if _, err := a.Staff.FindByEmail(ctx, u.Email); err == nil {
			continue
		} else if errs.KindOf(err) != errs.NotFound {
			return err
		}
		u.Password = Password
		if _, err := a.Staff.Create(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(out, "demo: staff user %s (%s)\n", u.Email, u.Roles[0])
	}
	return nil
}
