package e2e

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/policies"
)

// An administrator reading in German sees the audit trail's summaries in
// German (the user's timeline and the audit trail), lists in them item by
// item (the roles given, the changes made); the English pages show the
// English that the hash chain covers, unchanged.
func TestAuditTrailReadsInTheReadersLanguage(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "ada@test.local", policies.RoleAdmin)
	c := tt.LoginStaff(t, "ada@test.local")
	res := c.PostForm("/admin/users", url.Values{"name": {"Fiona"}, "email": {"fiona@test.local"}, "password": {"a-long-password"},
		"roles": {"partner_manager", "finance"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	user := res.Header.Get("Location")
	res = c.PostForm(user, url.Values{"name": {"Fiona B"}, "roles": {"finance", "auditor"}, "active": {"true"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("update: %d %s", res.Status, res.Body)
	}
	english := []string{"created fiona@test.local (Fiona) with roles finance, partner_manager",
		`fiona@test.local: name "Fiona" -> "Fiona B"; roles [finance, partner_manager] -> [auditor, finance]`}
	for _, p := range []string{user, "/admin/audit"} {
		body := html.UnescapeString(c.Get(p).Body)
		for _, en := range english {
			if !strings.Contains(body, en) {
				t.Fatalf("%s: the English summary %q is missing:\n%s", p, en, body)
			}
		}
	}
	if res := c.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/admin"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("switch: %d", res.Status)
	}
	german := []string{"fiona@test.local (Fiona) angelegt mit den Rollen Finanzen, Partnermanager",
		`fiona@test.local: Name "Fiona" -> "Fiona B"; Rollen [Finanzen, Partnermanager] -> [Prüfer, Finanzen]`}
	for _, p := range []string{user, "/admin/audit"} {
		body := html.UnescapeString(c.Get(p).Body)
		for i, de := range german {
			if !strings.Contains(body, de) || strings.Contains(body, english[i]) {
				t.Errorf("%s: the summary is not German (want %q):\n%s", p, de, body)
			}
		}
	}
}
