package e2e

import (
	"net/http"
	"net/netip"
	"net/url"
	"testing"

	"cardata/app/apptest"
	"cardata/app/config"
	"cardata/policies"
)

// Behind a trusted reverse proxy (TRUSTED_PROXIES) a session records the
// address the proxy saw, on the staff pages and on the provider portal
// alike (the portal's password sign-in recorded the proxy's own address).
func TestSessionsRecordTheClientAddressBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t, func(c *config.Config) {
		// In-process requests come from 0.0.0.0: it stands for the proxy.
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}
	})
	tt.MustCreateStaff(t, "ada@proxy.test", policies.RoleAdmin)
	p := mustActiveProvider(t, tt, "Proxy Mobility GmbH", "DE", "DE811907980")
	for _, sign := range []struct {
		path, email, password, addr string
	}{
		{"/admin/login", "ada@proxy.test", apptest.Password, "203.0.113.21"},
		{"/portal/login", p.Admin.Email, providerPassword, "203.0.113.22"},
	} {
		c := tt.Client(t)
		c.Header = http.Header{"X-Forwarded-For": {sign.addr}}
		res := c.PostForm(sign.path, url.Values{"email": {sign.email}, "password": {sign.password}})
		if res.Status != http.StatusSeeOther {
			t.Fatalf("%s: %d %s", sign.path, res.Status, res.Body)
		}
		var n int64
		tt.DB.Raw("SELECT count(*) FROM sessions WHERE client_addr = ?", sign.addr).Scan(&n)
		if n != 1 {
			var seen []string
			tt.DB.Raw("SELECT client_addr FROM sessions").Scan(&seen)
			t.Errorf("%s behind the proxy: %d sessions from %s; sessions' addresses: %v", sign.path, n, sign.addr, seen)
		}
	}
}
