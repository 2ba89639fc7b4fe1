package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"cardata/app/devidp"
	"cardata/policies"
)

// A new hire's account is created at the first sign-in with the roles
// their groups map to; the roles follow the groups at every sign-in; once
// in no mapped group they are refused and their sessions end. Every change
// is in the audit trail.
func TestOIDCStaffJustInTimeAndRoleRefresh(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	tt := w.tt
	nina := identity(t, devidp.Staff(), "dev-newhire")

	c := tt.Client(t)
	res := w.signIn(t, c, "/admin", nina)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin" {
		t.Fatalf("sign-in: %d %s %s", res.Status, res.Header.Get("Location"), res.Body)
	}
	u, err := tt.App.Staff.FindByEmail(tt.Ctx, nina.Email)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Roles, []string{policies.RoleSupport}) || u.OIDCSubject == nil || *u.OIDCSubject != nina.Subject {
		t.Fatalf("created account: roles %v subject %v", u.Roles, u.OIDCSubject)
	}
	if res := c.Get("/admin/tickets"); res.Status != http.StatusOK {
		t.Fatalf("support's tickets: %d", res.Status)
	}
	if res := c.Get("/admin/review-queue"); res.Status != http.StatusForbidden {
		t.Fatalf("support opens the review queue: %d", res.Status)
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "staff_user.create"), "\n"),
		"created new.hire@demo.local (Nina Newhire) at the first sign-in through "+w.staff.Issuer()+" (subject dev-newhire) with roles support")

	// Moved to the partner managers: the next sign-in brings the new role
	// and ends the old session.
	nina.Groups = []string{"cardata-partner-managers"}
	c2 := tt.Client(t)
	if res := w.signIn(t, c2, "/admin", nina); res.Status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d %s", res.Status, res.Body)
	}
	if res := c2.Get("/admin/review-queue"); res.Status != http.StatusOK {
		t.Fatalf("partner manager's review queue: %d", res.Status)
	}
	if res := c.Get("/admin/tickets"); res.Status == http.StatusOK {
		t.Fatal("the session with the old roles still works")
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "staff_user.update"), "\n"),
		"roles [support] -> [partner_manager] from groups [cardata-partner-managers]")

	// Removed from every CarData group: refused, with a reason, and the
	// live session ends.
	nina.Groups = []string{"all-employees"}
	res = w.signIn(t, tt.Client(t), "/admin", nina)
	if res.Status != http.StatusForbidden {
		t.Fatalf("sign-in in no mapped group: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refusal", res.Body, "none of the groups that give access to CarData")
	if res := c2.Get("/admin/review-queue"); res.Status == http.StatusOK {
		t.Fatal("the session outlives the removal from every group")
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "staff_user.sign_in_refused"), "\n"),
		"refused (oidc_no_role): new.hire@demo.local (subject dev-newhire)", "roles [partner_manager] -> []")
	if got := rolesOf(t, tt, u.ID); len(got) != 0 {
		t.Fatalf("roles after removal: %v", got)
	}
}

// A local account is linked by its e-mail address when the provider
// vouches for it; its roles then follow the groups. Someone never known in
// no mapped group gets no account.
func TestOIDCStaffLinksLocalAccountAndRefusesStranger(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	tt := w.tt
	m := tt.MustCreateStaff(t, "manager@demo.local", policies.RoleAuditor)
	c := tt.Client(t)
	if res := w.signIn(t, c, "/admin", identity(t, devidp.Staff(), "dev-manager")); res.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", res.Status, res.Body)
	}
	if got := rolesOf(t, tt, m.ID); !slices.Equal(got, []string{policies.RolePartnerManager}) {
		t.Fatalf("linked account's roles: %v", got)
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "staff_user.identity_link"), "\n"),
		"manager@demo.local now signs in through "+w.staff.Issuer()+" as subject dev-manager")
	res := c.Get("/admin")
	mustContain(t, "dashboard", res.Body, "Maria Manager", "Partner manager")

	res = w.signIn(t, tt.Client(t), "/admin", identity(t, devidp.Staff(), "dev-leaver"))
	if res.Status != http.StatusForbidden {
		t.Fatalf("leaver: %d %s", res.Status, res.Body)
	}
	if _, err := tt.App.Staff.FindByEmail(tt.Ctx, "leaver@demo.local"); err == nil {
		t.Fatal("an account was created for someone in no mapped group")
	}
}

// Groups that give administrator and finance together are refused like
// the same roles on the staff form: a clear message, an audit entry, no
// account.
func TestOIDCStaffSeparationOfDuties(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	tt := w.tt
	res := w.signIn(t, tt.Client(t), "/admin", identity(t, devidp.Staff(), "dev-conflict"))
	if res.Status != http.StatusForbidden {
		t.Fatalf("conflicting groups: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refusal", res.Body, "Administrator and Finance, which cannot be held together")
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "staff_user.roles_refused"), "\n"),
		"refused (sod_incompatible_roles): sign-in of conflict@demo.local (subject dev-conflict) with groups [cardata-admins, cardata-finance] mapping to roles [admin, finance]")
	if _, err := tt.App.Staff.FindByEmail(tt.Ctx, "conflict@demo.local"); err == nil {
		t.Fatal("an account was created with incompatible roles")
	}
}

// Every answer that is not this sign-in's, properly signed, for this
// client and still valid is refused, and no session starts.
func TestOIDCRefusesBadAnswers(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	tt := w.tt
	good := identity(t, devidp.Staff(), "dev-support")
	spoilt := func(f func(*mockoidc.IDTokenClaims)) devidp.Identity { id := good; id.Spoil = f; return id }
	past := time.Now().Add(-2 * time.Hour)
	cases := []struct {
		name string
		id   devidp.Identity
		want string
	}{
		{"wrong audience", spoilt(func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"another-client"} }), "could not be verified"},
		{"expired", spoilt(func(c *mockoidc.IDTokenClaims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(past), jwt.NewNumericDate(past), jwt.NewNumericDate(past.Add(time.Hour))
		}), "could not be verified"},
		{"nonce mismatch", spoilt(func(c *mockoidc.IDTokenClaims) { c.Nonce = "a-nonce-of-another-sign-in" }), "does not belong to this sign-in"},
		{"foreign key", func() devidp.Identity { id := good; id.ForeignKey = true; return id }(), "could not be verified"},
		{"wrong issuer", spoilt(func(c *mockoidc.IDTokenClaims) { c.Issuer = "https://idp.evil.example" }), "could not be verified"},
	}
	for _, tc := range cases {
		c := tt.Client(t)
		res := w.signIn(t, c, "/admin", tc.id)
		if res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s", tc.name, res.Status, res.Body)
		}
		mustContain(t, tc.name, res.Body, tc.want)
		if res := c.Get("/admin"); res.Status != http.StatusSeeOther && res.Status != http.StatusUnauthorized {
			t.Fatalf("%s: a session started (%d)", tc.name, res.Status)
		}
	}
	if _, err := tt.App.Staff.FindByEmail(tt.Ctx, good.Email); err == nil {
		t.Fatal("a refused answer created an account")
	}

	// Replayed state: the callback of a finished sign-in, again, in the
	// same browser.
	c := tt.Client(t)
	cb := w.flow(t, c, "/admin", good)
	cookie := c.Cookie("cardata_oidc_staff")
	if res := c.Get(cb); res.Status != http.StatusSeeOther {
		t.Fatalf("good sign-in: %d %s", res.Status, res.Body)
	}
	replay := tt.Client(t)
	replay.SetCookie("cardata_oidc_staff", cookie)
	res := replay.Get(cb)
	if res.Status != http.StatusUnauthorized {
		t.Fatalf("replayed state: %d %s", res.Status, res.Body)
	}
	mustContain(t, "replay", res.Body, "expired, was already used or was started in another browser")

	// Another browser: a callback without the cookie of the browser that
	// started the sign-in (login CSRF) is refused, and so is a state that
	// does not match the cookie.
	c = tt.Client(t)
	cb = w.flow(t, c, "/admin", good)
	if res := tt.Client(t).Get(cb); res.Status != http.StatusUnauthorized {
		t.Fatalf("callback in another browser: %d", res.Status)
	}
	other := tt.Client(t)
	w.flow(t, other, "/admin", good) // a sign-in of its own, whose cookie does not match cb's state
	if res := other.Get(cb); res.Status != http.StatusUnauthorized {
		t.Fatalf("state of another sign-in: %d", res.Status)
	}
}

// Logout ends the local session and, as the provider offers an end-session
// endpoint, sends the browser there with where to come back.
func TestOIDCStaffLogout(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	tt := w.tt
	c := tt.Client(t)
	if res := w.signIn(t, c, "/admin", identity(t, devidp.Staff(), "dev-auditor")); res.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", res.Status, res.Body)
	}
	res := c.PostForm("/admin/logout", nil)
	loc := res.Header.Get("Location")
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(loc, w.staff.Issuer()+"/logout?") ||
		!strings.Contains(loc, "client_id=cardata-staff") || !strings.Contains(loc, "post_logout_redirect_uri=http%3A%2F%2F") {
		t.Fatalf("logout: %d %q", res.Status, loc)
	}
	if res := c.Get("/admin"); res.Status == http.StatusOK {
		t.Fatal("the session survives logout")
	}
	// A password session's logout stays local.
	tt.MustCreateStaff(t, "local@oidc.test", policies.RoleAuditor)
	lc := tt.LoginStaff(t, "local@oidc.test")
	if res := lc.PostForm("/admin/logout", nil); res.Header.Get("Location") != "/admin/login" {
		t.Fatalf("local logout goes to %q", res.Header.Get("Location"))
	}
}
