package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"cardata/app/apptest"
	"cardata/onboarding"
	"cardata/policies"
)

// Every onboarding page from both sides: the allowed roles get through,
// every other staff role and every provider role gets 403.
func TestOnboardingRoleMatrix(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	for _, r := range policies.StaffRoles {
		tt.MustCreateStaff(t, r+"@test.local", r)
	}
	p := mustActiveProvider(t, tt, "Matrix AG", "DE", "DE136695976")
	docs, _ := onboardingFor(tt).FindDocuments(tt.Ctx, p.Provider.ID)
	id := fmt.Sprint(p.Provider.ID)
	svc := onboardingFor(tt)
	dev, _ := svc.InviteProviderUser(obProviderCtx(p.Admin), p.Provider.ID, onboarding.Invite{Email: "dev@matrix.example", Name: "Dev", Role: onboarding.RoleProviderDeveloper})
	fin, _ := svc.InviteProviderUser(obProviderCtx(p.Admin), p.Provider.ID, onboarding.Invite{Email: "fin@matrix.example", Name: "Fin", Role: onboarding.RoleProviderFinance})
	for _, inv := range []*onboarding.Invitation{dev, fin} {
		token := inv.Link[len(tt.App.Cfg.PublicURL+"/portal/invitations/"):]
		if _, err := svc.AcceptInvitation(tt.Ctx, token, providerPassword); err != nil {
			t.Fatal(err)
		}
	}
	clients := map[string]*apptest.Client{}
	for _, r := range policies.StaffRoles {
		clients[r] = tt.LoginStaff(t, r+"@test.local")
	}
	clients["provider_admin"] = loginProvider(t, tt, p.Admin.Email, providerPassword)
	clients["provider_developer"] = loginProvider(t, tt, "dev@matrix.example", providerPassword)
	clients["provider_finance"] = loginProvider(t, tt, "fin@matrix.example", providerPassword)
	all := []string{"partner_manager", "finance", "support", "admin", "auditor", "provider_admin", "provider_developer", "provider_finance"}

	pm, au, su, fi := "partner_manager", "auditor", "support", "finance"
	pa, pd, pf := "provider_admin", "provider_developer", "provider_finance"
	cases := []struct {
		method, path string
		form         url.Values
		allowed      []string
	}{
		{"GET", "/admin/review-queue", nil, []string{pm, au}},
		{"GET", "/admin/providers", nil, []string{pm, au, su, fi}},
		{"GET", "/admin/providers/" + id, nil, []string{pm, au, su, fi}},
		{"GET", fmt.Sprintf("/admin/providers/%s/documents/%d", id, docs[0].ID), nil, []string{pm, au}},
		{"GET", "/admin/markets", nil, []string{pm, au}},
		{"GET", "/admin/coverage", nil, []string{pm, au}},
		{"GET", "/admin/coverage/DE", nil, []string{pm, au}},
		{"GET", "/admin/coverage/export.csv", nil, []string{pm, au}},
		{"POST", "/admin/markets/MT", url.Values{"active": {"true"}}, []string{pm}},
		// A refused transition still proves the role got through (409, not 403).
		{"POST", "/admin/providers/" + id + "/transitions/claim", nil, []string{pm}},
		{"GET", "/portal", nil, []string{pa, pd, pf}},
		{"GET", "/portal/application", nil, []string{pa, pd, pf}},
		{"GET", "/portal/markets", nil, []string{pa, pd, pf}},
		{"GET", "/portal/clients", nil, []string{pa, pd}},
		{"GET", "/portal/users", nil, []string{pa}},
		{"POST", "/portal/markets", url.Values{"markets": {"MT"}}, []string{pa}},
		{"POST", "/portal/application/answer", url.Values{"answer": {"x"}}, []string{pa}},
	}
	for _, tc := range cases {
		for _, role := range all {
			var res *apptest.Response
			if tc.method == "GET" {
				res = clients[role].Get(tc.path)
			} else {
				res = clients[role].PostForm(tc.path, tc.form)
			}
			want := obContains(tc.allowed, role)
			if got := res.Status != http.StatusForbidden; got != want {
				t.Errorf("%s %s as %s: %d (allowed %v)", tc.method, tc.path, role, res.Status, want)
			}
			if want && res.Status >= 500 {
				t.Errorf("%s %s as %s: %d", tc.method, tc.path, role, res.Status)
			}
		}
	}
}

func obContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
