package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"cardata/app/providerapi/client"
	"cardata/jobs"
	"cardata/onboarding/containers"
	"cardata/policies"
)

// withdrawnContainer creates an approved container, lets the customer of
// vin grant it, then deprecates and withdraws it (revoking the grant) and
// backdates the withdrawal by age. It returns the withdrawn version and the
// consent's id.
func (w *consentWorld) withdrawnContainer(t *testing.T, name, vin string, account int64, age time.Duration) (*containers.Version, int64) {
	t.Helper()
	v := w.approvedContainer(t, name, csMileage)
	k := w.granted(t, vin, v.ContainerID, account)
	if _, err := w.ct.Deprecate(w.pctx, w.pid, v.ID, ""); err != nil {
		t.Fatal(err)
	}
	v, err := w.ct.Withdraw(w.pctx, w.pid, v.ID, "product discontinued")
	if err != nil {
		t.Fatal(err)
	}
	if v.WithdrawnAt == nil || time.Since(*v.WithdrawnAt) > time.Minute {
		t.Fatalf("withdrawn_at not recorded: %v", v.WithdrawnAt)
	}
	if err := w.tt.DB.Exec("UPDATE container_versions SET withdrawn_at = now() - make_interval(secs => ?) WHERE id = ?",
		age.Seconds(), v.ID).Error; err != nil {
		t.Fatal(err)
	}
	return v, k.ID
}

// The job containers.purge-withdrawn, run through the registry: a container
// withdrawn 30 days ago is purged (gone for its provider in portal and API,
// open requests expired, queued pushes dropped, consents, versions and keys
// kept, staff still see it, one audit entry); one withdrawn 28 days ago, an
// approved one and a draft are untouched; a second run changes nothing.
func TestPurgeWithdrawnContainersJob(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	db := w.tt.DB
	anna := w.customer(t, "anna-purge@test.local")
	old, grantID := w.withdrawnContainer(t, "Old tariff", w.vehicle(t, "BMW", "DE", true, anna), anna, csDays(30))
	recent, _ := w.withdrawnContainer(t, "Recent tariff", w.vehicle(t, "BMW", "DE", true, anna), anna, csDays(28))
	approved := w.approvedContainer(t, "Live tariff", csMileage)
	draft, err := w.ct.Create(w.pctx, w.pid, containers.Input{Name: "Draft tariff", Purpose: csPurpose, PurposeCode: "insurance_usage",
		Keys: []string{csMileage}})
	if err != nil {
		t.Fatal(err)
	}
	// An open request left on the old container (withdrawal expires them; this
	// one stands for a request the cascade missed) ...
	openVIN := w.vehicle(t, "BMW", "DE", true, anna)
	var vehicleID int64
	db.Raw("SELECT id FROM vehicles WHERE vin = ?", openVIN).Scan(&vehicleID)
	var openID int64
	if err := db.Raw(`INSERT INTO consents (provider_id, container_id, container_version_id, vehicle_id, vin, account_id, state,
		requested_by, requested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'requested', 'test', now() - interval '31 days', now())
		RETURNING id`, w.pid, old.ContainerID, old.ID, vehicleID, openVIN, anna).Scan(&openID).Error; err != nil {
		t.Fatal(err)
	}
	// ... and a queued push about it, and one about the recent container.
	var endpointID int64
	if err := db.Raw(`INSERT INTO webhook_endpoints (provider_id, url, event_types, secret) VALUES (?, 'https://hooks.example/cd',
		'{container.withdrawn}', 'whsec_test') RETURNING id`, w.pid).Scan(&endpointID).Error; err != nil {
		t.Fatal(err)
	}
	push := func(containerID int64) int64 {
		t.Helper()
		evID := fmt.Sprintf("msg_purge_%d", containerID)
		if err := db.Exec(`INSERT INTO webhook_events (id, provider_id, type, container_id, container_version, payload)
			VALUES (?, ?, 'container.withdrawn', ?, 1, '{}')`, evID, w.pid, containerID).Error; err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := db.Raw(`INSERT INTO webhook_deliveries (event_id, endpoint_id, provider_id, give_up_at)
			VALUES (?, ?, ?, now() + interval '1 day') RETURNING id`, evID, endpointID, w.pid).Scan(&id).Error; err != nil {
			t.Fatal(err)
		}
		return id
	}
	oldPush, recentPush := push(old.ContainerID), push(recent.ContainerID)

	rec, err := w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "containers.purge-withdrawn")
	if err != nil || rec.Outcome != jobs.Succeeded {
		t.Fatalf("run: %+v %v", rec, err)
	}
	if rec.Figures["containers_purged"] != 1 || rec.Figures["requests_expired"] != 1 || rec.Figures["pushes_dropped"] != 1 {
		t.Fatalf("figures: %v", rec.Figures)
	}

	purged := func(containerID int64) bool {
		var yes bool
		db.Raw("SELECT purged_at IS NOT NULL FROM containers WHERE id = ?", containerID).Scan(&yes)
		return yes
	}
	if !purged(old.ContainerID) {
		t.Fatal("the container withdrawn 30 days ago is not purged")
	}
	for name, id := range map[string]int64{"withdrawn 28 days ago": recent.ContainerID, "approved": approved.ContainerID, "draft": draft.ContainerID} {
		if purged(id) {
			t.Errorf("the %s container was purged", name)
		}
	}
	var states []string
	db.Raw("SELECT state FROM container_versions WHERE container_id IN ? ORDER BY container_id",
		[]int64{approved.ContainerID, draft.ContainerID}).Scan(&states)
	if strings.Join(states, ",") != "approved,draft" {
		t.Errorf("untouched containers: %v", states)
	}

	// Kept: the versions and keys, the ended consent with its changelog.
	var n int64
	db.Raw("SELECT count(*) FROM container_versions WHERE container_id = ?", old.ContainerID).Scan(&n)
	if n != 1 {
		t.Errorf("%d versions left", n)
	}
	db.Raw("SELECT count(*) FROM container_version_keys WHERE version_id = ?", old.ID).Scan(&n)
	if n != 1 {
		t.Errorf("%d keys left", n)
	}
	var grantState string
	db.Raw("SELECT state FROM consents WHERE id = ?", grantID).Scan(&grantState)
	if grantState != "revoked" {
		t.Errorf("the ended consent is %q", grantState)
	}
	// Gone: the open request (expired, with a changelog entry), the queued push.
	var openState string
	db.Raw("SELECT state FROM consents WHERE id = ?", openID).Scan(&openState)
	db.Raw("SELECT count(*) FROM consent_changes WHERE consent_id = ? AND to_state = 'expired' AND note LIKE '%purged%'", openID).Scan(&n)
	if openState != "expired" || n != 1 {
		t.Errorf("open request: %s, %d changelog entries", openState, n)
	}
	db.Raw("SELECT count(*) FROM consents WHERE container_id = ? AND state = 'requested'", old.ContainerID).Scan(&n)
	if n != 0 {
		t.Errorf("%d open requests left", n)
	}
	pushState := func(id int64) string {
		var s string
		db.Raw("SELECT status || ':' || status_reason FROM webhook_deliveries WHERE id = ?", id).Scan(&s)
		return s
	}
	if s := pushState(oldPush); s != "dropped:container_purged" {
		t.Errorf("push about the purged container: %s", s)
	}
	if s := pushState(recentPush); s != "pending:" {
		t.Errorf("push about the recent container: %s", s)
	}
	db.Raw("SELECT count(*) FROM webhook_endpoints WHERE id = ? AND status = 'active'", endpointID).Scan(&n)
	if n != 1 {
		t.Error("the endpoint was touched")
	}
	// Audited once, as the scheduler's system principal.
	var audits []struct {
		ActorLabel string
		Summary    string
	}
	db.Raw("SELECT actor_label, summary FROM audit_entries WHERE action = 'container.purge' AND object_id = ?",
		strconv.FormatInt(old.ContainerID, 10)).Scan(&audits)
	if len(audits) != 1 || !strings.Contains(audits[0].Summary, `"Old tariff" v1 purged`) {
		t.Fatalf("audit: %+v", audits)
	}

	// The provider API: 404 container_not_found, and missing from the list.
	ctx := t.Context()
	res := call(w.gen.GetContainerWithResponse(ctx, int(old.ContainerID))).must(t)
	if res.StatusCode() != http.StatusNotFound || apiProblem(res.Body) != "container_not_found" {
		t.Fatalf("GET purged container: %d %s", res.StatusCode(), res.Body)
	}
	if res := call(w.gen.GetContainerWithResponse(ctx, int(recent.ContainerID))).must(t); res.JSON200 == nil {
		t.Fatalf("GET recent container: %d %s", res.StatusCode(), res.Body)
	}
	apiList := call(w.gen.ListContainersWithResponse(ctx, nil)).must(t)
	if apiList.JSON200 == nil || strings.Contains(string(apiList.Body), `"Old tariff"`) || !strings.Contains(string(apiList.Body), `"Recent tariff"`) {
		t.Fatalf("list: %d %s", apiList.StatusCode(), apiList.Body)
	}
	// Asking for consent to it: as for a container that never existed.
	req := call(w.gen.RequestConsentWithResponse(ctx, nil, client.NewConsentRequest{Vin: openVIN, ContainerId: int(old.ContainerID)})).must(t)
	if code, _ := csProblem(t, string(req.Body)).field("containerId"); req.StatusCode() != http.StatusUnprocessableEntity || code != "container_not_found" {
		t.Fatalf("consent request for the purged container: %d %s", req.StatusCode(), req.Body)
	}
	// The provider's domain calls find nothing either.
	if _, err := w.ct.FindContainer(w.pctx, w.pid, old.ContainerID); err != containers.ErrNotFound {
		t.Fatalf("FindContainer as provider: %v", err)
	}
	if _, err := w.ct.FindVersion(w.pctx, w.pid, old.ID); err != containers.ErrNotFound {
		t.Fatalf("FindVersion as provider: %v", err)
	}
	if _, err := w.ct.NewVersion(w.pctx, w.pid, old.ContainerID, containers.Input{Name: "Old tariff", Purpose: csPurpose,
		PurposeCode: "insurance_usage", Keys: []string{csMileage}}); err != containers.ErrNotFound {
		t.Fatalf("NewVersion of a purged container: %v", err)
	}

	// The partner portal: gone from the list, 404 on its page.
	pc := loginProvider(t, w.tt, w.provider.Admin.Email, providerPassword)
	if page := pc.Get("/portal/containers"); page.Status != http.StatusOK || strings.Contains(page.Body, "Old tariff") ||
		!strings.Contains(page.Body, "Recent tariff") {
		t.Fatalf("portal list: %d", page.Status)
	}
	if page := pc.Get(fmt.Sprintf("/portal/containers/%d", old.ContainerID)); page.Status != http.StatusNotFound {
		t.Fatalf("portal page of the purged container: %d", page.Status)
	}

	// Staff still see it, labelled purged with the date.
	w.tt.MustCreateStaff(t, "auditor-purge@test.local", policies.RoleAuditor)
	sc := w.tt.LoginStaff(t, "auditor-purge@test.local")
	var purgedAt time.Time
	db.Raw("SELECT purged_at FROM containers WHERE id = ?", old.ContainerID).Scan(&purgedAt)
	day := purgedAt.In(w.tt.App.Cfg.BillingTimezone).Format("2006-01-02")
	page := sc.Get(fmt.Sprintf("/admin/containers/%d", old.ContainerID))
	csContains(t, page.Body, "Old tariff", `id="purged-label"`, "purged "+day, "withdrawn")
	list := sc.Get("/admin/containers?q=tariff")
	csContains(t, list.Body, "Old tariff", "purged "+day, "Recent tariff")
	if strings.Count(list.Body, "purged "+day) != 1 {
		t.Errorf("only the old container is labelled purged")
	}

	// Idempotent: a second run purges nothing and audits nothing.
	rec, err = w.tt.App.Jobs.RunAndWait(w.tt.Ctx, "containers.purge-withdrawn")
	if err != nil || rec.Outcome != jobs.Succeeded || rec.Figures["containers_purged"] != 0 {
		t.Fatalf("second run: %+v %v", rec, err)
	}
	db.Raw("SELECT count(*) FROM audit_entries WHERE action = 'container.purge'").Scan(&n)
	if n != 1 {
		t.Errorf("%d purge audit entries after two runs", n)
	}
}

// The purge body with an injected clock: the 29-day boundary, and a run
// stopped midway (after its first container) that the next run completes.
func TestPurgeWithdrawnBoundaryAndResume(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	acc := w.customer(t, "resume-purge@test.local")
	a, _ := w.withdrawnContainer(t, "Tariff A", w.vehicle(t, "BMW", "AT", true, acc), acc, 0)
	b, _ := w.withdrawnContainer(t, "Tariff B", w.vehicle(t, "BMW", "AT", true, acc), acc, 0)
	var withdrawnAt time.Time
	w.tt.DB.Raw("SELECT max(withdrawn_at) FROM container_versions WHERE id IN ?", []int64{a.ID, b.ID}).Scan(&withdrawnAt)

	ct := *w.ct
	ct.Now = func() time.Time { return withdrawnAt.Add(containers.PurgeAfter - time.Second) }
	res, err := ct.PurgeWithdrawn(context.Background(), 10, nil)
	if err != nil || res.Purged != 0 {
		t.Fatalf("a second before 29 days: %+v %v", res, err)
	}

	ct.Now = func() time.Time { return withdrawnAt.Add(containers.PurgeAfter) }
	ctx, stop := context.WithCancel(w.tt.Ctx)
	res, err = ct.PurgeWithdrawn(ctx, 1, func(int) { stop() })
	if err != context.Canceled || res.Purged != 1 {
		t.Fatalf("stopped run: %+v %v", res, err)
	}
	var purged int64
	w.tt.DB.Raw("SELECT count(*) FROM containers WHERE id IN ? AND purged_at IS NOT NULL", []int64{a.ContainerID, b.ContainerID}).Scan(&purged)
	if purged != 1 {
		t.Fatalf("%d purged after the stopped run", purged)
	}
	res, err = ct.PurgeWithdrawn(w.tt.Ctx, 1, nil)
	if err != nil || res.Purged != 1 {
		t.Fatalf("next run: %+v %v", res, err)
	}
	w.tt.DB.Raw("SELECT count(*) FROM containers WHERE id IN ? AND purged_at IS NOT NULL", []int64{a.ContainerID, b.ContainerID}).Scan(&purged)
	if purged != 2 {
		t.Fatalf("%d purged after the next run", purged)
	}
	var audits int64
	w.tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action = 'container.purge'").Scan(&audits)
	if audits != 2 {
		t.Fatalf("%d audit entries", audits)
	}
}
