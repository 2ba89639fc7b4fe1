package app

import (
	"context"
	"fmt"
	"io"

	"cardata/admin/staff"
	"cardata/policies"
	"cardata/policies/errs"
)

// DemoPassword is the password of every demo login.
const DemoPassword = "cardata-demo"

// LoadDemo creates demo data through the real services. It is idempotent:
// every step checks what exists before creating.
func (a *App) LoadDemo(ctx context.Context, out io.Writer) error {
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
	for _, s := range steps {
		if err := s.run(ctx, out); err != nil {
			return fmt.Errorf("demo %s: %w", s.name, err)
		}
	}
	return nil
}

// DemoStaff are the demo staff logins (one per role).
var DemoStaff = []staff.NewUser{
	{Email: "manager@demo.local", Name: "Maria Manager", Roles: []string{policies.RolePartnerManager}},
	{Email: "manager2@demo.local", Name: "Paul Partner", Roles: []string{policies.RolePartnerManager}},
	{Email: "finance@demo.local", Name: "Fiona Finance", Roles: []string{policies.RoleFinance}},
	{Email: "support@demo.local", Name: "Sam Support", Roles: []string{policies.RoleSupport}},
	{Email: "admin@demo.local", Name: "Ada Admin", Roles: []string{policies.RoleAdmin}},
	{Email: "auditor@demo.local", Name: "Otto Auditor", Roles: []string{policies.RoleAuditor}},
}

func (a *App) demoStaff(ctx context.Context, out io.Writer) error {
	for _, u := range DemoStaff {
		if _, err := a.Staff.FindByEmail(ctx, u.Email); err == nil {
			continue
		} else if errs.KindOf(err) != errs.NotFound {
			return err
		}
		u.Password = DemoPassword
		if _, err := a.Staff.Create(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(out, "demo: staff user %s (%s)\n", u.Email, u.Roles[0])
	}
	return nil
}
