package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"cardata/app/providerapi/client"
	"cardata/onboarding"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
)

type problemDoc struct {
	Code   string `json:"code"`
	Errors []struct {
		Field   string `json:"field"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func csProblem(t *testing.T, body string) problemDoc {
	t.Helper()
	var p problemDoc
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a problem document: %s", body)
	}
	return p
}

func (p problemDoc) field(name string) (code, msg string) {
	for _, e := range p.Errors {
		if e.Field == name {
			return e.Code, e.Message
		}
	}
	return "", ""
}

// A provider creates containers through the API; every bad input is a
// problem with a stable code and the field, an unknown key is named.
func TestContainerAPIValidation(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	good := map[string]any{"name": "Pay-as-you-drive", "purpose": csPurpose, "purposeCode": "insurance_usage",
		"technicalDescriptors": []string{csMileage, csWeekly, csLat}}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name        string
		body        any
		status      int
		field, code string
		msgContains string
		problemCode string
	}{
		{"unknown key", with("technicalDescriptors", []string{csMileage, "vehicle.vehicle.warpSpeed"}), 422, "technicalDescriptors", "key_unknown", `"vehicle.vehicle.warpSpeed"`, ""},
		{"two unknown keys", with("technicalDescriptors", []string{"vehicle.a", "vehicle.b"}), 422, "technicalDescriptors", "key_unknown", `"vehicle.a", "vehicle.b"`, ""},
		{"duplicate key", with("technicalDescriptors", []string{csMileage, csWeekly, csMileage}), 422, "technicalDescriptors", "key_duplicate", csMileage, ""},
		{"no keys", with("technicalDescriptors", []string{}), 422, "technicalDescriptors", "keys_required", "", ""},
		{"unknown purpose code", with("purposeCode", "advertising"), 422, "purposeCode", "purpose_code_unknown", "advertising", ""},
		{"missing purpose code", with("purposeCode", ""), 422, "purposeCode", "purpose_code_required", "", ""},
		{"purpose too short", with("purpose", "insurance"), 422, "purpose", "purpose_too_short", "", ""},
		{"purpose filler", with("purpose", "data data data data data data data data data data data data"), 422, "purpose", "purpose_not_meaningful", "", ""},
		{"missing name", with("name", " "), 422, "name", "name_required", "", ""},
		{"wrong type", `{"name": 5}`, 400, "", "", "", "invalid_json"},
		{"not json", `{"name": `, 400, "", "", "", "invalid_json"},
		{"empty body", "", 400, "", "", "", "body_required"},
	}
	for _, tc := range cases {
		res := w.api.SendJSON("POST", "/api/v1/containers", tc.body)
		if res.Status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, res.Status, tc.status, res.Body)
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s: content type %q", tc.name, ct)
		}
		p := csProblem(t, res.Body)
		if tc.problemCode != "" && p.Code != tc.problemCode {
			t.Errorf("%s: code %q, want %q", tc.name, p.Code, tc.problemCode)
		}
		if tc.field != "" {
			code, msg := p.field(tc.field)
			if code != tc.code || !strings.Contains(msg, tc.msgContains) {
				t.Errorf("%s: field %s: %q %q, want %q containing %q", tc.name, tc.field, code, msg, tc.code, tc.msgContains)
			}
		}
	}

	// The good one is created and submitted; its sensitive key asks for two approvals.
	ctx := t.Context()
	body := client.CreateContainerJSONRequestBody{Name: "Pay-as-you-drive", Purpose: csPurpose, PurposeCode: "insurance_usage",
		TechnicalDescriptors: []string{csMileage, csWeekly, csLat}}
	res := call(w.gen.CreateContainerWithResponse(ctx, nil, body)).must(t)
	if res.JSON201 == nil {
		t.Fatalf("create: %d %s", res.StatusCode(), res.Body)
	}
	got := res.JSON201
	if got.State != client.ContainerStateSubmitted || got.Version != 1 || !got.Sensitive || got.ApprovalsRequired != 2 || len(got.TechnicalDescriptors) != 3 {
		t.Fatalf("created: %+v", got)
	}
	if res.HTTPResponse.Header.Get("Location") != "/api/v1/containers/"+strconv.Itoa(got.Id) {
		t.Fatalf("location %q", res.HTTPResponse.Header.Get("Location"))
	}
	// The same name again is refused while the first is live.
	if res := call(w.gen.CreateContainerWithResponse(ctx, nil, body)).must(t); res.StatusCode() != 422 || !strings.Contains(string(res.Body), "name_taken") {
		t.Fatalf("same name: %d %s", res.StatusCode(), res.Body)
	}
	// List and get show it; another provider's container is not found.
	if res := call(w.gen.ListContainersWithResponse(ctx, nil)).must(t); res.JSON200 == nil || len(res.JSON200.Containers) != 1 ||
		res.JSON200.Containers[0].Name != "Pay-as-you-drive" {
		t.Fatalf("list: %d %s", res.StatusCode(), res.Body)
	}
	if res := call(w.gen.GetContainerWithResponse(ctx, got.Id)).must(t); res.JSON200 == nil || res.JSON200.Id != got.Id {
		t.Fatalf("get: %d %s", res.StatusCode(), res.Body)
	}
	other := mustActiveProvider(t, w.tt, "Nordlys Forsikring AS", "NO", "NO917345821")
	_, _, otherAPI := w.apiClients(t, other.Provider.ID)
	if res := call(otherAPI.GetContainerWithResponse(ctx, got.Id)).must(t); res.StatusCode() != 404 || apiProblem(res.Body) != "container_not_found" {
		t.Fatalf("other provider's get: %d %s", res.StatusCode(), res.Body)
	}
	if res := call(otherAPI.ListContainersWithResponse(ctx, nil)).must(t); res.JSON200 == nil || len(res.JSON200.Containers) != 0 {
		t.Fatalf("other provider lists it: %s", res.Body)
	}
}

// At most ten live containers per provider; an inactive provider creates none.
func TestContainerLimitAndInactiveProvider(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	for i := 1; i <= containers.MaxLiveContainers; i++ {
		if _, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: fmt.Sprintf("Container %d", i), Purpose: csPurpose,
			PurposeCode: "insurance_usage", Keys: []string{csMileage}, Submit: i%2 == 0}); err != nil {
			t.Fatalf("container %d: %v", i, err)
		}
	}
	res := call(w.gen.CreateContainerWithResponse(t.Context(), nil, client.CreateContainerJSONRequestBody{Name: "Eleventh", Purpose: csPurpose,
		PurposeCode: "insurance_usage", TechnicalDescriptors: []string{csMileage}})).must(t)
	if res.StatusCode() != http.StatusConflict || apiProblem(res.Body) != "container_limit_reached" {
		t.Fatalf("eleventh: %d %s", res.StatusCode(), res.Body)
	}
	// Discarding a draft frees a place.
	list, err := w.ct.FindProviderContainers(w.tt.Ctx, w.pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if v := c.Current(); v.State == containers.Draft {
			if err := w.ct.Discard(w.pctx, w.pid, v.ID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if _, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Eleventh", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage}}); err != nil {
		t.Fatalf("after discard: %v", err)
	}

	if _, err := onboardingFor(w.tt).Review(w.tt.Ctx, w.pid, onboarding.ActionSuspend, "unpaid invoices"); err != nil {
		t.Fatal(err)
	}
	_, err = w.ct.Create(w.pctx, w.pid, containers.Input{Name: "While suspended", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage}})
	if !errs.Is(err, "provider_not_active") {
		t.Fatalf("suspended provider: %v", err)
	}
}

// The life cycle follows one table: draft -> submitted -> approved |
// rejected; approved -> deprecated -> withdrawn. Everything else is refused.
func TestContainerLifecycleAndInvalidTransitions(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	v, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Mileage", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage, csWeekly}})
	if err != nil {
		t.Fatal(err)
	}
	conflict := func(what string, err error) {
		t.Helper()
		if errs.KindOf(err) != errs.Conflict {
			t.Fatalf("%s: want conflict, got %v", what, err)
		}
	}
	_, _, err = w.ct.Approve(w.pm1, v.ID)
	conflict("approve a draft", err)
	_, err = w.ct.Deprecate(w.pctx, w.pid, v.ID, "")
	conflict("deprecate a draft", err)
	// A provider cannot approve, and staff without the partner-manager role cannot either.
	if _, _, err := w.ct.Approve(w.pctx, v.ID); errs.KindOf(err) != errs.Forbidden {
		t.Fatalf("provider approves: %v", err)
	}
	if v, err = w.ct.Submit(w.pctx, w.pid, v.ID); err != nil || v.State != containers.Submitted {
		t.Fatalf("submit: %v", err)
	}
	_, err = w.ct.Submit(w.pctx, w.pid, v.ID)
	conflict("submit twice", err)
	_, err = w.ct.UpdateDraft(w.pctx, w.pid, v.ID, containers.Input{Name: "Mileage", Purpose: csPurpose, PurposeCode: "insurance_usage", Keys: []string{csMileage}})
	conflict("edit a submitted version", err)
	if _, err := w.ct.Reject(w.pm1, v.ID, " "); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("reject without reason: %v", err)
	}
	if v, _, err = w.ct.Approve(w.pm1, v.ID); err != nil || v.State != containers.Approved {
		t.Fatalf("approve: %v %v", v, err)
	}
	_, err = w.ct.Withdraw(w.pctx, w.pid, v.ID, "done")
	conflict("withdraw an approved version", err)
	_, err = w.ct.Reject(w.pm1, v.ID, "late")
	conflict("reject an approved version", err)
	_, err = w.ct.UpdateDraft(w.pctx, w.pid, v.ID, containers.Input{Name: "Mileage", Purpose: csPurpose, PurposeCode: "insurance_usage", Keys: []string{csMileage}})
	conflict("change an approved version", err)
	if v, err = w.ct.Deprecate(w.pctx, w.pid, v.ID, ""); err != nil || v.State != containers.Deprecated {
		t.Fatalf("deprecate: %v", err)
	}
	if _, err := w.ct.Withdraw(w.pctx, w.pid, v.ID, ""); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("withdraw without reason: %v", err)
	}
	if v, err = w.ct.Withdraw(w.pctx, w.pid, v.ID, "service discontinued"); err != nil || v.State != containers.Withdrawn {
		t.Fatalf("withdraw: %v", err)
	}
	_, err = w.ct.Deprecate(w.pctx, w.pid, v.ID, "")
	conflict("deprecate a withdrawn version", err)
	if _, err := w.ct.NewVersion(w.pctx, w.pid, v.ContainerID, containers.Input{Name: "Mileage", Purpose: csPurpose,
		PurposeCode: "insurance_usage", Keys: []string{csMileage}}); !errs.Is(err, "container_withdrawn") {
		t.Fatalf("new version of a withdrawn container: %v", err)
	}
	// Another provider cannot touch the container.
	other := mustActiveProvider(t, w.tt, "Nordlys Forsikring AS", "NO", "NO917345821")
	octx := policiesProvider(other.Provider.ID)
	if _, err := w.ct.Deprecate(octx, other.Provider.ID, v.ID, ""); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("other provider deprecates: %v", err)
	}

	// A rejected version: the provider reads the reason and may submit a new version.
	r, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Positions", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage, csLat}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = w.ct.Reject(w.pm2, r.ID, "position is not needed for a mileage tariff"); err != nil || r.State != containers.Rejected {
		t.Fatalf("reject: %v", err)
	}
	if r.StateReason != "position is not needed for a mileage tariff" {
		t.Fatalf("reason %q", r.StateReason)
	}
	r2, err := w.ct.NewVersion(w.pctx, w.pid, r.ContainerID, containers.Input{Name: "Positions", Purpose: csPurpose,
		PurposeCode: "insurance_usage", Keys: []string{csMileage}, Submit: true})
	if err != nil || r2.Version != 2 || r2.State != containers.Submitted || r2.ApprovalsRequired != 1 {
		t.Fatalf("resubmission: %+v %v", r2, err)
	}
	var mails int64
	w.tt.DB.Raw("SELECT count(*) FROM email_outbox WHERE kind = 'container.rejected'").Scan(&mails)
	if mails != 1 {
		t.Fatalf("rejection e-mails: %d", mails)
	}
	var audits int64
	w.tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action LIKE 'container.%'").Scan(&audits)
	if audits < 8 {
		t.Fatalf("audit entries: %d", audits)
	}
}

func policiesProvider(pid int64) context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, Name: "other", ProviderID: pid,
		Roles: []string{"provider_api"}})
}

// A container with a sensitive key needs two different partner managers;
// the same one twice is refused in the domain.
func TestSensitiveContainerNeedsTwoDifferentPartnerManagers(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	v, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Pay-as-you-drive", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage, csLat, csLon}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Sensitive || v.ApprovalsRequired != 2 {
		t.Fatalf("sensitive=%v approvals=%d", v.Sensitive, v.ApprovalsRequired)
	}
	v, done, err := w.ct.Approve(w.pm1, v.ID)
	if err != nil || done || v.State != containers.Submitted || len(v.Approvals) != 1 {
		t.Fatalf("first approval: done=%v state=%s approvals=%d err=%v", done, v.State, len(v.Approvals), err)
	}
	if _, _, err := w.ct.Approve(w.pm1, v.ID); !errs.Is(err, "second_approval_same_person") {
		t.Fatalf("same manager twice: %v", err)
	}
	// Not yet approved: no consent can be asked for.
	acc := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, acc)
	if _, err := w.cs.Request(w.pctx, w.pid, consent.NewRequest{VIN: vin, ContainerID: v.ContainerID}); !errs.Is(err, "container_not_approved") {
		t.Fatalf("request before approval: %v", err)
	}
	v, done, err = w.ct.Approve(w.pm2, v.ID)
	if err != nil || !done || v.State != containers.Approved || len(v.Approvals) != 2 {
		t.Fatalf("second approval: done=%v state=%s err=%v", done, v.State, err)
	}
	var mails int64
	w.tt.DB.Raw("SELECT count(*) FROM email_outbox WHERE kind = 'container.approved' AND to_addr = ?", w.provider.Provider.ContactEmail).Scan(&mails)
	if mails != 1 {
		t.Fatalf("approval e-mails to the provider: %d", mails)
	}
	// Data-minimisation hints: position is unusual for insurance by usage.
	for _, k := range v.Keys {
		if want := k.Name == csLat || k.Name == csLon; k.Unusual != want {
			t.Errorf("key %s unusual=%v", k.Name, k.Unusual)
		}
	}
}

// A change is a new version: removing keys carries consents over, adding
// keys needs new consent (the old version is deprecated and keeps flowing
// until the customer grants the new one, which supersedes the old grant).
func TestContainerVersionsAndConsentCarryOver(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	acc := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, acc)
	v1 := w.approvedContainer(t, "Mileage", csMileage, csWeekly, csTrips)
	k := w.granted(t, vin, v1.ContainerID, acc)

	// Version 2 only removes a key: the grant now refers to it.
	v2, err := w.ct.NewVersion(w.pctx, w.pid, v1.ContainerID, containers.Input{Name: "Mileage", Purpose: csPurpose,
		PurposeCode: "insurance_usage", Keys: []string{csMileage, csWeekly}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.ct.Approve(w.pm1, v2.ID); err != nil {
		t.Fatal(err)
	}
	got, err := w.cs.FindProviderConsent(w.tt.Ctx, w.pid, k.ID)
	if err != nil || got.State != consent.Granted || got.Version != 2 {
		t.Fatalf("after a removing version: state=%s version=%d err=%v", got.State, got.Version, err)
	}
	old, _ := w.ct.FindVersion(w.tt.Ctx, w.pid, v1.ID)
	if old.State != containers.Deprecated {
		t.Fatalf("v1 is %s", old.State)
	}
	f, _, err := w.cs.Facts(w.tt.Ctx, w.pid, w.clientID, vin, v1.ContainerID)
	if err != nil || len(f.ContainerKeys) != 2 {
		t.Fatalf("facts after carry-over: %v %v", f.ContainerKeys, err)
	}
	if r := w.decide(t, vin, v1.ContainerID, csTrips); r != policies.ReasonKeyNotInContainer {
		t.Fatalf("removed key: %s", r)
	}

	// Version 3 adds a key: the grant stays on version 2 (still flowing),
	// the provider must ask again.
	v3, err := w.ct.NewVersion(w.pctx, w.pid, v1.ContainerID, containers.Input{Name: "Mileage", Purpose: csPurpose,
		PurposeCode: "insurance_usage", Keys: []string{csMileage, csWeekly, csTrips}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.ct.Approve(w.pm2, v3.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = w.cs.FindProviderConsent(w.tt.Ctx, w.pid, k.ID)
	if got.Version != 2 || got.State != consent.Granted {
		t.Fatalf("after an adding version: %s v%d", got.State, got.Version)
	}
	if r := w.decide(t, vin, v1.ContainerID); r != policies.ReasonAllowed {
		t.Fatalf("deprecated version's grant: %s", r)
	}
	if r := w.decide(t, vin, v1.ContainerID, csTrips); r != policies.ReasonKeyNotInContainer {
		t.Fatalf("the added key without new consent: %s", r)
	}
	k3 := w.request(t, vin, v1.ContainerID)
	if k3.Version != 3 {
		t.Fatalf("new request refers to version %d", k3.Version)
	}
	if err := w.cs.Grant(w.customerCtx(t, acc), acc, k3.ID, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = w.cs.FindProviderConsent(w.tt.Ctx, w.pid, k.ID)
	if got.State != consent.Superseded {
		t.Fatalf("old grant is %s", got.State)
	}
	if r := w.decide(t, vin, v1.ContainerID, csTrips); r != policies.ReasonAllowed {
		t.Fatalf("after granting version 3: %s", r)
	}
	changes, _ := w.cs.Changes(w.tt.Ctx, k.ID)
	var notes []string
	for _, ch := range changes[k.ID] {
		notes = append(notes, fmt.Sprintf("%s>%s v%d %s", ch.FromState, ch.ToState, ch.Version, ch.Note))
	}
	if len(notes) != 4 || !strings.Contains(notes[2], "carried over to version 2") || !strings.HasPrefix(notes[3], "granted>superseded v2") ||
		!strings.Contains(notes[3], fmt.Sprintf("replaced by consent %d for version 3", k3.ID)) {
		t.Fatalf("changelog: %q", notes)
	}
}

// The portal pages: create with field errors (422), a draft, submit.
func TestPortalContainerPages(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	c := loginProvider(t, w.tt, w.provider.Admin.Email, providerPassword)
	if res := c.Get("/portal/containers/new"); res.Status != 200 || !strings.Contains(res.Body, "technicalDescriptors") {
		t.Fatalf("form: %d", res.Status)
	}
	form := url.Values{"name": {"Pay-as-you-drive"}, "purposeCode": {"insurance_usage"}, "purpose": {csPurpose},
		"technicalDescriptors": {csMileage}, "keys_text": {"vehicle.vehicle.warpSpeed"}, "intent": {"draft"}}
	res := c.PostForm("/portal/containers", form)
	if res.Status != 422 || !strings.Contains(res.Body, "vehicle.vehicle.warpSpeed") {
		t.Fatalf("unknown key: %d %s", res.Status, res.Body)
	}
	form.Del("keys_text")
	res = c.PostForm("/portal/containers", form)
	if res.Status != http.StatusSeeOther {
		t.Fatalf("draft: %d %s", res.Status, res.Body)
	}
	loc := res.Header.Get("Location")
	page := c.Get(loc)
	csContains(t, page.Body, "Pay-as-you-drive", "draft", "Submit for review")
	if res := c.PostForm(loc+"/versions/1/submit", nil); res.Status != http.StatusSeeOther {
		t.Fatalf("submit: %d %s", res.Status, res.Body)
	}
	csContains(t, c.Get(loc).Body, "submitted", "0 of 1 approvals")
	// Withdrawing needs a reason, and is refused for a submitted version.
	if res := c.PostForm(loc+"/versions/1/withdraw", nil); res.Status != 422 {
		t.Fatalf("withdraw without a reason: %d", res.Status)
	}
	if res := c.PostForm(loc+"/versions/1/withdraw", url.Values{"reason": {"ended"}}); res.Status != http.StatusConflict ||
		!strings.Contains(res.Body, "cannot withdraw") {
		t.Fatalf("withdraw a submitted version: %d", res.Status)
	}
}
