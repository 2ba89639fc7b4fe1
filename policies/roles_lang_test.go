package policies_test

import (
	"testing"

	"cardata/policies"
	"cardata/templates/i18n"
)

// A staff user's roles are a list in audit summaries (errs.Terms of the
// role codes: "created sam@x with roles finance, auditor"): every role code
// reads in both languages, so a new role cannot stay English in a German
// trail (the catalogs' check, TestAuditSummariesAreInBothLanguages, sees
// only the words the code writes out).
func TestStaffRolesAreInBothLanguages(t *testing.T) {
	t.Parallel()
	for _, r := range policies.StaffRoles {
		for _, l := range i18n.Supported {
			if !i18n.Has(l, r) {
				t.Errorf("role %q has no %s translation (templates/i18n/audit-admin.%s.toml)", r, l, l)
			}
		}
		if i18n.T(i18n.DE, r) == r {
			t.Errorf("role %q reads as its code in German", r)
		}
	}
}
