package webhooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cardata/policies/errs"
)

// In production (a public PUBLIC_URL) receivers on loopback, private or
// reserved addresses are refused at registration and when dialling; in
// development loopback receivers work.
func TestReceiversArePublicOutsideDevelopment(t *testing.T) {
	prod := &Service{PublicURL: "https://cardata.example"}
	dev := &Service{PublicURL: "http://127.0.0.1:8080"}
	for _, u := range []string{"https://10.1.2.3/hook", "https://169.254.169.254/latest/meta-data", "https://192.168.0.10/x",
		"https://100.64.1.1/x", "https://[fd00::1]/x", "https://[fe80::1]/x", "https://0.0.0.0/x", "http://127.0.0.1:9/x", "http://localhost/x"} {
		if err := prod.checkTarget(u); errs.FieldMap(err)["url"] == "" {
			t.Errorf("production accepted %s", u)
		}
	}
	for _, u := range []string{"https://hooks.example.com/x", "https://93.184.216.34/x"} {
		if err := prod.checkTarget(u); err != nil {
			t.Errorf("production refused %s: %v", u, err)
		}
	}
	if err := dev.checkTarget("http://127.0.0.1:9/x"); err != nil {
		t.Errorf("development refused a loopback receiver: %v", err)
	}
	if err := dev.checkTarget("https://10.1.2.3/x"); err == nil {
		t.Error("development accepted a private address")
	}

	// The dial check holds for names too: localhost resolves to loopback.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	get := func(s *Service, u string) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
		res, err := s.client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		return err
	}
	if err := get(prod, byName); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("production dialled a loopback receiver: %v", err)
	}
	if err := get(dev, byName); err != nil {
		t.Fatalf("development could not reach its loopback receiver: %v", err)
	}
	if err := prod.dialControl("tcp", "10.0.0.7:443", nil); err == nil {
		t.Fatal("dial to a private address allowed")
	}
	if err := prod.dialControl("tcp", "93.184.216.34:443", nil); err != nil {
		t.Fatalf("dial to a public address refused: %v", err)
	}
}
