package policies

import (
	"testing"

	"cardata/policies/errs"
)

func TestIncompatibleRolesTable(t *testing.T) {
	t.Parallel()
	seen := map[[2]string]bool{}
	for _, p := range IncompatibleRoles {
		if !IsStaffRole(p.A) || !IsStaffRole(p.B) {
			t.Errorf("pair %s/%s names a role that is not a staff role", p.A, p.B)
		}
		if p.A == p.B {
			t.Errorf("pair %s/%s pairs a role with itself", p.A, p.B)
		}
		if p.Reason == "" {
			t.Errorf("pair %s/%s has no reason", p.A, p.B)
		}
		a, b := p.A, p.B
		if a > b {
			a, b = b, a
		}
		if seen[[2]string{a, b}] {
			t.Errorf("pair %s/%s listed twice", a, b)
		}
		seen[[2]string{a, b}] = true
	}
	// The minimum: admins have no billing access.
	if !seen[[2]string{RoleAdmin, RoleFinance}] {
		t.Error("admin and finance must be incompatible")
	}
	if len(Conflicts([]string{RoleFinance, RoleAdmin})) != 1 || len(Conflicts([]string{RoleAdmin, RoleAuditor})) != 0 {
		t.Error("Conflicts does not follow the table")
	}
}

func TestCheckRoleChange(t *testing.T) {
	t.Parallel()
	admin := &Principal{Kind: KindStaff, ID: 7, Roles: []string{RoleAdmin}}
	cases := []struct {
		name     string
		actor    *Principal
		target   int64
		old, new []string
		code     string // "" when allowed
	}{
		{"admin adds a role to self", admin, 7, []string{RoleAdmin}, []string{RoleAdmin, RoleSupport}, CodeSelfGrant},
		{"admin keeps own roles", admin, 7, []string{RoleAdmin, RoleAuditor}, []string{RoleAdmin, RoleAuditor}, ""},
		{"admin drops own role", admin, 7, []string{RoleAdmin, RoleAuditor}, []string{RoleAdmin}, ""},
		{"admin swaps own role", admin, 7, []string{RoleAdmin, RoleAuditor}, []string{RoleAdmin, RoleSupport}, CodeSelfGrant},
		{"admin adds a role to another", admin, 8, []string{RoleSupport}, []string{RoleSupport, RolePartnerManager}, ""},
		{"admin gives another admin and finance", admin, 8, []string{RoleAdmin}, []string{RoleAdmin, RoleFinance}, CodeIncompatibleRoles},
		{"create with admin and finance", admin, 0, nil, []string{RoleAdmin, RoleFinance}, CodeIncompatibleRoles},
		{"create with admin", admin, 0, nil, []string{RoleAdmin}, ""},
		{"self grant of an incompatible role reports self grant first", admin, 7, []string{RoleAdmin}, []string{RoleAdmin, RoleFinance}, CodeSelfGrant},
		{"system creates admin and finance", System("cli"), 0, nil, []string{RoleAdmin, RoleFinance}, CodeIncompatibleRoles},
		{"system with the same id is no self grant", &Principal{Kind: KindSystem, ID: 7}, 7, nil, []string{RoleSupport}, ""},
		{"provider user with the same id is no self grant", &Principal{Kind: KindProvider, ID: 7}, 7, nil, []string{RoleSupport}, ""},
		{"no principal", nil, 7, nil, []string{RoleSupport}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRoleChange(tc.actor, tc.target, tc.old, tc.new)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e := errs.As(err)
			if err == nil || e.Code != tc.code || e.Kind != errs.Invalid {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if m := errs.FieldMap(err); m["roles"] == "" {
				t.Fatalf("no field error on roles: %v", err)
			}
		})
	}
	// Both rules at once: both field errors are listed.
	err := CheckRoleChange(admin, 7, []string{RoleAdmin}, []string{RoleAdmin, RoleFinance})
	if f := errs.As(err).Fields; len(f) != 2 || f[0].Code != CodeSelfGrant || f[1].Code != CodeIncompatibleRoles {
		t.Fatalf("fields %+v", f)
	}
}
