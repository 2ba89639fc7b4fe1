package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"cardata/app/devidp"
)

// A vehicle owner signs in to /my through the manufacturer's customer
// identity: the account the vehicle is mapped to is linked to the subject
// at the first sign-in, the consent decision records the subject, and
// local passwords are refused now that the customer identity is the way in.
func TestOIDCCustomerSignInAndDecide(t *testing.T) {
	t.Parallel()
	w := newOIDCWorld(t)
	tt := w.tt
	cw := consentWorldOn(t, tt)
	anna := identity(t, devidp.Customers(), "dev-anna")
	acc := cw.customer(t, anna.Email)
	vin := cw.vehicle(t, "BMW", "AT", true, acc)
	v := cw.approvedContainer(t, "Pay-as-you-drive", csMileage)
	k := cw.request(t, vin, v.ContainerID)

	c := tt.Client(t)
	res := w.signIn(t, c, "/my", anna)
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/my" {
		t.Fatalf("sign-in: %d %s %s", res.Status, res.Header.Get("Location"), res.Body)
	}
	var subject string
	tt.DB.Raw("SELECT identity_subject FROM customer_accounts WHERE id = ?", acc).Scan(&subject)
	if subject != anna.Subject {
		t.Fatalf("account's subject: %q", subject)
	}
	mustContain(t, "audit", strings.Join(auditSummaries(t, tt, "customer_account.identity_link"), "\n"),
		"anna@demo.example now signs in through the customer identity as subject dev-anna")
	mustContain(t, "/my", c.Get("/my").Body, vin, "Alpen Versicherung AG")

	if res := c.PostForm(fmt.Sprintf("/my/consents/%d/grant", k.ID), url.Values{}); res.Status != http.StatusSeeOther {
		t.Fatalf("grant: %d %s", res.Status, res.Body)
	}
	var ch struct {
		ToState, ActorKind, ActorSubject string
	}
	tt.DB.Raw("SELECT to_state, actor_kind, actor_subject FROM consent_changes WHERE consent_id = ? ORDER BY id DESC LIMIT 1", k.ID).Scan(&ch)
	if ch.ToState != "granted" || ch.ActorKind != "customer" || ch.ActorSubject != anna.Subject {
		t.Fatalf("consent change: %+v", ch)
	}

	// The second sign-in finds the account by its subject alone, whatever
	// e-mail address the identity has by then.
	moved := anna
	moved.Email = "anna.new@demo.example"
	if res := w.signIn(t, tt.Client(t), "/my", moved); res.Status != http.StatusSeeOther {
		t.Fatalf("sign-in with a new address: %d %s", res.Status, res.Body)
	}

	// Passwords are refused where the customer identity is configured.
	res = tt.Client(t).PostForm("/my/login", url.Values{"email": {anna.Email}, "password": {csPassword}})
	if res.Status != http.StatusForbidden {
		t.Fatalf("password sign-in: %d", res.Status)
	}
	page := tt.Client(t).Get("/my/login").Body
	mustContain(t, "sign-in page", page, "Sign in with your BMW or MINI account")
	if strings.Contains(page, `id="f-password"`) {
		t.Fatal("the sign-in page still asks for a password")
	}

	// Someone the vehicle master data maps no account to is refused.
	res = w.signIn(t, tt.Client(t), "/my", identity(t, devidp.Customers(), "dev-nocar"))
	if res.Status != http.StatusForbidden {
		t.Fatalf("identity without account: %d %s", res.Status, res.Body)
	}
	mustContain(t, "refusal", res.Body, "CarData has no vehicle for this account yet")

	// A token for another client is refused here too.
	bad := anna
	bad.Spoil = func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"cardata-staff"} }
	if res := w.signIn(t, tt.Client(t), "/my", bad); res.Status != http.StatusUnauthorized {
		t.Fatalf("wrong audience: %d", res.Status)
	}

	// Logout ends the customer identity's session as well.
	res = c.PostForm("/my/logout", nil)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, w.customer.Issuer()+"/logout?") {
		t.Fatalf("logout goes to %q", loc)
	}
}
