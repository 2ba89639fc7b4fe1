package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPTransport sends over SMTP (github.com/wneessen/go-mail), one
// connection per e-mail: a text/plain message, or multipart/mixed when the
// e-mail has attachments. Port 465 uses implicit TLS; other ports use
// STARTTLS, which is mandatory when credentials are configured (a password
// never crosses the network in clear) unless the server is on loopback, and
// opportunistic otherwise.
type SMTPTransport struct {
	Host     string
	Port     int
	User     string
	Password string
	From     string // "Name <address>"
	Timeout  time.Duration
}

func (t *SMTPTransport) Name() string {
	return "smtp " + net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// MessageID is the stable Message-ID of an outbox e-mail: a copy sent again
// (the at-least-once edge) carries the same id.
func MessageID(e *Email, from string) string {
	domain := "cardata.local"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndex(a.Address, "@"); i >= 0 && i < len(a.Address)-1 {
			domain = a.Address[i+1:]
		}
	}
	return fmt.Sprintf("outbox-%d.%d@%s", e.ID, e.CreatedAt.Unix(), domain)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers e; SMTP 5xx rejections are permanent errors.
func (t *SMTPTransport) Send(ctx context.Context, e *Email) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var mu sync.Mutex
	var conn net.Conn
	closed := false
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
			return nil, context.Canceled
		}
		conn = c
		return c, nil
	}
	// go-mail honours ctx only while dialing; closing the connection when
	// ctx ends makes a shutdown interrupt a hanging send too.
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		if conn != nil {
			conn.Close()
		}
	})
	defer stop()

	opts := []gomail.Option{gomail.WithPort(t.Port), gomail.WithTimeout(timeout), gomail.WithDialContextFunc(dial)}
	switch {
	case t.Port == 465:
		opts = append(opts, gomail.WithSSL())
	case t.User != "" && !isLoopback(t.Host):
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if t.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(t.User), gomail.WithPassword(t.Password))
	}
	client, err := gomail.NewClient(t.Host, opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	m := gomail.NewMsg()
	if err := m.From(t.From); err != nil {
		return fmt.Errorf("SMTP_FROM %q: %w", t.From, err)
	}
	if err := m.To(e.ToAddr); err != nil {
		return Permanent(fmt.Errorf("recipient %q: %w", e.ToAddr, err))
	}
	m.Subject(e.Subject)
	m.SetMessageIDWithValue(MessageID(e, t.From))
	m.SetDate()
	m.SetGenHeader("X-Cardata-Kind", e.Kind)
	m.SetBodyString(gomail.TypeTextPlain, e.BodyText)
	// With attachments go-mail writes multipart/mixed: the text part, then
	// each file base64-encoded with Content-Disposition: attachment; filename.
	for _, a := range e.Attachments {
		m.AttachReadSeeker(a.Filename, bytes.NewReader(a.Content), gomail.WithFileContentType(gomail.ContentType(a.ContentType)))
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err == nil {
		err = client.SendWithSMTPClient(sc, m)
		// Once the server accepted the message, a failing QUIT must not
		// turn the send into a failure (it would be sent again).
		_ = client.CloseWithSMTPClient(sc)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return Permanent(err)
	}
	return err
}
