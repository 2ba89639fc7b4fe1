package config

import (
	"slices"
	"strings"
	"testing"
)

// STAFF_TOTP_REQUIRED_ROLES: administrators by default, a list of known
// roles, or none.
func TestStaffTOTPRequiredRoles(t *testing.T) {
	t.Parallel()
	c, err := load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.StaffTOTPRequiredRoles, []string{"admin"}) {
		t.Fatalf("default: %v, want [admin]", c.StaffTOTPRequiredRoles)
	}
	for v, want := range map[string][]string{
		"admin, finance": {"admin", "finance"},
		"none":           {},
		"NONE":           {},
		"":               {},
		"auditor":        {"auditor"},
	} {
		c, err := load(map[string]string{"STAFF_TOTP_REQUIRED_ROLES": v})
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if !slices.Equal(c.StaffTOTPRequiredRoles, want) {
			t.Errorf("%q: %v, want %v", v, c.StaffTOTPRequiredRoles, want)
		}
	}
	if _, err := load(map[string]string{"STAFF_TOTP_REQUIRED_ROLES": "admin,root"}); err == nil ||
		!strings.Contains(err.Error(), "STAFF_TOTP_REQUIRED_ROLES:") || !strings.Contains(err.Error(), `"root"`) {
		t.Fatalf("unknown role: %v", err)
	}
}

// LOCAL_STAFF_SIGNIN=off needs a company identity provider (or the
// development one); on is the default.
func TestLocalStaffSignIn(t *testing.T) {
	t.Parallel()
	c, err := load(map[string]string{})
	if err != nil || !c.LocalStaffSignIn {
		t.Fatalf("default: %v %v, want on", c.LocalStaffSignIn, err)
	}
	if _, err := load(map[string]string{"LOCAL_STAFF_SIGNIN": "off"}); err == nil || !strings.Contains(err.Error(), "LOCAL_STAFF_SIGNIN:") {
		t.Fatalf("off without a provider: %v", err)
	}
	if _, err := load(map[string]string{"LOCAL_STAFF_SIGNIN": "maybe"}); err == nil || !strings.Contains(err.Error(), "LOCAL_STAFF_SIGNIN:") {
		t.Fatalf("not a switch: %v", err)
	}
	for _, env := range []map[string]string{
		{"LOCAL_STAFF_SIGNIN": "off", "DEV_IDP": "1"},
		{"LOCAL_STAFF_SIGNIN": "false", "STAFF_OIDC_ISSUER": "https://idp.example", "STAFF_OIDC_CLIENT_ID": "c", "STAFF_OIDC_ROLE_MAP": "a=admin"},
	} {
		c, err := load(env)
		if err != nil || c.LocalStaffSignIn {
			t.Errorf("%v: %v %v, want off", env, c.LocalStaffSignIn, err)
		}
	}
	if c, err := load(map[string]string{"LOCAL_STAFF_SIGNIN": "on"}); err != nil || !c.LocalStaffSignIn {
		t.Fatalf("on: %v %v", c.LocalStaffSignIn, err)
	}
}
