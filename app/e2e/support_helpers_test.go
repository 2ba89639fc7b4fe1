package e2e

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/policies"
)

// supportFor returns a support service on the test app's database; now,
// when set, fixes its clock.
func supportFor(tt *apptest.T, now func() time.Time) *support.Service {
	return &support.Service{DB: tt.DB, Clock: support.NewClock(tt.App.Cfg.BillingTimezone), PublicURL: tt.App.Cfg.PublicURL, Now: now}
}

func asProvider(r *onboarding.Registered) context.Context {
	return policies.WithPrincipal(context.Background(), r.Admin.Principal(0))
}

// part is one field of a multipart form; a file when filename is set.
type part struct {
	name, value, filename string
	data                  []byte
}

// postMultipart posts a browser-like multipart form (CSRF token included).
func postMultipart(t *testing.T, c *apptest.Client, path string, parts ...part) *apptest.Response {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	parts = append(parts, part{name: "_csrf", value: c.CSRF()})
	for _, p := range parts {
		if p.filename != "" || p.data != nil {
			fw, err := w.CreateFormFile(p.name, p.filename)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(p.data)
			continue
		}
		if err := w.WriteField(p.name, p.value); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	req := httptest.NewRequest(http.MethodPost, path, &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.Do(req)
}

// apiBearer gets an access token for a new API client of r through the
// real /oauth/token endpoint and returns a client that sends it.
func apiBearer(t *testing.T, tt *apptest.T, r *onboarding.Registered) *apptest.Client {
	t.Helper()
	ns, err := onboardingFor(tt).CreateAPIClient(tt.Ctx, r.Provider.ID, "support tests")
	if err != nil {
		t.Fatal(err)
	}
	c := tt.Client(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {ns.Client.ClientID}, "client_secret": {ns.Secret}}
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res := c.Do(req)
	if res.Status != http.StatusOK {
		t.Fatalf("token: %d %s", res.Status, res.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	res.JSON(t, &tok)
	c.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return c
}

// outbox returns every e-mail written so far.
func outbox(t *testing.T, tt *apptest.T) []jobs.Email {
	t.Helper()
	var out []jobs.Email
	if err := tt.DB.Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

func supMustContain(t *testing.T, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Fatalf("page lacks %q:\n%s", p, body)
		}
	}
}

func supMustNotContain(t *testing.T, where, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(body, p) {
			t.Fatalf("%s shows %q:\n%s", where, p, body)
		}
	}
}
