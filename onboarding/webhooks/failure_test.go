package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cardata/app/db/dbtest"
	"cardata/policies"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A failed push shows the provider a stable category; the addresses we
// resolved and dialled, and our resolver, appear only in the server log.
func TestDeliveryErrorsShowCategoriesNotAddresses(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	var provider int64
	if err := gdb.Raw(`INSERT INTO providers (legal_name, legal_form, street, postal_code, city, country, vat_id, register_number,
		contact_name, contact_email, billing_email, intended_services, terms_version, terms_accepted_at, terms_client_addr, status)
		SELECT 'Failing GmbH', 'GmbH', 'Weg 1', '80331', 'München', 'DE', 'DE129273398', 'HRB 1', 'Sam', 'sam@x.example', 'sam@x.example',
		       'tests', version, now(), '127.0.0.1', 'active' FROM terms_versions ORDER BY version LIMIT 1 RETURNING id`).Scan(&provider).Error; err != nil || provider == 0 {
		t.Fatalf("provider: %v", err)
	}
	ctx := policies.WithPrincipal(context.Background(), policies.System("test"))
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// A generous attempt timeout: a slow resolver must still end in its own
	// category, not in "timeout".
	opt := Options{Timeout: 2 * time.Minute}
	dev := &Service{DB: gdb, Log: log, PublicURL: "http://127.0.0.1:8080", Opt: opt}
	prod := &Service{DB: gdb, Log: log, PublicURL: "https://cardata.example", Opt: opt}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cases := []struct {
		name, url, rewrite string // rewrite: the URL set in the database after registration
		s                  *Service
		want               string
		hidden             []string // must not reach the provider
		logged             string   // the detail the log keeps
	}{
		{name: "refused", s: dev, url: "http://127.0.0.1:" + itoa(closedPort) + "/hook", want: FailureRefused,
			hidden: []string{"127.0.0.1", "dial", itoa(closedPort)}, logged: "127.0.0.1:" + itoa(closedPort)},
		{name: "unresolvable", s: prod, url: "https://cardata-receiver.invalid/hook", want: FailureDNS,
			hidden: []string{"lookup cardata", ":53", "no such host", "cardata-receiver.invalid"}, logged: "cardata-receiver.invalid"},
		// Registered while the name pointed elsewhere, or as a literal before
		// the registration check: the dial check refuses it.
		{name: "private", s: prod, url: "https://hooks.example.com/hook", rewrite: "https://10.0.0.5/hook", want: FailureNotAllowed,
			hidden: []string{"10.0.0.5", "private", "dial"}, logged: "10.0.0.5"},
		{name: "loopback by name", s: prod, url: "https://hooks.example.net/hook", rewrite: "https://localhost:" + itoa(closedPort) + "/hook",
			want: FailureNotAllowed, hidden: []string{"127.0.0.1", "loopback"}, logged: "loopback address 127.0.0.1"},
	}
	for _, tc := range cases {
		e, err := tc.s.CreateEndpoint(ctx, provider, NewEndpoint{URL: tc.url, EventTypes: []string{"consent.granted"}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.rewrite != "" {
			if err := gdb.Exec(`UPDATE webhook_endpoints SET url = ? WHERE id = ?`, tc.rewrite, e.ID).Error; err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tc.s.SendTest(ctx, provider, e.ID); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n, err := tc.s.DeliverDue(ctx); err != nil || n != 1 {
			t.Fatalf("%s: delivered %d: %v", tc.name, n, err)
		}
		// What the portal and the API show.
		list, _, err := tc.s.FindDeliveries(ctx, provider, DeliveryFilter{EndpointID: e.ID})
		if err != nil || len(list) != 1 || len(list[0].Tries) != 1 {
			t.Fatalf("%s: deliveries %+v: %v", tc.name, list, err)
		}
		d := list[0]
		if d.LastError != tc.want || d.Tries[0].Error != tc.want {
			t.Errorf("%s: shown %q / %q, want %q", tc.name, d.LastError, d.Tries[0].Error, tc.want)
		}
		raw, _ := json.Marshal(d)
		// Timestamps are not what is checked ("04:53:54" contains ":53"):
		// the text the provider reads must not name an address or port.
		shown := timestamps.ReplaceAllString(string(raw), `"<time>"`)
		for _, h := range tc.hidden {
			if strings.Contains(shown, h) {
				t.Errorf("%s: the provider sees %q: %s", tc.name, h, shown)
			}
		}
		if !strings.Contains(logs.String(), tc.logged) {
			t.Errorf("%s: the log lacks the detail %q:\n%s", tc.name, tc.logged, logs.String())
		}
	}
}

var timestamps = regexp.MustCompile(`"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})"`)

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
