package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/policies"
	"cardata/policies/audit"
)

// rolesOf reads a staff user's roles straight from the database.
func rolesOf(t *testing.T, tt *apptest.T, id int64) []string {
	t.Helper()
	var roles []string
	if err := tt.DB.Raw("SELECT role FROM staff_user_roles WHERE user_id = ? ORDER BY role", id).Scan(&roles).Error; err != nil {
		t.Fatal(err)
	}
	return roles
}

// refusals lists the audit entries of refused role changes, oldest first.
func refusals(t *testing.T, tt *apptest.T) []audit.Entry {
	t.Helper()
	entries, _, err := audit.List(tt.Ctx, tt.DB, audit.Filter{Action: "staff_user.roles_refused"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(entries)
	return entries
}

func TestSeparationOfDutiesSelfGrant(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	ada := tt.MustCreateStaff(t, "ada@sod.test", policies.RoleAdmin)
	tt.MustCreateStaff(t, "bob@sod.test", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@sod.test")

	// Ada gives herself the auditor role: the form comes back with the
	// error on the roles field and what she typed, and nothing changes.
	res := c.PostForm("/admin/users/"+itoa(ada.ID), url.Values{"name": {"Ada Typed"}, "roles": {"admin", "auditor"}, "active": {"true"}})
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("self grant: %d %s", res.Status, res.Body)
	}
	for _, want := range []string{
		`<fieldset class="field invalid" id="f-roles">`,
		"cannot add roles to your own account",
		`value="Ada Typed"`,
		`value="auditor" checked`,
	} {
		if !strings.Contains(res.Body, want) {
			t.Fatalf("self grant form lacks %q: %s", want, res.Body)
		}
	}
	if got := rolesOf(t, tt, ada.ID); !slices.Equal(got, []string{policies.RoleAdmin}) {
		t.Fatalf("roles after refused self grant: %v", got)
	}
	// Refused, yet on record, as Ada's act on her own account.
	rs := refusals(t, tt)
	if len(rs) != 1 || rs[0].ActorLabel != "ada@sod.test" || rs[0].ObjectType != "staff_user" || rs[0].ObjectID != itoa(ada.ID) ||
		!strings.Contains(rs[0].Summary, policies.CodeSelfGrant) || rs[0].RequestID == "" {
		t.Fatalf("refusal audit: %+v", rs)
	}
	// Her session survived the refusal (a refused change ends no sessions).
	if r := c.Get("/admin/users/" + itoa(ada.ID)); r.Status != http.StatusOK || !strings.Contains(r.Body, "refused (sod_self_grant)") {
		t.Fatalf("timeline after refusal: %d", r.Status)
	}

	// A second administrator grants it.
	bob := tt.LoginStaff(t, "bob@sod.test")
	res = bob.PostForm("/admin/users/"+itoa(ada.ID), url.Values{"name": {"ada"}, "roles": {"admin", "auditor"}, "active": {"true"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("second admin grant: %d %s", res.Status, res.Body)
	}
	if got := rolesOf(t, tt, ada.ID); !slices.Equal(got, []string{policies.RoleAdmin, policies.RoleAuditor}) {
		t.Fatalf("roles after second admin: %v", got)
	}

	// Dropping one's own role and renaming oneself stay allowed.
	c = tt.LoginStaff(t, "ada@sod.test") // bob's change ended her sessions
	res = c.PostForm("/admin/users/"+itoa(ada.ID), url.Values{"name": {"Ada Lovelace"}, "roles": {"admin"}, "active": {"true"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("drop own role: %d %s", res.Status, res.Body)
	}
	if got := rolesOf(t, tt, ada.ID); !slices.Equal(got, []string{policies.RoleAdmin}) {
		t.Fatalf("roles after dropping own: %v", got)
	}
	if n := len(refusals(t, tt)); n != 1 {
		t.Fatalf("allowed changes were recorded as refusals: %d", n)
	}
}

func TestSeparationOfDutiesIncompatibleRoles(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@sod.test", policies.RoleAdmin)
	sam := tt.MustCreateStaff(t, "sam@sod.test", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@sod.test")

	// Create: refused, typed values kept, nothing created.
	res := c.PostForm("/admin/users", url.Values{"name": {"Eve Typed"}, "email": {"eve@sod.test"}, "password": {"a-long-password"},
		"roles": {"admin", "finance"}})
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("create admin+finance: %d %s", res.Status, res.Body)
	}
	for _, want := range []string{`<fieldset class="field invalid" id="f-roles">`, "cannot be held together",
		`value="Eve Typed"`, `value="eve@sod.test"`, `value="admin" checked`, `value="finance" checked`} {
		if !strings.Contains(res.Body, want) {
			t.Fatalf("create form lacks %q: %s", want, res.Body)
		}
	}
	var n int64
	tt.DB.Raw("SELECT count(*) FROM staff_users WHERE email = 'eve@sod.test'").Scan(&n)
	if n != 0 {
		t.Fatal("admin+finance user created")
	}

	// Update: refused, roles unchanged.
	res = c.PostForm("/admin/users/"+itoa(sam.ID), url.Values{"name": {"sam"}, "roles": {"admin", "finance"}, "active": {"true"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "cannot be held together") ||
		!strings.Contains(res.Body, `<fieldset class="field invalid" id="f-roles">`) {
		t.Fatalf("update admin+finance: %d %s", res.Status, res.Body)
	}
	if got := rolesOf(t, tt, sam.ID); !slices.Equal(got, []string{policies.RoleAdmin}) {
		t.Fatalf("roles after refused update: %v", got)
	}
	// Each role alone is fine.
	res = c.PostForm("/admin/users/"+itoa(sam.ID), url.Values{"name": {"sam"}, "roles": {"finance"}, "active": {"true"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("finance alone: %d %s", res.Status, res.Body)
	}

	rs := refusals(t, tt)
	if len(rs) != 2 {
		t.Fatalf("refusals: %+v", rs)
	}
	if rs[0].ObjectID != "" || !strings.Contains(rs[0].Summary, "create eve@sod.test") || !strings.Contains(rs[0].Summary, policies.CodeIncompatibleRoles) ||
		rs[0].ActorLabel != "ada@sod.test" {
		t.Fatalf("create refusal: %+v", rs[0])
	}
	if rs[1].ObjectID != itoa(sam.ID) || !strings.Contains(rs[1].Summary, "[admin] -> [admin, finance]") ||
		!strings.Contains(rs[1].Summary, policies.CodeIncompatibleRoles) {
		t.Fatalf("update refusal: %+v", rs[1])
	}
	// The refusals sit in the one hash chain like any other entry.
	if _, broken, err := audit.Verify(tt.Ctx, tt.DB); err != nil || broken != nil {
		t.Fatalf("audit chain: %v %+v", err, broken)
	}
}

func TestSeparationOfDutiesCLI(t *testing.T) {
	gdb, _ := cliDatabase(t)
	code, _, errOut := runCLI(t, "a-long-password\n", "user", "add", "--email", "eve@sod.test", "--name", "Eve",
		"--role", "admin,finance", "--password-stdin")
	if code != 1 || !strings.Contains(errOut, policies.CodeIncompatibleRoles) {
		t.Fatalf("cli admin+finance: %d %s", code, errOut)
	}
	var n int64
	gdb.Raw("SELECT count(*) FROM staff_users WHERE email = 'eve@sod.test'").Scan(&n)
	if n != 0 {
		t.Fatal("cli created an admin+finance user")
	}
	var e audit.Entry
	if err := gdb.Where("action = 'staff_user.roles_refused'").Take(&e).Error; err != nil || e.ActorKind != policies.KindSystem ||
		e.ActorLabel != "cli" || !strings.Contains(e.Summary, "eve@sod.test") {
		t.Fatalf("cli refusal audit: %+v %v", e, err)
	}
	if code, out, errOut := runCLI(t, "a-long-password\n", "user", "add", "--email", "eve@sod.test", "--name", "Eve",
		"--role", "finance", "--password-stdin"); code != 0 || !strings.Contains(out, "added staff user") {
		t.Fatalf("cli finance alone: %d %s %s", code, out, errOut)
	}
}
