package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"cardata/app/demo"
	"cardata/app/web"
)

// A confirmation page is rendered at the address its form posts to, which
// only a POST route serves. Reloading it (or going back to it, or opening
// it from the history) asks that address with GET: the browser surfaces
// send it on to the page the form belongs to (303) with a note that nothing
// was done, instead of answering 405. Nothing is done, the machine surfaces
// keep their 405 problem document, and an anonymous visitor still ends at
// the sign-in page.
func TestReloadingAConfirmationPageGoesBackToItsPage(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	var pid, clientID, devID int64
	tt.DB.Raw(`SELECT id FROM providers WHERE legal_name = 'Demo Insurance AG'`).Scan(&pid)
	tt.DB.Raw(`SELECT id FROM api_clients WHERE client_id = ?`, demo.InsurerClientID).Scan(&clientID)
	tt.DB.Raw(`SELECT id FROM provider_users WHERE email = ?`, demo.InsurerDeveloper).Scan(&devID)
	if pid == 0 || clientID == 0 || devID == 0 {
		t.Fatalf("demo data: provider %d client %d developer %d", pid, clientID, devID)
	}
	status := func() (s string) {
		tt.DB.Raw(`SELECT status FROM providers WHERE id = ?`, pid).Scan(&s)
		return s
	}
	if status() != "active" {
		t.Fatalf("Demo Insurance AG is %q, want active", status())
	}
	const note = `class="flash flash-info" role="status">That page was the answer to a form; nothing was done.</div>`

	// The partner manager asks to suspend the provider: the confirmation page.
	manager := loginDemo(t, tt, demoLogins[0])
	action := fmt.Sprintf("/admin/providers/%d/transitions/suspend", pid)
	res := manager.PostForm(action, url.Values{"_confirm": {"ask"}, "note": {"Contract paused."}})
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `id="confirm-yes"`) || !strings.Contains(res.Body, "Suspend Demo Insurance AG?") {
		t.Fatalf("confirmation page: %d %s", res.Status, res.Body)
	}
	// Reloading it: the provider's page, where the form was, and nothing done.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		res = manager.Do(httptest.NewRequest(method, action, nil))
		if res.Status != http.StatusSeeOther || res.Header.Get("Location") != fmt.Sprintf("/admin/providers/%d", pid) || res.Header.Get("Allow") != "" {
			t.Fatalf("%s of the confirmation page: %d %v", method, res.Status, res.Header)
		}
	}
	res = manager.Get(res.Header.Get("Location"))
	if res.Status != http.StatusOK || !strings.Contains(res.Body, note) || !strings.Contains(res.Body, "Demo Insurance AG") {
		t.Fatalf("the provider's page after the reload: %d %s", res.Status, res.Body)
	}
	if status() != "active" {
		t.Fatalf("reloading the confirmation page changed the provider: %s", status())
	}
	// A query string is not carried over; a missing provider is the 404 the
	// provider's own page answers (nothing is looked up on the way).
	res = manager.Get("/admin/providers/999999/transitions/suspend?x=1")
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin/providers/999999" {
		t.Fatalf("unknown provider: %d %s", res.Status, res.Header.Get("Location"))
	}
	if res = manager.Get("/admin/providers/999999"); res.Status != http.StatusNotFound {
		t.Fatalf("unknown provider's page: %d", res.Status)
	}
	// Only a POST route's address is sent on: a path nobody serves is 404.
	if res = manager.Get(fmt.Sprintf("/admin/providers/%d/transitions", pid)); res.Status != http.StatusNotFound {
		t.Fatalf("a path without routes: %d", res.Status)
	}
	// Another method than GET or HEAD keeps its 405.
	put := httptest.NewRequest(http.MethodPut, action, nil)
	put.Header.Set("X-CSRF-Token", manager.CSRF())
	if res = manager.Do(put); res.Status != http.StatusMethodNotAllowed {
		t.Fatalf("PUT of the action: %d", res.Status)
	}

	// The provider's administrator, reading German, revokes an API client:
	// no page serves the client itself, so the nearest page is the list.
	admin := loginDemo(t, tt, demoLogins[6])
	admin.Header.Set("Accept-Language", "de-DE,de;q=0.9")
	revoke := fmt.Sprintf("/portal/clients/%d/revoke", clientID)
	if res = admin.PostForm(revoke, url.Values{"_confirm": {"ask"}}); res.Status != http.StatusOK || !strings.Contains(res.Body, `id="confirm-yes"`) {
		t.Fatalf("revoke confirmation: %d %s", res.Status, res.Body)
	}
	if res = admin.Get(revoke); res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal/clients" {
		t.Fatalf("reloading the revoke confirmation: %d %s", res.Status, res.Header.Get("Location"))
	}
	if res = admin.Get("/portal/clients"); !strings.Contains(res.Body, "Diese Seite war die Antwort auf ein Formular; es wurde nichts ausgeführt.") {
		t.Fatalf("no German note on the client list: %s", res.Body)
	}
	var revoked int64
	tt.DB.Raw(`SELECT count(*) FROM api_clients WHERE id = ? AND revoked_at IS NOT NULL`, clientID).Scan(&revoked)
	if revoked != 0 {
		t.Fatal("reloading the revoke confirmation revoked the client")
	}
	// The nearest page is one the person may read: the developer may not
	// read the user list, so a user's switch sends them home.
	dev := loginDemo(t, tt, demoLogins[7])
	if res = dev.Get(fmt.Sprintf("/portal/users/%d/active", devID)); res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal" {
		t.Fatalf("developer: %d %s", res.Status, res.Header.Get("Location"))
	}

	// An anonymous visitor learns nothing new: the same redirect any
	// visitor could type, then the sign-in page, without the note.
	anon := tt.Client(t)
	res = anon.Get(action)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != fmt.Sprintf("/admin/providers/%d", pid) ||
		strings.Contains(strings.Join(res.Header.Values("Set-Cookie"), "\n"), "cardata_flash") {
		t.Fatalf("anonymous: %d %v", res.Status, res.Header)
	}
	res = anon.Get(res.Header.Get("Location"))
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/admin/login?next=") {
		t.Fatalf("anonymous, the provider's page: %d %s", res.Status, res.Header.Get("Location"))
	}
	if res = anon.Get(res.Header.Get("Location")); res.Status != http.StatusOK || strings.Contains(res.Body, "flash-info") {
		t.Fatalf("anonymous, the sign-in page: %d", res.Status)
	}

	// The machine surfaces keep answering 405 with a problem document, and
	// so does a client that asks a browser surface for JSON.
	for path, accept := range map[string]string{"/api/v1/registrations": "", action: "application/json"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res = manager.Do(req)
		var p web.Problem
		res.JSON(t, &p)
		if res.Status != http.StatusMethodNotAllowed || res.Header.Get("Content-Type") != "application/problem+json" || p.Code != "method_not_allowed" {
			t.Errorf("GET %s (Accept %q): %d %s %s", path, accept, res.Status, res.Header.Get("Content-Type"), res.Body)
		}
	}
	if status() != "active" {
		t.Fatalf("the provider changed: %s", status())
	}
}
