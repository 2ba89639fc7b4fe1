package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestOIDCSettings(t *testing.T) {
	t.Parallel()
	c, err := load(map[string]string{"STAFF_OIDC_ISSUER": "https://login.example/realms/corp", "STAFF_OIDC_CLIENT_ID": "cardata",
		"STAFF_OIDC_CLIENT_SECRET": "s3cret", "STAFF_OIDC_ROLE_CLAIM": "realm_access.roles",
		"STAFF_OIDC_ROLE_MAP": "cardata-finance=finance; cardata-leads=support,cardata-leads=auditor,cn=pm,ou=x=partner_manager"})
	if err != nil {
		t.Fatal(err)
	}
	o := c.StaffOIDC
	if !o.Enabled() || o.ClientSecret != "s3cret" || o.RoleClaim != "realm_access.roles" || !slices.Equal(o.Scopes, []string{"profile", "email"}) {
		t.Fatalf("staff OIDC: %+v", o)
	}
	if !slices.Equal(o.RoleMap["cardata-leads"], []string{"support", "auditor"}) || !slices.Equal(o.RoleMap["cardata-finance"], []string{"finance"}) {
		t.Fatalf("role map: %v", o.RoleMap)
	}
	if c.CustomerOIDC.Enabled() {
		t.Fatal("customer OIDC on without an issuer")
	}
	if strings.Contains(fmt.Sprint(c.Redacted()), "s3cret") {
		t.Fatal("the client secret is in the redacted config")
	}
}

func TestOIDCRefusals(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"STAFF_OIDC_CLIENT_ID":    {"STAFF_OIDC_ISSUER": "https://idp.example", "STAFF_OIDC_ROLE_MAP": "a=admin"},
		"STAFF_OIDC_ROLE_MAP":     {"STAFF_OIDC_ISSUER": "https://idp.example", "STAFF_OIDC_CLIENT_ID": "c"},
		"STAFF_OIDC_ISSUER":       {"STAFF_OIDC_ISSUER": "idp.example", "STAFF_OIDC_CLIENT_ID": "c", "STAFF_OIDC_ROLE_MAP": "a=admin"},
		"CUSTOMER_OIDC_CLIENT_ID": {"CUSTOMER_OIDC_ISSUER": "https://id.example"},
		"DEV_IDP":                 {"DEV_IDP": "1", "PUBLIC_URL": "https://cardata.example", "SECRETS_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
		"DEV_IDP_ADDR":            {"DEV_IDP": "1", "DEV_IDP_ADDR": "0.0.0.0:8081"},
	}
	for name, env := range cases {
		if _, err := load(env); err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad, err := ParseRoleMap("finance")
	if err == nil {
		t.Fatalf("a mapping without '=': %v", bad)
	}
}

func TestDevIdPPointsBothProvidersAtItself(t *testing.T) {
	t.Parallel()
	c, err := load(map[string]string{"DEV_IDP": "1", "DEV_IDP_ADDR": "127.0.0.1:9181"})
	if err != nil {
		t.Fatal(err)
	}
	if c.StaffOIDC.Issuer != "http://127.0.0.1:9181/oidc" || c.CustomerOIDC.Issuer != "http://127.0.0.1:9182/oidc" ||
		len(c.StaffOIDC.RoleMap) != 5 || c.StaffOIDC.RoleClaim != "groups" {
		t.Fatalf("dev providers: %+v %+v", c.StaffOIDC, c.CustomerOIDC)
	}
}
