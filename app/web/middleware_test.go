package web

import (
	"net/netip"
	"testing"
)

func TestClientAddrBehindProxies(t *testing.T) {
	proxies := Proxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxies configured: the peer", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer: its header is ignored", "203.0.113.9", nil, "203.0.113.9"},
		{"trusted peer without header", "10.1.2.3", nil, "10.1.2.3"},
		{"trusted peer: the address it saw", "10.1.2.3", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a client's own entries at the left are not believed", "10.1.2.3", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops are skipped", "10.1.2.3", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines read from the last", "10.1.2.3", []string{"1.1.1.1", "198.51.100.1, 10.0.0.5"}, "198.51.100.1"},
		{"garbage stops at the last good hop", "10.1.2.3", []string{"198.51.100.1, nonsense"}, "10.1.2.3"},
		{"IPv6 proxy and client", "::1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"only trusted hops: the left-most of them", "10.1.2.3", []string{"10.0.0.1"}, "10.0.0.1"},
	}
	for _, c := range cases {
		none := Proxies(nil)
		p := proxies
		if c.name == "no proxies configured: the peer" {
			p = none
		}
		if got := p.ClientAddr(c.peer, c.xff); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
