package webhooks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
)

// A failed attempt is shown to the provider (portal and API) and kept in
// webhook_deliveries and webhook_attempts. Go's error text names what we
// resolved and dialled ("dial tcp 10.0.0.5:443: connect: connection
// refused", "lookup x on 127.0.0.53:53: no such host", the address the SSRF
// check refused): our network layout and resolver, which a provider could
// map by registering endpoints. So only a stable category is stored and
// shown; the full error goes to the server log with the delivery's id.
const (
	FailureRefused       = "connection refused"
	FailureReset         = "connection reset"
	FailureClosed        = "connection closed before an answer"
	FailureUnreachable   = "host unreachable"
	FailureDNS           = "DNS lookup failed"
	FailureNotAllowed    = "destination not allowed"
	FailureTimeout       = "timeout"
	FailureTLS           = "TLS error"
	FailureTLSCert       = "TLS certificate not valid"
	FailureInvalidURL    = "invalid URL"
	FailureSigning       = "signing failed"
	FailureConnectFailed = "connection failed"
)

// notAllowedError is the SSRF check's refusal of a dialled address.
type notAllowedError struct{ msg string }

func (e *notAllowedError) Error() string { return e.msg }

// failureCategory is the provider-facing category of a failed request.
func failureCategory(err error) string {
	var (
		notAllowed *notAllowedError
		dnsErr     *net.DNSError
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalid    x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &notAllowed):
		return FailureNotAllowed
	case errors.As(err, &dnsErr):
		return FailureDNS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FailureTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailureRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return FailureReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return FailureUnreachable
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid):
		return FailureTLSCert
	case errors.As(err, &recordErr), errors.As(err, &alertErr):
		return FailureTLS
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailureClosed
	}
	return FailureConnectFailed
}
