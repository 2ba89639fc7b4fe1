package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/policies"
)

// An administrator reading in German sees the audit trail's summaries in
// German (the user's timeline and the audit trail); the English pages show
// the English that the hash chain covers, unchanged.
func TestAuditTrailReadsInTheReadersLanguage(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@test.local")
	res := c.PostForm("/admin/users", url.Values{"name": {"Fiona"}, "email": {"fiona@test.local"}, "password": {"a-long-password"}, "roles": {"finance"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	user := res.Header.Get("Location")
	english := "created fiona@test.local (Fiona) with roles finance"
	for _, p := range []string{user, "/admin/audit"} {
		if body := c.Get(p).Body; !strings.Contains(body, english) {
			t.Fatalf("%s: the English summary is missing:\n%s", p, body)
		}
	}
	if res := c.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/admin"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("switch: %d", res.Status)
	}
	for _, p := range []string{user, "/admin/audit"} {
		body := c.Get(p).Body
		if !strings.Contains(body, "fiona@test.local (Fiona) angelegt mit den Rollen finance") || strings.Contains(body, english) {
			t.Errorf("%s: the summary is not German:\n%s", p, body)
		}
	}
}
