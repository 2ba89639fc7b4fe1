package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cardata/app/apptest"
	"cardata/onboarding/webhooks"
	"cardata/policies"
)

// pushReceiver counts the pushes it receives, by the value they carry.
type pushReceiver struct {
	mu     sync.Mutex
	bodies []string
}

func (p *pushReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	p.mu.Lock()
	p.bodies = append(p.bodies, b.String())
	p.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (p *pushReceiver) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...)
}

// deadLetterCount reads cardata_push_dead_letters_total{stage} from the registry /metrics serves.
func deadLetterCount(t *testing.T, reg *prometheus.Registry, stage string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cardata_push_dead_letters_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no cardata_push_dead_letters_total{stage=%q} on /metrics", stage)
	return 0
}

func subscribe(t *testing.T, tt *apptest.T, w *apiWorld, url string) {
	t.Helper()
	pid := w.Provider.Provider.ID
	pctx := policies.WithPrincipal(tt.Ctx, &policies.Principal{Kind: policies.KindProvider, ProviderID: pid})
	if _, err := tt.App.Webhooks.CreateEndpoint(pctx, pid, webhooks.NewEndpoint{URL: url, EventTypes: []string{webhooks.TypeServiceCall}}); err != nil {
		t.Fatal(err)
	}
}

// A value forced into the push queue that PostgreSQL's jsonb refuses
// (issue 17) stops nothing: the events before and after it are pushed, it
// is dead-lettered with its error, counted on /metrics, shown to staff,
// and their retry queues it again.
func TestPoisonedVehicleEventIsDeadLetteredAndStopsNothing(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	w := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	hooks := tt.App.Webhooks
	rec := &pushReceiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	subscribe(t, tt, w, srv.URL)

	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"before"}`, time.Now().Add(-3*time.Minute))
	// The ingest refuses this value now; it is forced in as an older
	// version (or a hand-made row) would have left it.
	if err := tt.DB.Exec(`INSERT INTO vehicle_events (vehicle_id, key_ids, event_type, key_values, read_at)
		SELECT v.id, ARRAY[k.id], k.push_event, ARRAY[?], now() - interval '2 minutes' FROM vehicles v, catalog_keys k WHERE v.vin = ? AND k.key = ?`,
		`[{"t":"a\u0000b"}]`, w.VIN, apiKeyServiceCall).Error; err != nil {
		t.Fatal(err)
	}
	apiIngest(t, tt, w.VIN, apiKeyServiceCall, `{"reason":"after"}`, time.Now().Add(-time.Minute))

	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 3 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.got()
	if len(got) != 2 || !strings.Contains(got[0]+got[1], "before") || !strings.Contains(got[0]+got[1], "after") {
		t.Fatalf("pushes received: %q", got)
	}
	var dead []struct {
		ID    int64
		Value string
		Error string
	}
	tt.DB.Raw("SELECT id, key_values[1] AS value, error FROM vehicle_events_dead").Scan(&dead)
	if len(dead) != 1 || dead[0].Value != `[{"t":"a\u0000b"}]` || !strings.Contains(dead[0].Error, "22P05") {
		t.Fatalf("dead letters: %+v", dead)
	}
	if n := deadLetterCount(t, tt.App.Registry, webhooks.StageFanOut); n != 1 {
		t.Fatalf("fanout dead letters on /metrics: %v", n)
	}
	var queued int64
	if tt.DB.Raw("SELECT count(*) FROM vehicle_events").Scan(&queued); queued != 0 {
		t.Fatalf("%d vehicle events still queued", queued)
	}

	// Finance reads the page but may not retry.
	tt.MustCreateStaff(t, "finance@cardata.example", policies.RoleFinance)
	fin := tt.LoginStaff(t, "finance@cardata.example")
	res := fin.Get("/admin/deliveries")
	if res.Status != 200 || !strings.Contains(res.Body, "22P05") || strings.Contains(res.Body, "dead-events/") {
		t.Fatalf("finance's page: %d %s", res.Status, res.Body)
	}
	retry := fmt.Sprintf("/admin/deliveries/dead-events/%d/retry", dead[0].ID)
	if res = fin.PostForm(retry, nil); res.Status != http.StatusForbidden {
		t.Fatalf("finance retried: %d", res.Status)
	}
	tt.MustCreateStaff(t, "pm@cardata.example", policies.RolePartnerManager)
	pm := tt.LoginStaff(t, "pm@cardata.example")
	res = pm.Get("/admin/deliveries")
	if res.Status != 200 || !strings.Contains(res.Body, w.VIN) || !strings.Contains(res.Body, retry) {
		t.Fatalf("partner manager's page: %d %s", res.Status, res.Body)
	}
	if res = pm.PostRawForm(retry, nil); res.Status != http.StatusForbidden {
		t.Fatalf("retry without CSRF token: %d", res.Status)
	}
	if res = pm.PostForm(retry, nil); res.Status != http.StatusSeeOther {
		t.Fatalf("retry: %d %s", res.Status, res.Body)
	}
	if res = pm.PostForm(retry, nil); res.Status != http.StatusNotFound {
		t.Fatalf("second retry of the same event: %d", res.Status)
	}
	var back string
	tt.DB.Raw("SELECT key_values[1] FROM vehicle_events WHERE id = ?", dead[0].ID).Scan(&back)
	if back != dead[0].Value {
		t.Fatalf("the retry did not queue the event again: %q", back)
	}
	var audited int64
	tt.DB.Raw("SELECT count(*) FROM audit_entries WHERE action = 'push.dead_letter.retry'").Scan(&audited)
	if audited != 1 {
		t.Fatalf("%d audit entries for the retry", audited)
	}
	// Once its cause is repaired, the retried event is pushed.
	tt.DB.Exec(`UPDATE vehicle_events SET key_values = ARRAY['[{"t":"repaired"}]'] WHERE id = ?`, dead[0].ID)
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 1 {
		t.Fatalf("fan-out after the retry: %d %v", n, err)
	}
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	if got = rec.got(); len(got) != 3 || !strings.Contains(got[2], "repaired") {
		t.Fatalf("pushes after the retry: %q", got)
	}
}

// A delivery whose processing keeps failing (here its consent check) is
// dead-lettered after a few tries with its error; the other provider's
// push goes out, and the staff's retry queues it again.
func TestDeliveryThatCannotBeProcessedIsDeadLettered(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	a := mustAPIWorld(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	b := mustAPIWorld(t, tt, "Provider B GmbH", "DE", "DE136695976")
	hooks := tt.App.Webhooks
	rec := &pushReceiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	subscribe(t, tt, a, srv.URL)
	subscribe(t, tt, b, srv.URL)
	check := hooks.ConsentActive
	hooks.ConsentActive = func(ctx context.Context, c webhooks.ConsentCheck) (bool, string, error) {
		if c.ConsentID == a.ConsentID {
			return false, "", errors.New("consent check poisoned for this test")
		}
		return check(ctx, c)
	}
	apiIngest(t, tt, a.VIN, apiKeyServiceCall, `{"reason":"a"}`, time.Now().Add(-time.Minute))
	apiIngest(t, tt, b.VIN, apiKeyServiceCall, `{"reason":"b"}`, time.Now().Add(-time.Minute))
	if n, err := hooks.FanOut(tt.Ctx, 100); err != nil || n != 2 {
		t.Fatalf("fan-out: %d %v", n, err)
	}
	type row struct {
		ID                 int64
		Status             string
		StatusReason       string
		LastError          string
		ProcessingFailures int
	}
	deliveryOf := func(pid int64) row {
		var r row
		tt.DB.Raw("SELECT id, status, status_reason, last_error, processing_failures FROM webhook_deliveries WHERE provider_id = ?", pid).Scan(&r)
		return r
	}
	for try := 1; try <= 3; try++ {
		if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
			t.Fatalf("try %d: %v", try, err)
		}
		if r := deliveryOf(a.Provider.Provider.ID); r.ProcessingFailures != try {
			t.Fatalf("try %d: %+v", try, r)
		}
		// The back-off has passed.
		tt.DB.Exec("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'")
	}
	if got := rec.got(); len(got) != 1 || !strings.Contains(got[0], `"b"`) {
		t.Fatalf("pushes: %q", got)
	}
	r := deliveryOf(a.Provider.Provider.ID)
	if r.Status != "dead" || r.StatusReason != webhooks.ReasonProcessingFailed || !strings.Contains(r.LastError, "consent check poisoned") {
		t.Fatalf("poisoned delivery: %+v", r)
	}
	if n := deadLetterCount(t, tt.App.Registry, webhooks.StageSend); n != 1 {
		t.Fatalf("send dead letters on /metrics: %v", n)
	}
	tt.MustCreateStaff(t, "support@cardata.example", policies.RoleSupport)
	sc := tt.LoginStaff(t, "support@cardata.example")
	page := fmt.Sprintf("/admin/deliveries/%d?push_status=dead", a.Provider.Provider.ID)
	retry := fmt.Sprintf("/admin/deliveries/%d/pushes/%d/retry", a.Provider.Provider.ID, r.ID)
	res := sc.Get(page)
	if res.Status != 200 || !strings.Contains(res.Body, "consent check poisoned") || !strings.Contains(res.Body, retry) {
		t.Fatalf("staff page: %d %s", res.Status, res.Body)
	}
	// Another provider's path does not reach the delivery.
	if res = sc.PostForm(fmt.Sprintf("/admin/deliveries/%d/pushes/%d/retry", b.Provider.Provider.ID, r.ID), nil); res.Status != http.StatusNotFound {
		t.Fatalf("retry under another provider: %d", res.Status)
	}
	if res = sc.PostForm(retry, nil); res.Status != http.StatusSeeOther {
		t.Fatalf("retry: %d %s", res.Status, res.Body)
	}
	if r = deliveryOf(a.Provider.Provider.ID); r.Status != "pending" || r.ProcessingFailures != 0 {
		t.Fatalf("after the retry: %+v", r)
	}
	hooks.ConsentActive = check
	if _, err := hooks.DeliverDue(tt.Ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 2 {
		t.Fatalf("pushes after the retry: %q", got)
	}
}
