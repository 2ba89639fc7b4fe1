package e2e

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"cardata/app/apptest"
	"cardata/app/demo"
	"cardata/onboarding"
	"cardata/policies"
)

func TestPartnerManagerReviewsThroughTheStaffPages(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	tt.MustCreateStaff(t, "fiona@test.local", policies.RoleFinance)
	r := mustRegisterProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	id := fmt.Sprint(r.Provider.ID)
	base := "/admin/providers/" + id
	pm := tt.LoginStaff(t, "pm@test.local")

	res := pm.Get("/admin/review-queue")
	obMustContain(t, res.Body, "Alpen Versicherung AG", `id="claim-`+id+`"`)
	if res = pm.PostForm(base+"/transitions/claim", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("claim: %d %s", res.Status, res.Body)
	}
	// A refused form leads back to the provider's page (post/redirect/get):
	// the browser's address answers GET, with the error.
	res = pm.PostForm(base+"/transitions/request_info", url.Values{"note": {" "}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != base+"#actions" {
		t.Fatalf("empty question: %d %s", res.Status, res.Header.Get("Location"))
	}
	res = pm.Get(base)
	if res.Status != http.StatusOK {
		t.Fatalf("provider page after a refused question: %d", res.Status)
	}
	obMustContain(t, res.Body, "enter the question")
	if res = pm.PostForm(base+"/transitions/request_info", url.Values{"note": {"Who signs for the company?"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("ask: %d %s", res.Status, res.Body)
	}
	if res = pm.PostForm(base+"/transitions/approve", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("approve with open question: %d", res.Status)
	}
	obMustContain(t, pm.Get(base).Body, "cannot approve a provider that is information requested")

	// The provider answers in the portal.
	pc := loginProvider(t, tt, r.Admin.Email, providerPassword)
	obMustContain(t, pc.Get("/portal").Body, "Who signs for the company?", `id="send-answer"`)
	if res = pc.PostForm("/portal/application/answer", url.Values{"answer": {""}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("empty answer: %d", res.Status)
	}
	if res = pc.PostForm("/portal/application/answer", url.Values{"answer": {"Our managing director."}}); res.Status != http.StatusSeeOther {
		t.Fatalf("answer: %d %s", res.Status, res.Body)
	}
	if res = pm.PostForm(base+"/transitions/approve", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", res.Status, res.Body)
	}
	res = pm.Get(base)
	obMustContain(t, res.Body, `id="status">active`, "Who signs for the company?", "Our managing director.", "action-suspend", "action-terminate")
	doc := regexp.MustCompile(`href="(` + base + `/documents/\d+)"`).FindStringSubmatch(res.Body)
	if doc == nil {
		t.Fatal("no document link")
	}
	if got := pm.PostForm(base+"/transitions/publish", nil).Status; got != http.StatusBadRequest {
		t.Fatalf("unknown action: %d", got)
	}
	dl := pm.Get(doc[1])
	if dl.Status != 200 || dl.Header.Get("Content-Type") != "application/pdf" || dl.Body != string(obPDF) ||
		!strings.Contains(dl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", dl.Status, dl.Header)
	}

	// Auditors read, and change nothing.
	auditor := tt.LoginStaff(t, "otto@test.local")
	res = auditor.Get(base)
	if res.Status != 200 || strings.Contains(res.Body, "action-suspend") {
		t.Fatalf("auditor view: %d", res.Status)
	}
	if res = auditor.PostForm(base+"/transitions/suspend", url.Values{"note": {"x"}}); res.Status != http.StatusForbidden {
		t.Fatalf("auditor suspends: %d", res.Status)
	}
	// Support and finance see the provider for tickets and invoices, not its documents or the queue.
	for _, email := range []string{"sam@test.local", "fiona@test.local"} {
		c := tt.LoginStaff(t, email)
		for path, want := range map[string]int{"/admin/providers": 200, base: 200, doc[1]: 403, "/admin/review-queue": 403, "/admin/coverage": 403} {
			if got := c.Get(path).Status; got != want {
				t.Errorf("%s GET %s: %d, want %d", email, path, got, want)
			}
		}
	}
	// A provider user is no staff member.
	if got := pc.Get(base).Status; got != http.StatusForbidden {
		t.Fatalf("provider on staff page: %d", got)
	}
}

func TestProviderListFiltersAndSearch(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	mustRegisterProvider(t, tt, "Bayern Flotte GmbH", "DE", "DE136695976")
	if _, err := onboardingFor(tt).RequestMarkets(obProviderCtx(a.Admin), a.Provider.ID, []string{"IT"}); err != nil {
		t.Fatal(err)
	}
	if err := onboardingFor(tt).DecideMarketAccess(tt.Ctx, a.Provider.ID, "IT", true, ""); err != nil {
		t.Fatal(err)
	}
	pm := tt.LoginStaff(t, "pm@test.local")
	for query, want := range map[string]string{
		"status=active": "Alpen", "status=submitted": "Bayern", "country=DE": "Bayern", "market=IT": "Alpen",
		"q=bayern": "Bayern", "q=ATU+135": "Alpen", "q=DE136": "Bayern",
	} {
		body := pm.Get("/admin/providers?" + query).Body
		other := map[string]string{"Alpen": "Bayern Flotte", "Bayern": "Alpen Versicherung"}[want]
		if !strings.Contains(body, want) || strings.Contains(body, other) {
			t.Errorf("%s: want only %s", query, want)
		}
	}
	if res := pm.Get("/admin/providers?status=bogus&country=CH"); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad filters: %d", res.Status)
	}
}

func TestPortalClientsUsersMarketsAndIsolation(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	svc := onboardingFor(tt)
	a := mustActiveProvider(t, tt, "Provider A AG", "AT", "ATU13585627")
	b := mustActiveProvider(t, tt, "Provider B GmbH", "DE", "DE136695976")
	bClient, err := svc.CreateAPIClient(obProviderCtx(b.Admin), b.Provider.ID, "b-backend")
	if err != nil {
		t.Fatal(err)
	}
	bDev, err := svc.InviteProviderUser(obProviderCtx(b.Admin), b.Provider.ID, onboarding.Invite{Email: "dev@b.example", Name: "B Dev", Role: onboarding.RoleProviderDeveloper})
	if err != nil {
		t.Fatal(err)
	}
	ac := loginProvider(t, tt, a.Admin.Email, providerPassword)

	// API clients: the secret is shown once, then only a hint.
	if res := ac.PostForm("/portal/clients", url.Values{"name": {""}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("nameless client: %d", res.Status)
	}
	res := ac.PostForm("/portal/clients", url.Values{"name": {"backend"}})
	if res.Status != http.StatusCreated || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create client: %d %v", res.Status, res.Header)
	}
	clientID, secret := shownSecret(t, res.Body)
	if _, err := svc.AuthenticateAPIClient(tt.Ctx, clientID, secret); err != nil {
		t.Fatal(err)
	}
	list := ac.Get("/portal/clients").Body
	if strings.Contains(list, secret) || !strings.Contains(list, clientID) {
		t.Fatal("secret shown again, or client missing")
	}
	clients, _ := svc.FindAPIClients(tt.Ctx, a.Provider.ID)
	aClient := fmt.Sprint(clients[0].ID)
	res = ac.PostForm("/portal/clients/"+aClient+"/rotate", url.Values{"overlap_hours": {"1"}})
	_, secret2 := shownSecret(t, res.Body)
	for _, s := range []string{secret, secret2} {
		if _, err := svc.AuthenticateAPIClient(tt.Ctx, clientID, s); err != nil {
			t.Fatalf("during overlap: %v", err)
		}
	}
	if res = ac.PostForm("/portal/clients/"+aClient+"/rotate", url.Values{"overlap_hours": {"999"}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("overlap too long: %d", res.Status)
	}
	if res = ac.PostForm("/portal/clients/"+aClient+"/revoke", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.Status)
	}
	if _, err := svc.AuthenticateAPIClient(tt.Ctx, clientID, secret2); err == nil {
		t.Fatal("revoked client still authenticates")
	}

	// Provider A guesses provider B's ids: nothing is found, nothing changes.
	for _, path := range []string{
		fmt.Sprintf("/portal/clients/%d/revoke", bClient.Client.ID),
		fmt.Sprintf("/portal/clients/%d/rotate", bClient.Client.ID),
		fmt.Sprintf("/portal/users/%d/active", bDev.User.ID),
		fmt.Sprintf("/portal/users/%d/active", b.Admin.ID),
	} {
		if res := ac.PostForm(path, url.Values{"active": {"false"}, "overlap_hours": {"0"}}); res.Status != http.StatusNotFound {
			t.Errorf("A POST %s: %d", path, res.Status)
		}
	}
	for _, path := range []string{"/portal", "/portal/users", "/portal/clients", "/portal/markets"} {
		body := ac.Get(path).Body
		if strings.Contains(body, "Provider B") || strings.Contains(body, "dev@b.example") || strings.Contains(body, bClient.Client.ClientID) {
			t.Errorf("A sees B on %s", path)
		}
	}
	for _, path := range []string{"/admin/providers/" + fmt.Sprint(b.Provider.ID), "/admin/providers"} {
		if res := ac.Get(path); res.Status != http.StatusForbidden {
			t.Errorf("A GET %s: %d", path, res.Status)
		}
	}
	if _, err := svc.AuthenticateAPIClient(tt.Ctx, bClient.Client.ClientID, bClient.Secret); err != nil {
		t.Fatalf("B's client was touched: %v", err)
	}

	// Users: the admin invites a developer, who sets a password by link.
	if res := ac.PostForm("/portal/users", url.Values{"email": {"nope"}, "name": {""}, "role": {"provider_admin"}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad invite: %d", res.Status)
	}
	if res := ac.PostForm("/portal/users", url.Values{"email": {"dev@a.example"}, "name": {"Dana Dev"}, "role": {"provider_developer"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("invite: %d %s", res.Status, res.Body)
	}
	var body string
	tt.DB.Raw("SELECT body_text FROM email_outbox WHERE to_addr = 'dev@a.example'").Scan(&body)
	link := regexp.MustCompile(`/portal/invitations/[A-Za-z0-9_-]+`).FindString(body)
	if link == "" {
		t.Fatalf("no link in %q", body)
	}
	dev := tt.Client(t)
	obMustContain(t, dev.Get(link).Body, "Dana Dev", "dev@a.example")
	if res := dev.PostForm(link, url.Values{"password": {"dev-password-123"}, "password_confirm": {"different-123"}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("mismatch: %d", res.Status)
	}
	if res := dev.PostForm(link, url.Values{"password": {"dev-password-123"}, "password_confirm": {"dev-password-123"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("set password: %d %s", res.Status, res.Body)
	}
	if got := dev.Get(link).Status; got != http.StatusNotFound {
		t.Fatalf("used link: %d", got)
	}
	for path, want := range map[string]int{"/portal": 200, "/portal/clients": 200, "/portal/markets": 200, "/portal/users": 403} {
		if got := dev.Get(path).Status; got != want {
			t.Errorf("developer GET %s: %d, want %d", path, got, want)
		}
	}
	if res := dev.PostForm("/portal/markets", url.Values{"markets": {"AT"}}); res.Status != http.StatusForbidden {
		t.Fatalf("developer requests markets: %d", res.Status)
	}

	// Markets: the admin requests, the partner manager decides per market.
	if res := ac.PostForm("/portal/markets", url.Values{"markets": {"AT", "DE", "CH"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("request markets: %d %s", res.Status, res.Body)
	}
	if res := ac.PostForm("/portal/markets", url.Values{"markets": {"XX"}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unknown market: %d", res.Status)
	}
	pm := tt.LoginStaff(t, "pm@test.local")
	pbase := fmt.Sprintf("/admin/providers/%d/markets/", a.Provider.ID)
	for code, form := range map[string]url.Values{
		"AT": {"decision": {"approve"}}, "DE": {"decision": {"approve"}}, "CH": {"decision": {"reject"}, "reason": {"no Swiss licence"}},
	} {
		if res := pm.PostForm(pbase+code, form); res.Status != http.StatusSeeOther {
			t.Fatalf("decide %s: %d %s", code, res.Status, res.Body)
		}
	}
	for code, want := range map[string]bool{"AT": true, "DE": true, "CH": false} {
		if got, _ := svc.ProviderCovers(tt.Ctx, a.Provider.ID, code); got != want {
			t.Errorf("covers %s: %v", code, got)
		}
	}
	obMustContain(t, ac.Get("/portal/markets").Body, "no Swiss licence")
}

// multipartForm builds a browser-like multipart registration.
func obMultipartForm(t *testing.T, c *apptest.Client, fields map[string]string, filename string, file []byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fields["_csrf"] = c.CSRF()
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	if file != nil {
		fw, _ := w.CreateFormFile("documents", filename)
		_, _ = fw.Write(file)
	}
	_ = w.Close()
	req := httptest.NewRequest(http.MethodPost, "/register", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return req
}

func TestRegisterFormRefusesWithFieldErrorsThenTheAdminSignsIn(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	c := tt.Client(t)
	form := c.Get("/register").Body
	obMustContain(t, form, `name="terms_version" value="2025-01"`, `id="seat-hint"`,
		"Switzerland and the United Kingdom are supported markets", `<option value="IS"`, `<option value="AT"`,
		`href="/register/terms"`, "· CarData provider registration</title>")
	// Only EEA seats are offered (issue 18): CH and GB are markets, not seats; the US is neither.
	for _, code := range []string{"CH", "GB", "US"} {
		if strings.Contains(form, `<option value="`+code+`"`) {
			t.Errorf("the seat list offers %s", code)
		}
	}
	terms := c.Get("/register/terms")
	if terms.Status != http.StatusOK {
		t.Fatalf("full terms: %d", terms.Status)
	}
	obMustContain(t, terms.Body, "CarData Partner Terms 2025-01", "Non-discriminatory access", "Consent and purpose", "Place of jurisdiction")
	fields := func() map[string]string {
		return map[string]string{"legal_name": "Formular Versicherung AG", "legal_form": "AG", "street": "Ring 1", "postal_code": "1010",
			"city": "Wien", "country": "CH", "vat_id": "CHE-123.456.788", "register_number": "FN 1", "contact_name": "Franz Form",
			"contact_email": "franz@form.example", "billing_email": "billing@form.example",
			"intended_services": "Insurance by usage.", "accept_terms": "yes", "terms_version": "2025-01",
			"password": "form-password-123", "password_confirm": "form-password-123"}
	}
	res := c.Do(obMultipartForm(t, c, fields(), "extract.pdf", obPDF))
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("swiss seat: %d %s", res.Status, res.Body)
	}
	// A seat outside the EEA sent anyway is refused; what was typed stays,
	// and the form says next to the fields that the file and passwords must be given again.
	obMustContain(t, res.Body, "Switzerland is a CarData market, but only companies seated in the EEA", `value="Formular Versicherung AG"`,
		`value="franz@form.example"`, "Insurance by usage.", `id="password-cleared"`, "choose the file")
	f := fields()
	f["country"], f["vat_id"] = "AT", "ATU13585626"
	res = c.Do(obMultipartForm(t, c, f, "extract.txt", []byte("hello")))
	obMustContain(t, res.Body, "check digit", "is not a PDF, PNG or JPEG file")
	f["vat_id"] = "ATU13585627"
	res = c.Do(obMultipartForm(t, c, f, "extract.pdf", obPDF))
	// Registering signs nobody in: the answer must be the same when the
	// e-mail is already known, so the admin signs in with the new password.
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/portal/login" {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	obMustContain(t, c.Get("/portal/login").Body, "Thank you, we have received your application.")
	ac := loginProvider(t, tt, "franz@form.example", "form-password-123")
	obMustContain(t, ac.Get("/portal").Body, "Formular Versicherung AG", `id="status">submitted`, "extract.pdf")
	var addr, version string
	tt.DB.Raw("SELECT terms_client_addr FROM providers").Scan(&addr)
	tt.DB.Raw("SELECT terms_version FROM providers").Scan(&version)
	if addr == "" || version != "2025-01" {
		t.Fatalf("terms acceptance: %q %q", addr, version)
	}
}

func TestCoverageReportMapCSVAndMarketPause(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "pm@test.local", policies.RolePartnerManager)
	tt.MustCreateStaff(t, "otto@test.local", policies.RoleAuditor)
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	svc := onboardingFor(tt)
	if _, err := svc.RequestMarkets(obProviderCtx(a.Admin), a.Provider.ID, []string{"AT", "DE"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.DecideMarketAccess(tt.Ctx, a.Provider.ID, "AT", true, ""); err != nil {
		t.Fatal(err)
	}
	pm := tt.LoginStaff(t, "pm@test.local")
	res := pm.Get("/admin/coverage")
	obMustContain(t, res.Body, `<svg`, `href="/admin/coverage/AT"`, `data-market="CY"`, "Alpen Versicherung AG")
	if n := strings.Count(res.Body, `data-market="`); n != 31 {
		t.Fatalf("%d map tiles", n)
	}
	obMustContain(t, pm.Get("/admin/coverage/DE").Body, "Open requests (1)", "Alpen Versicherung AG")
	csv := pm.Get("/admin/coverage/export.csv")
	if !strings.HasPrefix(csv.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv type %q", csv.Header.Get("Content-Type"))
	}
	obMustContain(t, csv.Body, "market,name,market_status,active_providers,pending_requests,eligible_vehicles,providers,pending\n",
		"AT,Austria,active,1,0,0,Alpen Versicherung AG,\n", "DE,Germany,active,0,1,0,,Alpen Versicherung AG\n")
	if got := pm.Get("/admin/coverage/XX").Status; got != http.StatusNotFound {
		t.Fatalf("unknown market page: %d", got)
	}
	if res := pm.PostForm("/admin/markets/DE", url.Values{"active": {"false"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("pause: %d", res.Status)
	}
	obMustContain(t, pm.Get("/admin/markets").Body, `id="activate-DE"`)
	auditor := tt.LoginStaff(t, "otto@test.local")
	if got := auditor.Get("/admin/coverage/export.csv").Status; got != 200 {
		t.Fatalf("auditor csv: %d", got)
	}
	if got := auditor.PostForm("/admin/markets/DE", url.Values{"active": {"true"}}).Status; got != http.StatusForbidden {
		t.Fatalf("auditor activates: %d", got)
	}
}

func TestDemoOnboardingIsIdempotentAndServesTheInsurerStory(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	var out bytes.Buffer
	if err := demo.Load(tt.Ctx, tt.App.Services, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	count := func() (n int64) { tt.DB.Raw("SELECT count(*) FROM providers").Scan(&n); return }
	first := count()
	if first < 30 {
		t.Fatalf("%d demo providers", first)
	}
	var statuses []string
	tt.DB.Raw("SELECT DISTINCT status FROM providers ORDER BY status").Scan(&statuses)
	if strings.Join(statuses, ",") != "active,in_review,info_requested,rejected,submitted,suspended,terminated" {
		t.Fatalf("statuses %v", statuses)
	}
	obMustContain(t, out.String(), "refused Zürich Connected Car AG: country:", "refused Typo Versicherung GmbH: vat_id:")
	if err := demo.Load(tt.Ctx, tt.App.Services, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if again := count(); again != first {
		t.Fatalf("second demo run: %d -> %d providers", first, again)
	}
	svc := onboardingFor(tt)
	c, err := svc.AuthenticateAPIClient(tt.Ctx, demo.InsurerClientID, demo.InsurerClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"DE", "AT", "FR", "IT", "NO", "CH"} {
		if ok, _ := svc.ProviderCovers(tt.Ctx, c.ProviderID, m); !ok {
			t.Errorf("demo insurer does not cover %s", m)
		}
	}
	pc := loginProvider(t, tt, demo.InsurerAdmin, demo.Password)
	obMustContain(t, pc.Get("/portal/clients").Body, demo.InsurerClientID)
	var alpen string
	tt.DB.Raw("SELECT status FROM providers WHERE legal_name = 'Alpen Versicherung AG'").Scan(&alpen)
	if alpen != "submitted" {
		t.Fatalf("Alpen Versicherung AG is %q", alpen)
	}
}
