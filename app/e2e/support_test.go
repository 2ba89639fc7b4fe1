package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"cardata/admin/support"
	"cardata/app/apptest"
	"cardata/app/providerapi/client"
	"cardata/billing"
	"cardata/onboarding"
	"cardata/onboarding/vehicles"
	"cardata/policies"
)

// Every support route from every side: staff roles, the three provider
// roles in the portal, an API client with a real token, and nobody. The
// allowed ones get through (a refused action is a 409 or 422, never a
// 403); everyone else gets 403 (401 without credentials).
func TestSupportRoleMatrix(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	for _, r := range policies.StaffRoles {
		tt.MustCreateStaff(t, r+"@test.local", r)
	}
	agent, err := tt.App.Staff.FindByEmail(tt.Ctx, "support@test.local")
	if err != nil {
		t.Fatal(err)
	}
	p := mustActiveProvider(t, tt, "Matrix AG", "DE", "DE136695976")
	svc := supportFor(tt, nil)
	ob := onboardingFor(tt)
	for _, u := range []struct{ email, role string }{{"dev@matrix.example", onboarding.RoleProviderDeveloper}, {"fin@matrix.example", onboarding.RoleProviderFinance}} {
		inv, err := ob.InviteProviderUser(obProviderCtx(p.Admin), p.Provider.ID, onboarding.Invite{Email: u.email, Name: u.role, Role: u.role})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ob.AcceptInvitation(tt.Ctx, inv.Link[len(tt.App.Cfg.PublicURL+"/portal/invitations/"):], providerPassword); err != nil {
			t.Fatal(err)
		}
	}
	open := func(subject string) *support.Ticket {
		tk, err := svc.OpenTicket(asProvider(p), support.NewTicket{Subject: subject, Description: "Described.", Category: support.CategoryAPIData,
			Priority: support.P3, Attachments: []support.Upload{{Filename: "trace.txt", Data: []byte("HTTP/1.1 401\n")}}})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	tk, dup, forProvider := open("Role matrix"), open("Duplicate"), open("Provider side")
	staffCtx := policies.WithPrincipal(tt.Ctx, agent.Principal(0))
	if _, err := svc.Assign(staffCtx, tk.ID, agent.ID); err != nil {
		t.Fatal(err)
	}
	entry, err := svc.BookTime(staffCtx, tk.ID, support.NewTimeEntry{Minutes: 5, Billable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.AddLink(staffCtx, tk.ID, support.LinkInput{Kind: support.LinkInvoice, Ref: "CD-2026-000001"}); err != nil {
		t.Fatal(err)
	}
	links, _ := svc.Links(staffCtx, tk.ID)
	atts, _ := svc.TicketAttachments(staffCtx, tk.ID)
	provAtts, _ := svc.TicketAttachments(staffCtx, forProvider.ID)

	clients := map[string]*apptest.Client{}
	for _, r := range policies.StaffRoles {
		clients[r] = tt.LoginStaff(t, r+"@test.local")
	}
	clients["provider_admin"] = loginProvider(t, tt, p.Admin.Email, providerPassword)
	clients["provider_developer"] = loginProvider(t, tt, "dev@matrix.example", providerPassword)
	clients["provider_finance"] = loginProvider(t, tt, "fin@matrix.example", providerPassword)
	clients["provider_api"] = apiBearer(t, tt, p)
	clients["anonymous"] = tt.Client(t)
	roles := []string{"partner_manager", "finance", "support", "admin", "auditor", "provider_admin", "provider_developer", "provider_finance", "provider_api", "anonymous"}

	staffAll := policies.StaffRoles
	su := []string{"support"}
	prov := []string{"provider_admin", "provider_developer", "provider_finance"}
	api := []string{"provider_api"}
	id, pid := fmt.Sprint(tk.ID), fmt.Sprint(forProvider.ID)
	cases := []struct {
		method, path string
		form         url.Values
		allowed      []string
	}{
		{"GET", "/admin/tickets", nil, staffAll},
		{"GET", "/admin/tickets?view=breaching&priority=P3&q=Role", nil, staffAll},
		{"GET", "/admin/tickets/new", nil, staffAll},
		{"GET", "/admin/tickets/report?period=2026-03", nil, staffAll},
		{"GET", "/admin/tickets/" + id, nil, staffAll},
		{"GET", fmt.Sprintf("/admin/tickets/%s/attachments/%d", id, atts[0].ID), nil, staffAll},
		{"POST", "/admin/tickets", url.Values{"provider_id": {fmt.Sprint(p.Provider.ID)}, "subject": {"By phone"}, "description": {"Called us."},
			"category": {"billing"}, "priority": {"P4"}}, su},
		// a plain support agent may not name the team lead (the service refuses; only the lead or an administrator)
		{"POST", "/admin/tickets/settings", url.Values{"team_lead_id": {fmt.Sprint(agent.ID)}}, []string{"admin"}},
		{"POST", "/admin/tickets/" + id + "/messages", url.Values{"body": {"Checked."}, "visibility": {"internal"}}, su},
		{"POST", "/admin/tickets/" + id + "/classify", url.Values{"subject": {"Role matrix"}, "priority": {"P2"}, "category": {"api_data"}}, su},
		{"POST", "/admin/tickets/" + id + "/time", url.Values{"minutes": {"5"}, "billable": {"true"}}, su},
		{"POST", fmt.Sprintf("/admin/tickets/%s/time/%d/delete", id, entry.ID), nil, su},
		{"POST", "/admin/tickets/" + id + "/billable", url.Values{"billable": {"false"}, "reason": {"goodwill"}}, su},
		{"POST", "/admin/tickets/" + id + "/links", url.Values{"kind": {"vin"}, "ref": {"WBA12345678901234"}}, su},
		{"POST", fmt.Sprintf("/admin/tickets/%s/links/%d/delete", id, links[0].ID), nil, su},
		{"POST", "/admin/tickets/" + id + "/assign", url.Values{"me": {"true"}}, su},
		{"POST", "/admin/tickets/" + id + "/transitions/wait", url.Values{"message": {"Which client?"}}, su},
		{"POST", fmt.Sprintf("/admin/tickets/%d/merge", dup.ID), url.Values{"survivor": {tk.Number()}}, su},

		{"GET", "/portal/tickets", nil, prov},
		{"GET", "/portal/tickets/new", nil, prov},
		{"POST", "/portal/tickets", url.Values{"subject": {"From the portal"}, "description": {"Hello"}, "category": {"other"}, "priority": {"P4"}}, prov},
		{"GET", "/portal/tickets/" + pid, nil, prov},
		{"POST", "/portal/tickets/" + pid + "/messages", url.Values{"body": {"More details."}}, prov},
		{"POST", "/portal/tickets/" + pid + "/reopen", url.Values{"message": {"Not resolved"}}, prov}, // 409: not resolved
		{"GET", fmt.Sprintf("/portal/tickets/%s/attachments/%d", pid, provAtts[0].ID), nil, prov},

		{"GET", "/api/v1/tickets", nil, api},
		{"GET", "/api/v1/tickets/" + pid, nil, api},
		{"POST", "/api/v1/tickets/" + pid + "/messages", nil, api},
		{"POST", "/api/v1/tickets", nil, api},
	}
	for _, c := range cases {
		for _, role := range roles {
			cl := clients[role]
			var res *apptest.Response
			switch {
			case c.method == "GET":
				res = cl.Get(c.path)
			case strings.HasPrefix(c.path, "/api/"):
				body := `{"body":"from the API"}`
				if c.path == "/api/v1/tickets" {
					body = `{"subject":"API ticket","description":"From the API","category":"api_data","priority":"P3"}`
				}
				res = cl.SendJSON("POST", c.path, body)
			default:
				res = cl.PostForm(c.path, c.form)
			}
			allowed := false
			for _, r := range c.allowed {
				allowed = allowed || r == role
			}
			// A bearer token counts only on the API; elsewhere its holder is anonymous.
			anonymous := role == "anonymous" || (role == "provider_api" && !strings.HasPrefix(c.path, "/api/"))
			switch {
			case allowed && (res.Status == http.StatusForbidden || res.Status == http.StatusUnauthorized || res.Status >= 500):
				t.Errorf("%s %s as %s: want access, got %d: %.300s", c.method, c.path, role, res.Status, res.Body)
			case !allowed && anonymous && res.Status != http.StatusUnauthorized && res.Status != http.StatusSeeOther:
				t.Errorf("%s %s as %s without a session: want 401 or the sign-in page, got %d", c.method, c.path, role, res.Status)
			case !allowed && !anonymous && res.Status != http.StatusForbidden:
				t.Errorf("%s %s as %s: want 403, got %d", c.method, c.path, role, res.Status)
			}
		}
	}
}

// A provider opens a ticket in the portal with an attachment; support
// takes it, replies publicly and writes an internal note; the provider
// sees the reply but never the note: not on the portal pages, not in the
// API (with a real token), not in any e-mail. Another provider gets 404
// for every id of it.
func TestSupportPortalStaffAndAPIConversation(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	tt.MustCreateStaff(t, "fiona@test.local", policies.RoleFinance)
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	b := mustActiveProvider(t, tt, "Demo Insurance AG", "DE", "DE136695976")
	pa, pb := loginProvider(t, tt, a.Admin.Email, providerPassword), loginProvider(t, tt, b.Admin.Email, providerPassword)
	if _, err := tt.App.Vehicles.RegisterVehicle(tt.Ctx, vehicles.NewVehicle{VIN: "WBA12345678901234", Brand: "BMW", Model: "320d",
		Drivetrain: "combustion", Market: "AT", TelematicsCapable: true, SIMActive: true}); err != nil {
		t.Fatal(err)
	}

	// Bad input re-renders the form with field errors (422), never a 500.
	res := postMultipart(t, pa, "/portal/tickets", part{name: "subject", value: "x"}, part{name: "category", value: "api_data"},
		part{name: "priority", value: "P7"}, part{name: "link_vin", value: "WBA123"},
		part{name: "attachments", filename: "evil.html", data: []byte("<!DOCTYPE html><script>alert(1)</script>")})
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad ticket: %d", res.Status)
	}
	supMustContain(t, res.Body, "at least 3 characters", "describe the problem", "a VIN has exactly 17 characters", "evil.html is not an accepted file type", `value="x"`)

	res = postMultipart(t, pa, "/portal/tickets", part{name: "subject", value: "Mileage is three days old"},
		part{name: "description", value: "The telematicData endpoint returns an old mileage."}, part{name: "category", value: "data_quality"},
		part{name: "priority", value: "P2"}, part{name: "link_vin", value: "wba12345678901234"},
		part{name: "attachments", filename: "response.json", data: []byte(`{"mileage":{"value":12000,"readAt":"2026-03-01T10:00:00Z"}}`)})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("open ticket: %d %s", res.Status, res.Body)
	}
	loc := res.Header.Get("Location")
	id := strings.TrimPrefix(loc, "/portal/tickets/")
	page := pa.Get(loc).Body
	supMustContain(t, page, "Mileage is three days old", "response.json", "Vehicle (VIN) WBA12345678901234", "new")
	supMustContain(t, pa.Get("/portal/tickets").Body, "T-"+id, "response in ")

	// Support sees it in the unassigned queue, takes it, replies, notes.
	sam := tt.LoginStaff(t, "sam@test.local")
	supMustContain(t, sam.Get("/admin/tickets?view=unassigned").Body, "T-"+id, "Alpen Versicherung AG", "response in ")
	if res := sam.PostForm("/admin/tickets/"+id+"/assign", url.Values{"me": {"true"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("take: %d %s", res.Status, res.Body)
	}
	supMustContain(t, sam.Get("/admin/tickets?view=mine").Body, "T-"+id)
	res = postMultipart(t, sam, "/admin/tickets/"+id+"/messages", part{name: "body", value: "We are checking the last transmission of the vehicle."},
		part{name: "visibility", value: "public"})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("reply: %d %s", res.Status, res.Body)
	}
	note := "NOTE-7f3a: gateway eu-3 dropped the batch, do not mention"
	res = postMultipart(t, sam, "/admin/tickets/"+id+"/messages", part{name: "body", value: note}, part{name: "visibility", value: "internal"},
		part{name: "attachments", filename: "gateway-eu3.log", data: []byte("dropped batch 812\n")})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("note: %d %s", res.Status, res.Body)
	}
	// An empty reply is a field error on the ticket page.
	if res := sam.PostForm("/admin/tickets/"+id+"/messages", url.Values{"body": {"  "}}); res.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(res.Body, "write a message") {
		t.Fatalf("empty reply: %d", res.Status)
	}
	staffPage := sam.Get("/admin/tickets/" + id).Body
	supMustContain(t, staffPage, note, "internal note", "gateway-eu3.log", "We are checking", `href="/admin/vehicles/WBA12345678901234"`)
	// Finance reads the ticket, but gets no forms.
	fin := tt.LoginStaff(t, "fiona@test.local")
	finPage := fin.Get("/admin/tickets/" + id).Body
	supMustContain(t, finPage, note, "Time and billing")
	supMustNotContain(t, "finance's ticket page", finPage, `id="reply-form"`, `id="take"`)

	// The provider sees the reply, never the note or its file.
	page = pa.Get("/portal/tickets/" + id).Body
	supMustContain(t, page, "We are checking the last transmission of the vehicle.", "CarData support")
	supMustNotContain(t, "the portal ticket page", page, "NOTE-7f3a", "gateway-eu3.log", "internal", "/admin/vehicles")
	var noteFile int64
	tt.DB.Raw(`SELECT id FROM support_attachments WHERE filename = 'gateway-eu3.log'`).Scan(&noteFile)
	if res := pa.Get(fmt.Sprintf("/portal/tickets/%s/attachments/%d", id, noteFile)); res.Status != http.StatusNotFound {
		t.Fatalf("provider downloads the note's file: %d", res.Status)
	}
	var ownFile int64
	tt.DB.Raw(`SELECT id FROM support_attachments WHERE filename = 'response.json'`).Scan(&ownFile)
	res = pa.Get(fmt.Sprintf("/portal/tickets/%s/attachments/%d", id, ownFile))
	if res.Status != http.StatusOK || res.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(res.Body, "readAt") {
		t.Fatalf("own attachment: %d %v", res.Status, res.Header)
	}

	// The API with a real token: the public conversation only.
	apiA, ctx := apiGenFor(t, tt, a), t.Context()
	tid, _ := strconv.Atoi(id)
	ticket := call(apiA.GetTicketWithResponse(ctx, tid)).must(t)
	if ticket.JSON200 == nil {
		t.Fatalf("api ticket: %d %s", ticket.StatusCode(), ticket.Body)
	}
	supMustContain(t, string(ticket.Body), `"number":"T-`+id, "We are checking", `"fromSupport":true`, `"kind":"vin"`)
	supMustNotContain(t, "the API", string(ticket.Body), "NOTE-7f3a", "gateway-eu3.log")
	supMustNotContain(t, "the API list", string(call(apiA.ListTicketsWithResponse(ctx, nil)).must(t).Body), "NOTE-7f3a")

	// No e-mail carries the note; the public reply went to the opener.
	replies := 0
	for _, e := range outbox(t, tt) {
		supMustNotContain(t, "e-mail "+e.Subject, e.Subject+e.BodyText, "NOTE-7f3a", "eu-3")
		if e.Kind == "support.reply" {
			replies++
			if e.ToAddr != a.Admin.Email || !strings.Contains(e.BodyText, "We are checking") {
				t.Fatalf("reply e-mail %+v", e)
			}
		}
	}
	if replies != 1 {
		t.Fatalf("%d reply e-mails", replies)
	}

	// Provider B: 404 for every id of A's ticket, in the portal and the API.
	for _, path := range []string{"/portal/tickets/" + id, fmt.Sprintf("/portal/tickets/%s/attachments/%d", id, ownFile)} {
		if res := pb.Get(path); res.Status != http.StatusNotFound {
			t.Errorf("B GET %s: %d", path, res.Status)
		}
	}
	for _, path := range []string{"/portal/tickets/" + id + "/messages", "/portal/tickets/" + id + "/reopen"} {
		if res := pb.PostForm(path, url.Values{"body": {"hi"}, "message": {"hi"}}); res.Status != http.StatusNotFound {
			t.Errorf("B POST %s: %d", path, res.Status)
		}
	}
	supMustNotContain(t, "B's ticket list", pb.Get("/portal/tickets").Body, "T-"+id)
	apiB := apiGenFor(t, tt, b)
	if res := call(apiB.GetTicketWithResponse(ctx, tid)).must(t); res.StatusCode() != http.StatusNotFound || apiProblem(res.Body) != "ticket_not_found" {
		t.Errorf("B API GET: %d %s", res.StatusCode(), res.Body)
	}
	if res := call(apiB.ReplyTicketWithResponse(ctx, tid, nil, client.NewTicketMessage{Body: "hi"})).must(t); res.StatusCode() != http.StatusNotFound {
		t.Errorf("B API POST: %d", res.StatusCode())
	}
	if list := call(apiB.ListTicketsWithResponse(ctx, nil)).must(t); list.JSON200 == nil || len(list.JSON200.Tickets) != 0 {
		t.Errorf("B's API list: %s", list.Body)
	}

	// Waiting on the provider, the provider's answer, resolution, reopening.
	if res := sam.PostForm("/admin/tickets/"+id+"/transitions/wait", url.Values{"message": {""}}); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("wait without a question: %d", res.Status)
	}
	if res := sam.PostForm("/admin/tickets/"+id+"/transitions/resolve", url.Values{"message": {"x"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("resolve: %d %s", res.Status, res.Body)
	}
	if res := sam.PostForm("/admin/tickets/"+id+"/transitions/resolve", url.Values{"message": {"x"}}); res.Status != http.StatusConflict {
		t.Fatalf("resolve twice: %d", res.Status)
	}
	supMustContain(t, pa.Get("/portal/tickets/"+id).Body, "Reopen ticket", "resolved")
	if res := pa.PostForm("/portal/tickets/"+id+"/reopen", url.Values{"message": {"Still old."}}); res.Status != http.StatusSeeOther {
		t.Fatalf("reopen: %d %s", res.Status, res.Body)
	}
	supMustContain(t, sam.Get("/admin/tickets/"+id).Body, "Still old.", "reopened 1×")
}

// The provider API: create with a Location, list, read, reply; bad JSON is
// a 400 and bad fields a 422 problem with stable codes.
func TestSupportTicketsAPI(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	api := apiBearer(t, tt, a)
	res := api.SendJSON("POST", "/api/v1/tickets", `{"subject":"x","category":"weather","priority":"P2","links":[{"kind":"vin","ref":"WBAO1234567890123"}]}`)
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
		t.Fatalf("invalid: %d %s", res.Status, res.Body)
	}
	supMustContain(t, res.Body, `"subject_required"`, `"description_required"`, `"category_invalid"`, `"vin_characters"`)
	if res := api.SendJSON("POST", "/api/v1/tickets", `{"subject": 12`); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "invalid_json") {
		t.Fatalf("bad json: %d %s", res.Status, res.Body)
	}
	// Well-formed requests go through the generated client, as a provider's program sends them.
	gen, ctx := apiGenFor(t, tt, a), t.Context()
	created := call(gen.CreateTicketWithResponse(ctx, nil, client.NewTicket{Subject: "Webhook signature fails",
		Description: "Our verifier rejects every push.", Category: ptr(client.ApiData), Priority: ptr(client.P2),
		ContactEmail: ptr(openapi_types.Email("ops@alpen.example")), Links: &[]client.TicketLink{{Kind: client.TicketLinkKindContainer, Ref: "7"}}})).must(t)
	tk := created.JSON201
	if tk == nil {
		t.Fatalf("create: %d %s", created.StatusCode(), created.Body)
	}
	if created.HTTPResponse.Header.Get("Location") != fmt.Sprintf("/api/v1/tickets/%d", tk.Id) || tk.Status != "new" || tk.Channel != "api" ||
		tk.ContactEmail != "ops@alpen.example" || tk.FirstResponseDue == nil {
		t.Fatalf("created %+v %v", tk, created.HTTPResponse.Header)
	}
	if res := api.SendJSON("POST", fmt.Sprintf("/api/v1/tickets/%d/messages", tk.Id), `{"body":""}`); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("empty message: %d", res.Status)
	}
	if res := call(gen.ReplyTicketWithResponse(ctx, tk.Id, nil, client.NewTicketMessage{Body: "The secret starts with whsec_."})).must(t); res.StatusCode() != http.StatusCreated {
		t.Fatalf("message: %d %s", res.StatusCode(), res.Body)
	}
	list := call(gen.ListTicketsWithResponse(ctx, &client.ListTicketsParams{Status: ptr("new")})).must(t)
	if l := list.JSON200; l == nil || len(l.Tickets) != 1 || l.NextCursor != nil || l.Tickets[0].Number != tk.Number {
		t.Fatalf("list %d %s", list.StatusCode(), list.Body)
	}
	for _, q := range []string{"?page=2", "?perPage=10"} {
		if res := api.Get("/api/v1/tickets" + q); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "unknown_parameter") {
			t.Errorf("%s: %d %s", q, res.Status, res.Body)
		}
	}
	if res := api.Get("/api/v1/tickets?status=maybe"); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("bad status filter: %d", res.Status)
	}
	supMustContain(t, string(call(gen.GetTicketWithResponse(ctx, tk.Id)).must(t).Body), "whsec_", `"kind":"container","ref":"7"`)
	if res := call(gen.GetTicketWithResponse(ctx, 999999)).must(t); res.StatusCode() != http.StatusNotFound {
		t.Fatalf("unknown: %d", res.StatusCode())
	}
}

// The escalation job, run by the scheduler twice: the overdue P1 ticket is
// escalated to the team lead once, however often the job runs.
func TestSupportEscalationJobThroughTheScheduler(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	lead := tt.MustCreateStaff(t, "lead@test.local", policies.RoleSupport)
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	// Opened a week ago: every target of a P1 has passed by now, whatever the weekday.
	week := time.Now().Add(-7 * 24 * time.Hour)
	old := supportFor(tt, func() time.Time { return week })
	if err := old.SetTeamLead(policies.WithPrincipal(tt.Ctx, policies.System("test")), &lead.ID); err != nil {
		t.Fatal(err)
	}
	tk, err := old.OpenTicket(asProvider(a), support.NewTicket{Subject: "Everything is down", Description: "500 on every call",
		Category: support.CategoryAPIData, Priority: support.P1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		rec, err := tt.App.Jobs.RunAndWait(tt.Ctx, "support.sla_escalations")
		if err != nil || rec.Outcome != "succeeded" {
			t.Fatalf("run %d: %+v %v", i, rec, err)
		}
		want := int64(2) // first response and resolution breached
		if i == 1 {
			want = 0
		}
		if rec.Figures["breaches"] != want {
			t.Fatalf("run %d: figures %v", i, rec.Figures)
		}
	}
	var n int64
	tt.DB.Raw(`SELECT count(*) FROM email_outbox WHERE kind = 'support.sla_breach' AND to_addr = 'lead@test.local'`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d breach e-mails to the lead", n)
	}
	c := tt.LoginStaff(t, "lead@test.local")
	supMustContain(t, c.Get("/admin/tickets?view=breaching").Body, tk.Number(), "escalated", "overdue by")
	supMustContain(t, c.Get("/admin/tickets/"+fmt.Sprint(tk.ID)).Body, "resolution escalated")
}

// Staff open a ticket for a provider (field errors first), filter and
// search the queue, book time, merge a duplicate, and read the SLA report.
func TestSupportStaffPages(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	a := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	b := mustActiveProvider(t, tt, "Demo Insurance AG", "DE", "DE136695976")
	sam := tt.LoginStaff(t, "sam@test.local")
	res := sam.PostForm("/admin/tickets", url.Values{"subject": {"Call"}, "category": {"billing"}, "priority": {"P4"}, "contact_email": {"not-mail"}})
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid: %d", res.Status)
	}
	supMustContain(t, res.Body, "choose the provider", "describe the problem", "enter a valid e-mail address")
	res = sam.PostForm("/admin/tickets", url.Values{"provider_id": {fmt.Sprint(b.Provider.ID)}, "subject": {"Invoice tiers explained by phone"},
		"description": {"Asked how the tiers work."}, "category": {"billing"}, "priority": {"P4"}, "assign_me": {"true"}, "link_invoice": {"CD-2026-000042"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	staffTicket := strings.TrimPrefix(res.Header.Get("Location"), "/admin/tickets/")
	supMustContain(t, sam.Get(res.Header.Get("Location")).Body, "via staff", "CD-2026-000042", "not found", "sam") // the invoice does not exist

	svc := supportFor(tt, nil)
	first, _ := svc.OpenTicket(asProvider(a), support.NewTicket{Subject: "Webhook deliveries failing", Description: "d", Category: support.CategoryAPIData, Priority: support.P2})
	second, _ := svc.OpenTicket(asProvider(a), support.NewTicket{Subject: "No pushes since Monday", Description: "d", Category: support.CategoryAPIData, Priority: support.P3})
	// Filters and search.
	body := sam.Get("/admin/tickets?view=all&provider=" + fmt.Sprint(a.Provider.ID)).Body
	supMustContain(t, body, first.Number(), second.Number())
	supMustNotContain(t, "the provider filter", body, "Invoice tiers")
	body = sam.Get("/admin/tickets?view=all&priority=P3").Body
	supMustContain(t, body, second.Number())
	supMustNotContain(t, "the priority filter", body, first.Number()+"<")
	supMustContain(t, sam.Get("/admin/tickets?view=all&q="+first.Number()).Body, "Webhook deliveries failing")
	supMustNotContain(t, "search by number", sam.Get("/admin/tickets?view=all&q="+first.Number()).Body, "No pushes since Monday")
	supMustContain(t, sam.Get("/admin/tickets?view=all&q=pushes").Body, second.Number())
	supMustContain(t, sam.Get("/admin/tickets?view=all&status=open").Body, "Invoice tiers")

	// Time: a field error, then a booking.
	fid := fmt.Sprint(first.ID)
	if res := sam.PostForm("/admin/tickets/"+fid+"/time", url.Values{"minutes": {"lots"}}); res.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(res.Body, "whole number") {
		t.Fatalf("bad minutes: %d", res.Status)
	}
	if res := sam.PostForm("/admin/tickets/"+fid+"/time", url.Values{"minutes": {"30"}, "billable": {"true"}, "note": {"analysis"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("book: %d %s", res.Status, res.Body)
	}
	// Merge: a wrong number is a field error; then the duplicate closes into the first.
	if res := sam.PostForm(fmt.Sprintf("/admin/tickets/%d/merge", second.ID), url.Values{"survivor": {"T-" + staffTicket}}); res.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(res.Body, "belongs to another provider") {
		t.Fatalf("merge across providers: %d", res.Status)
	}
	res = sam.PostForm(fmt.Sprintf("/admin/tickets/%d/merge", second.ID), url.Values{"survivor": {first.Number()}})
	if res.Status != http.StatusSeeOther || res.Header.Get("Location") != "/admin/tickets/"+fid {
		t.Fatalf("merge: %d %v", res.Status, res.Header)
	}
	supMustContain(t, sam.Get("/admin/tickets/"+fid).Body, "Merged into this ticket: "+second.Number())
	// Resolve and look at the report and the billing items.
	sam.PostForm("/admin/tickets/"+fid+"/assign", url.Values{"me": {"true"}})
	if res := sam.PostForm("/admin/tickets/"+fid+"/transitions/resolve", url.Values{"message": {"Endpoint re-enabled."}}); res.Status != http.StatusSeeOther {
		t.Fatalf("resolve: %d", res.Status)
	}
	items, err := (&billing.Service{DB: tt.DB}).SupportItemsForTicket(tt.Ctx, first.ID)
	if err != nil || len(items) != 2 || items[1].Minutes != 30 {
		t.Fatalf("billing items %+v %v", items, err)
	}
	report := sam.Get("/admin/tickets/report").Body
	supMustContain(t, report, "P2 – major impact", "100.0 %", "Team lead")
	if res := sam.Get("/admin/tickets/report?period=13-2026"); res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad period: %d", res.Status)
	}
}
