package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/policies"
)

// A page's language comes from Accept-Language until someone uses the
// switch; the switch sets a cookie (anonymous visitors) and, for a signed-in
// person, remembers the choice on the account, so it follows them to a
// browser without the cookie. The html lang attribute says which.
func TestLanguageChoiceAndSwitch(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "lang-admin@example.com", policies.RoleAdmin)

	anon := tt.Client(t)
	anon.Header.Set("Accept-Language", "de-AT,de;q=0.9,en;q=0.5")
	res := anon.Get("/admin/login")
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `<html lang="de">`) || !strings.Contains(res.Body, "Zum Inhalt springen") {
		t.Fatalf("Accept-Language de-AT: status %d, want a German page:\n%.600s", res.Status, res.Body)
	}
	if !strings.Contains(res.Body, `action="/lang"`) || !strings.Contains(res.Body, `value="/admin/login"`) {
		t.Fatalf("the page has no language switch returning to it:\n%s", res.Body)
	}

	// The switch without a CSRF token is refused like any unsafe request.
	if res := anon.PostRawForm("/lang", url.Values{"lang": {"en"}, "back": {"/admin/login"}}); res.Status != http.StatusForbidden {
		t.Fatalf("switch without CSRF: status %d", res.Status)
	}
	res = anon.PostForm("/lang", url.Values{"lang": {"en"}, "back": {"/admin/login?next=%2Fadmin"}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin/login?next=%2Fadmin" {
		t.Fatalf("switch: status %d, location %q", res.Status, res.Header.Get("Location"))
	}
	if anon.Cookie("cardata_lang") != "en" {
		t.Fatalf("switch set no cookie: %q", anon.Cookie("cardata_lang"))
	}
	if res := anon.Get("/admin/login"); !strings.Contains(res.Body, `<html lang="en">`) || !strings.Contains(res.Body, "Skip to content") {
		t.Fatalf("the cookie outranks Accept-Language: %.300s", res.Body)
	}
	// Only a path on this site is a way back; an unknown language is a field error.
	for _, back := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "admin"} {
		res := anon.PostForm("/lang", url.Values{"lang": {"de"}, "back": {back}})
		if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/" {
			t.Errorf("back %q: status %d, location %q, want /", back, res.Status, res.Header.Get("Location"))
		}
	}
	if res := anon.PostForm("/lang", url.Values{"lang": {"fr"}, "back": {"/"}}); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("lang fr: status %d, want 422", res.Status)
	}

	// A signed-in staff user's choice is remembered on the account.
	staff := tt.LoginStaff(t, "lang-admin@example.com")
	staff.Header.Set("Accept-Language", "en")
	if res := staff.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/admin"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("staff switch: status %d: %s", res.Status, res.Body)
	}
	var lang string
	if err := tt.DB.Raw("SELECT lang FROM staff_users WHERE email = ?", "lang-admin@example.com").Scan(&lang).Error; err != nil || lang != "de" {
		t.Fatalf("remembered language %q, %v", lang, err)
	}
	other := tt.LoginStaff(t, "lang-admin@example.com") // another browser: no cookie
	other.Header.Set("Accept-Language", "en-GB")
	if res := other.Get("/admin"); !strings.Contains(res.Body, `<html lang="de">`) || !strings.Contains(res.Body, "Abmelden") {
		t.Fatalf("the remembered language follows the person: %.400s", res.Body)
	}
	// Error pages speak the language too.
	if res := other.Get("/admin/no-such-page"); res.Status != http.StatusNotFound || !strings.Contains(res.Body, "Zur Startseite") {
		t.Fatalf("404 page: status %d: %.400s", res.Status, res.Body)
	}
}
