// Package smtptest is a small SMTP server for tests: it listens on a
// loopback port, accepts plain ESMTP (no TLS, no AUTH) and records every
// message it accepted. Hooks let a test reject recipients or hold, fail or
// slow down the end of DATA.
package smtptest

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Message is one accepted message.
type Message struct {
	From      string
	To        []string
	Data      string // the raw message (headers and body)
	Subject   string
	MessageID string
	Body      string // the text: the whole body, or the first text/plain part of a multipart message

	// Attachments are the parts of a multipart message with a
	// Content-Disposition "attachment", decoded.
	Attachments []Attachment
}

// Attachment is one attached file of an accepted message.
type Attachment struct {
	Filename    string // from Content-Disposition (RFC 2047 words decoded)
	ContentType string // media type without parameters
	Encoding    string // Content-Transfer-Encoding as sent
	Content     []byte
}

// Server is a running test server.
type Server struct {
	Host string
	Port int

	// OnRcpt decides a RCPT TO (default 250). Return e.g. 550 to reject.
	OnRcpt func(rcpt string) (int, string)
	// OnData decides the end of DATA (default 250); it may block (to hold
	// a send in flight) and is called concurrently. Only messages answered
	// with 250 are recorded.
	OnData func(m Message) (int, string)

	ln    net.Listener
	mu    sync.Mutex
	msgs  []Message
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// Start starts a server that stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Listen starts a server outside a test (the fault soak); Close stops it.
func Listen() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &Server{Host: "127.0.0.1", Port: addr.Port, ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Close stops the server and drops open connections.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Messages returns the accepted messages.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count is the number of accepted messages.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.serve(c)
		}()
	}
}

func addrArg(line, prefix string) string {
	rest := strings.TrimSpace(line[len(prefix):])
	if i := strings.Index(rest, ">"); strings.HasPrefix(rest, "<") && i > 0 {
		return rest[1:i]
	}
	return strings.Fields(rest + " ")[0]
}

func (s *Server) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) bool {
		fmt.Fprintf(w, format+"\r\n", args...)
		return w.Flush() == nil
	}
	if !reply("220 smtptest ESMTP ready") {
		return
	}
	var cur Message
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.Fields(line + " ")[0])
		switch verb {
		case "EHLO":
			reply("250-smtptest\r\n250-8BITMIME\r\n250 SIZE 10485760")
		case "HELO":
			reply("250 smtptest")
		case "MAIL":
			cur = Message{From: addrArg(line, "MAIL FROM:")}
			reply("250 2.1.0 ok")
		case "RCPT":
			rcpt := addrArg(line, "RCPT TO:")
			code, text := 250, "2.1.5 ok"
			if s.OnRcpt != nil {
				code, text = s.OnRcpt(rcpt)
			}
			if code == 250 {
				cur.To = append(cur.To, rcpt)
			}
			reply("%d %s", code, text)
		case "DATA":
			if len(cur.To) == 0 {
				reply("503 5.5.1 no valid recipients")
				continue
			}
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				l = strings.TrimRight(l, "\r\n")
				if l == "." {
					break
				}
				l = strings.TrimPrefix(l, ".") // dot-unstuffing
				b.WriteString(l + "\n")
			}
			cur.Data = b.String()
			if pm, err := mail.ReadMessage(strings.NewReader(cur.Data)); err == nil {
				dec := new(mime.WordDecoder)
				subj, derr := dec.DecodeHeader(pm.Header.Get("Subject"))
				if derr != nil {
					subj = pm.Header.Get("Subject")
				}
				cur.Subject = subj
				cur.MessageID = strings.Trim(pm.Header.Get("Message-Id"), "<>")
				cur.Body, cur.Attachments = readBody(textproto.MIMEHeader(pm.Header), pm.Body)
			}
			code, text := 250, "2.0.0 queued"
			if s.OnData != nil {
				code, text = s.OnData(cur)
			}
			if code == 250 {
				if !reply("%d %s", code, text) {
					return // the client went away before hearing the answer
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, cur)
				s.mu.Unlock()
			} else {
				reply("%d %s", code, text)
			}
			cur = Message{}
		case "RSET":
			cur = Message{}
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognised: " + strconv.Quote(verb))
		}
	}
}

// decode undoes a transfer encoding (multipart.Reader already undoes
// quoted-printable in parts and drops the header).
func decode(h textproto.MIMEHeader, r io.Reader) io.Reader {
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	}
	return r
}

// readBody returns the text of a message or part with header h and its
// attachments, descending into nested multiparts.
func readBody(h textproto.MIMEHeader, r io.Reader) (string, []Attachment) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(decode(h, r))
		return string(b), nil
	}
	var text string
	var atts []Attachment
	mr := multipart.NewReader(r, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return text, atts
		}
		disp, dparams, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if disp == "attachment" {
			name := dparams["filename"]
			if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
				name = dec
			}
			ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			b, _ := io.ReadAll(decode(p.Header, p))
			atts = append(atts, Attachment{Filename: name, ContentType: ct, Encoding: p.Header.Get("Content-Transfer-Encoding"), Content: b})
			continue
		}
		t, inner := readBody(p.Header, p)
		if text == "" {
			text = t
		}
		atts = append(atts, inner...)
	}
}
