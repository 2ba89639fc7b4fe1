package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/onboarding"
	"cardata/onboarding/containers"
	"cardata/policies"
)

// Every container, consent and customer route from both sides: the allowed
// roles get through (any status but 401/403), every other role gets 403;
// the API answers 401 without a token.
func TestContainerConsentCustomerRoleMatrix(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	tt := w.tt
	for _, r := range policies.StaffRoles {
		tt.MustCreateStaff(t, r+"@test.local", r)
	}
	svc := onboardingFor(tt)
	for _, u := range []struct{ email, role string }{{"dev@alpen.example", onboarding.RoleProviderDeveloper}, {"fin@alpen.example", onboarding.RoleProviderFinance}} {
		inv, err := svc.InviteProviderUser(obProviderCtx(w.provider.Admin), w.pid, onboarding.Invite{Email: u.email, Name: u.role, Role: u.role})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AcceptInvitation(tt.Ctx, inv.Link[len(tt.App.Cfg.PublicURL+"/portal/invitations/"):], providerPassword); err != nil {
			t.Fatal(err)
		}
	}
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Mileage", csMileage)
	k := w.granted(t, vin, v.ContainerID, anna)
	draft, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Draft", Purpose: csPurpose, PurposeCode: "insurance_usage", Keys: []string{csMileage}})
	if err != nil {
		t.Fatal(err)
	}

	clients := map[string]*apptest.Client{}
	for _, r := range policies.StaffRoles {
		clients[r] = tt.LoginStaff(t, r+"@test.local")
	}
	clients["provider_admin"] = loginProvider(t, tt, w.provider.Admin.Email, providerPassword)
	clients["provider_developer"] = loginProvider(t, tt, "dev@alpen.example", providerPassword)
	clients["provider_finance"] = loginProvider(t, tt, "fin@alpen.example", providerPassword)
	clients["customer"] = w.loginCustomer(t, "anna@test.local")
	clients["provider_api"] = w.api
	all := []string{"partner_manager", "finance", "support", "admin", "auditor", "provider_admin", "provider_developer",
		"provider_finance", "customer", "provider_api"}
	pm, au, su := "partner_manager", "auditor", "support"
	pa, pd, pf, cu, api := "provider_admin", "provider_developer", "provider_finance", "customer", "provider_api"
	cid, did := fmt.Sprint(v.ContainerID), fmt.Sprint(draft.ContainerID)
	cases := []struct {
		method, path string
		form         url.Values
		allowed      []string
	}{
		{"GET", "/admin/containers", nil, []string{pm, au, su}},
		{"GET", "/admin/containers/" + cid, nil, []string{pm, au, su}},
		// A refused transition still proves the role got through (409, not 403).
		{"POST", "/admin/containers/" + cid + "/versions/1/approve", nil, []string{pm}},
		{"POST", "/admin/containers/" + cid + "/versions/1/reject", url.Values{"reason": {"x"}}, []string{pm}},
		{"GET", "/admin/customers", nil, []string{su, au}},
		{"GET", fmt.Sprintf("/admin/customers/%d", anna), nil, []string{su, au}},
		{"GET", fmt.Sprintf("/admin/customers/%d/transactions?format=csv", anna), nil, []string{su, au}},
		{"GET", fmt.Sprintf("/admin/customers/%d/data-reports/999", anna), nil, []string{su, au}},
		{"POST", fmt.Sprintf("/admin/customers/%d/data-reports", anna), nil, []string{su, au}},
		{"POST", fmt.Sprintf("/admin/customers/%d/data-reports/999/retry", anna), nil, []string{su, au}},
		{"GET", "/portal/containers", nil, []string{pa, pd, pf}},
		{"GET", "/portal/containers/" + cid, nil, []string{pa, pd, pf}},
		{"GET", "/portal/containers/new", nil, []string{pa, pd}},
		{"GET", "/portal/containers/" + cid + "/versions/new", nil, []string{pa, pd}},
		{"GET", "/portal/containers/" + did + "/versions/1/edit", nil, []string{pa, pd}},
		{"POST", "/portal/containers", url.Values{"name": {""}}, []string{pa, pd}},
		{"POST", "/portal/containers/" + cid + "/versions", url.Values{"name": {""}}, []string{pa, pd}},
		{"POST", "/portal/containers/" + did + "/versions/1", url.Values{"name": {""}}, []string{pa, pd}},
		{"POST", "/portal/containers/" + cid + "/versions/1/submit", nil, []string{pa, pd}},
		{"GET", "/my", nil, []string{cu}},
		{"GET", "/my/history", nil, []string{cu}},
		{"GET", "/my/reports", nil, []string{cu}},
		{"GET", "/my/transactions", nil, []string{cu}},
		{"GET", fmt.Sprintf("/my/consents/%d", k.ID), nil, []string{cu}},
		{"GET", fmt.Sprintf("/my/consents/%d/revoke", k.ID), nil, []string{cu}},
		{"GET", "/my/reports/999/download", nil, []string{cu}},
		{"POST", fmt.Sprintf("/my/consents/%d/deny", k.ID), nil, []string{cu}},
		{"POST", fmt.Sprintf("/my/consents/%d/grant", k.ID), nil, []string{cu}},
		{"GET", "/api/v1/containers", nil, []string{api}},
		{"GET", "/api/v1/containers/" + cid, nil, []string{api}},
		{"GET", "/api/v1/consents", nil, []string{api}},
		{"POST", "/api/v1/containers", nil, []string{api}},
		{"POST", "/api/v1/consent-requests", nil, []string{api}},
	}
	for _, tc := range cases {
		for _, role := range all {
			c := clients[role]
			var res *apptest.Response
			switch {
			case tc.method == "GET":
				res = c.Get(tc.path)
			case role == api:
				res = c.SendJSON("POST", tc.path, `{}`)
			default:
				res = c.PostForm(tc.path, tc.form)
			}
			want := slices.Contains(tc.allowed, role)
			// A bearer token counts only on the API: elsewhere its holder is
			// anonymous and sent to a sign-in page.
			toLogin := res.Status == http.StatusSeeOther && strings.Contains(res.Header.Get("Location"), "/login")
			got := res.Status != http.StatusForbidden && res.Status != http.StatusUnauthorized && !toLogin
			if got != want || res.Status >= 500 {
				t.Errorf("%s %s as %s: %d (allowed %v)", tc.method, tc.path, role, res.Status, want)
			}
		}
		if len(tc.path) > 7 && tc.path[:7] == "/api/v1" {
			anon := tt.Client(t)
			var res *apptest.Response
			if tc.method == "GET" {
				res = anon.Get(tc.path)
			} else {
				res = anon.SendJSON("POST", tc.path, `{}`)
			}
			if res.Status != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s: %d", tc.method, tc.path, res.Status)
			}
		}
	}
}
