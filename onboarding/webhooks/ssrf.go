package webhooks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"cardata/policies/errs"
)

// Receivers are on the public internet. A provider must not be able to
// point our push worker at addresses behind our firewall (server-side
// request forgery): private networks, link-local addresses (the cloud
// metadata service at 169.254.169.254), carrier-grade NAT, unique-local
// IPv6, multicast and unspecified addresses are refused, both when an
// endpoint is registered with an address literal and when a host name
// resolves to one at send time (checked on the connection actually
// dialled, so a DNS answer that changes between check and use does not
// help). Loopback receivers are for development only: allowed when
// Options.AllowLoopback is set or cardata itself runs on a loopback
// address (PUBLIC_URL), as under `make run`.

var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// blockedIP reports an address a push may never reach, loopback aside.
func blockedIP(ip net.IP) bool {
	return ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || cgnat.Contains(ip)
}

// loopbackOK reports whether loopback receivers are accepted.
func (s *Service) loopbackOK() bool {
	if s.Opt.AllowLoopback || s.PublicURL == "" {
		return true
	}
	u, err := url.Parse(s.PublicURL)
	return err == nil && isLoopback(u.Hostname())
}

// checkTarget refuses a URL whose host is an address literal we never
// send to (registration; names are checked when dialling).
func (s *Service) checkTarget(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil // CheckURL has said why
	}
	host := u.Hostname()
	if isLoopback(host) {
		if !s.loopbackOK() {
			var v errs.Validation
			v.Add("url", "url_not_allowed", "loopback receivers are for development only; use a public https URL")
			return v.Err()
		}
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && blockedIP(ip) {
		var v errs.Validation
		v.Add("url", "url_not_allowed", "%s is a private or reserved address; pushes go to public addresses only", host)
		return v.Err()
	}
	return nil
}

// dialControl refuses connections to blocked addresses.
func (s *Service) dialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return &notAllowedError{fmt.Sprintf("receiver address %q is not an IP address", host)}
	}
	if ip.IsLoopback() {
		if s.loopbackOK() {
			return nil
		}
		return &notAllowedError{fmt.Sprintf("receiver resolves to loopback address %s: not allowed outside development", ip)}
	}
	if blockedIP(ip) {
		return &notAllowedError{fmt.Sprintf("receiver resolves to private or reserved address %s: not allowed", ip)}
	}
	return nil
}

// transport is the push worker's HTTP transport with the address check.
func (s *Service) transport() http.RoundTripper {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: s.dialControl}
	return &http.Transport{
		Proxy: nil, // a proxy would dial for us, past the check
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: s.opt().Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
}

// LoopbackOK reports whether loopback addresses are accepted as targets
// (development: Options.AllowLoopback, or cardata itself on loopback).
func (s *Service) LoopbackOK() bool { return s.loopbackOK() }

// PublicClient is an HTTP client that reaches the same addresses as the
// push worker and no others (no private, link-local or reserved networks,
// loopback only in development; checked on the connection dialled), for
// other calls to URLs a provider chose: its company identity provider's
// discovery document, keys and token endpoint.
func (s *Service) PublicClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: s.dialControl}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy: nil, // a proxy would dial for us, past the check
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}}
}
