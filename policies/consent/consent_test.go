package consent_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/consent/consenttest"
	"cardata/policies/errs"
)

const (
	keyBrand    = "vehicle.vehicleIdentification.brand"
	keyDrive    = "vehicle.drivetrain.type"
	keySoftware = "vehicle.vehicleSoftwareVersion"
	keySpeed    = "vehicle.vehicle.speed" // driving behaviour: sensitive
)

// world is one provider with an approved container, one vehicle with a
// primary and a secondary holder, on a fresh database.
type world struct {
	db        *gorm.DB
	cs        *consent.Service
	provider  int64
	ver       consenttest.Version
	vin       string
	vehicle   int64
	owner     int64 // primary holder
	partner   int64 // secondary holder
	stranger  int64 // holds nothing
	events    []consent.Event
	dropped   []int64
	clockTime time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	gdb := dbtest.New(t)
	w := &world{db: gdb, clockTime: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	w.cs = &consent.Service{DB: gdb, IsEU: func(string) bool { return true }, PublicURL: "https://cardata.test",
		Now: func() time.Time { return w.clockTime },
		Notify: func(_ context.Context, _ *gorm.DB, e consent.Event) error {
			w.events = append(w.events, e)
			return nil
		},
		DropPushes: func(_ context.Context, _ *gorm.DB, consentID int64, _ string) error {
			w.dropped = append(w.dropped, consentID)
			return nil
		},
	}
	w.provider = consenttest.Provider(t, gdb, "Werkstatt Nord GmbH")
	w.ver = consenttest.Container(t, gdb, w.provider, "Service reminders", "approved", keyBrand, keyDrive)
	w.vin = consenttest.VIN()
	w.vehicle = consenttest.Vehicle(t, gdb, w.vin)
	w.owner = consenttest.Account(t, gdb, "Olga Owner")
	w.partner = consenttest.Account(t, gdb, "Paul Partner")
	w.stranger = consenttest.Account(t, gdb, "Sam Stranger")
	consenttest.Hold(t, gdb, w.vehicle, w.owner, "primary")
	consenttest.Hold(t, gdb, w.vehicle, w.partner, "secondary")
	return w
}

func (w *world) request(t *testing.T, containerID int64) *consent.Consent {
	t.Helper()
	c, err := w.cs.Request(consenttest.ProviderCtx(w.provider), w.provider, consent.NewRequest{VIN: w.vin, ContainerID: containerID})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return c
}

func (w *world) state(t *testing.T, id int64) consent.Consent {
	t.Helper()
	var c consent.Consent
	if err := w.db.Where("id = ?", id).Take(&c).Error; err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, err error, kind errs.Kind, code string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != kind || (e.Code != code && !slices.ContainsFunc(e.Fields, func(f errs.FieldError) bool { return f.Code == code })) {
		t.Fatalf("got %v, want %s %s", err, kind, code)
	}
}

// The life cycle is exactly the documented table, and the table handed
// out is a copy.
func TestTransitionTable(t *testing.T) {
	t.Parallel()
	got := map[string][]string{}
	for _, tr := range consent.Transitions() {
		got[string(tr.Action)+" "+string(tr.From)+">"+string(tr.To)] = tr.By
	}
	want := map[string][]string{
		"grant requested>granted":      {policies.KindCustomer},
		"deny requested>denied":        {policies.KindCustomer},
		"expire requested>expired":     {policies.KindSystem},
		"revoke granted>revoked":       {policies.KindCustomer, policies.KindSystem},
		"expire granted>expired":       {policies.KindSystem},
		"supersede granted>superseded": {policies.KindCustomer},
	}
	if len(got) != len(want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	for k, by := range want {
		if !slices.Equal(got[k], by) {
			t.Errorf("%s by %v, want %v", k, got[k], by)
		}
	}
	// Only requested and granted consents move; the others are final.
	for _, tr := range consent.Transitions() {
		if !tr.From.Live() {
			t.Errorf("%s leaves the final state %s", tr.Action, tr.From)
		}
		if !tr.To.Valid() {
			t.Errorf("%s leads to unknown state %s", tr.Action, tr.To)
		}
	}
	ts := consent.Transitions()
	ts[0].By[0], ts[0].To = "anyone", consent.Revoked
	if again := consent.Transitions(); again[0].By[0] != policies.KindCustomer || again[0].To != consent.Granted {
		t.Fatal("changing the returned table changed the life cycle")
	}
}

// Request, grant, revoke: only the primary holder decides, every move is
// in the changelog with its actor, a move the table lacks is refused, and
// a grant that ends has its queued pushes dropped in the same transaction.
func TestRequestGrantRevoke(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := w.request(t, w.ver.ContainerID)
	if c.State != consent.Requested || c.AccountID != w.owner || c.ContainerVersionID != w.ver.ID || c.ProviderName != "Werkstatt Nord GmbH" {
		t.Fatalf("requested: %+v", c)
	}
	_, err := w.cs.Request(consenttest.ProviderCtx(w.provider), w.provider, consent.NewRequest{VIN: w.vin, ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Conflict, "consent_request_pending")

	// Nobody but the primary holder decides; a stranger does not even see it.
	wantCode(t, w.cs.Grant(consenttest.CustomerCtx(w.partner), w.partner, c.ID, nil), errs.Forbidden, "only_primary_holder")
	wantCode(t, w.cs.Grant(consenttest.CustomerCtx(w.stranger), w.stranger, c.ID, nil), errs.NotFound, "consent_not_found")
	// A job cannot grant on the customer's behalf.
	wantCode(t, w.cs.Grant(consenttest.SystemCtx(), w.owner, c.ID, nil), errs.Forbidden, "not_allowed")
	// Not a move of the table: a request cannot be revoked.
	wantCode(t, w.cs.Revoke(consenttest.CustomerCtx(w.owner), w.owner, c.ID), errs.Conflict, "transition_not_allowed")
	if s := w.state(t, c.ID).State; s != consent.Requested {
		t.Fatalf("refused moves changed the consent: %s", s)
	}

	// An end date later than the provider asked for (none: open) is the customer's choice; a past one is refused.
	past := w.clockTime.Add(-time.Hour)
	wantCode(t, w.cs.Grant(consenttest.CustomerCtx(w.owner), w.owner, c.ID, &past), errs.Invalid, "ends_at_past")
	ends := w.clockTime.AddDate(1, 0, 0)
	if err := w.cs.Grant(consenttest.CustomerCtx(w.owner), w.owner, c.ID, &ends); err != nil {
		t.Fatalf("grant: %v", err)
	}
	g := w.state(t, c.ID)
	if g.State != consent.Granted || g.DecidedAt == nil || !g.DecidedAt.Equal(w.clockTime) || g.EndsAt == nil || !g.EndsAt.Equal(ends) {
		t.Fatalf("granted: %+v", g)
	}
	_, err = w.cs.Request(consenttest.ProviderCtx(w.provider), w.provider, consent.NewRequest{VIN: w.vin, ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Conflict, "consent_exists")
	wantCode(t, w.cs.Deny(consenttest.CustomerCtx(w.owner), w.owner, c.ID), errs.Conflict, "transition_not_allowed")
	if len(w.dropped) != 0 {
		t.Fatalf("pushes dropped for a grant in force: %v", w.dropped)
	}

	w.clockTime = w.clockTime.Add(time.Hour)
	if err := w.cs.Revoke(consenttest.CustomerCtx(w.owner), w.owner, c.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	r := w.state(t, c.ID)
	if r.State != consent.Revoked || r.EndedAt == nil || !r.EndedAt.Equal(w.clockTime) {
		t.Fatalf("revoked: %+v", r)
	}
	if !slices.Equal(w.dropped, []int64{c.ID}) {
		t.Fatalf("pushes dropped for %v, want the revoked consent %d", w.dropped, c.ID)
	}
	wantCode(t, w.cs.Revoke(consenttest.CustomerCtx(w.owner), w.owner, c.ID), errs.Conflict, "transition_not_allowed")

	changes, err := w.cs.Changes(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var moves []string
	for _, ch := range changes[c.ID] {
		moves = append(moves, string(ch.FromState)+">"+string(ch.ToState)+" by "+ch.ActorKind)
	}
	if want := []string{">requested by provider", "requested>granted by customer", "granted>revoked by customer"}; !slices.Equal(moves, want) {
		t.Fatalf("changelog %v, want %v", moves, want)
	}
	var types []string
	for _, e := range w.events {
		types = append(types, e.Type)
	}
	if want := []string{"consent.requested", "consent.granted", "consent.revoked"}; !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
}

// A request goes only to an active provider's approved container and to a
// vehicle with a primary holder; the answers reveal nothing else.
func TestRequestRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := consenttest.ProviderCtx(w.provider)
	_, err := w.cs.Request(ctx, w.provider, consent.NewRequest{VIN: "not-a-vin", ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Invalid, "vin_invalid")
	_, err = w.cs.Request(ctx, w.provider, consent.NewRequest{VIN: consenttest.VIN(), ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Invalid, "vehicle_not_found")
	orphan := consenttest.VIN()
	consenttest.Vehicle(t, w.db, orphan) // no holder
	_, err = w.cs.Request(ctx, w.provider, consent.NewRequest{VIN: orphan, ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Invalid, "vehicle_not_found")

	other := consenttest.Provider(t, w.db, "Andere Versicherung AG")
	_, err = w.cs.Request(consenttest.ProviderCtx(other), other, consent.NewRequest{VIN: w.vin, ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Invalid, "container_not_found") // another provider's container

	draft := consenttest.Container(t, w.db, w.provider, "Draft container", "draft", keyBrand)
	_, err = w.cs.Request(ctx, w.provider, consent.NewRequest{VIN: w.vin, ContainerID: draft.ContainerID})
	wantCode(t, err, errs.Conflict, "container_not_approved")

	// A pending request cannot be granted once the provider is suspended.
	c := w.request(t, w.ver.ContainerID)
	consenttest.SetProviderStatus(t, w.db, w.provider, "suspended")
	wantCode(t, w.cs.Grant(consenttest.CustomerCtx(w.owner), w.owner, c.ID, nil), errs.Conflict, "provider_not_active")
	_, err = w.cs.Request(ctx, w.provider, consent.NewRequest{VIN: w.vin, ContainerID: w.ver.ContainerID})
	wantCode(t, err, errs.Conflict, "provider_not_active")
	var n int64
	w.db.Model(&consent.Consent{}).Count(&n)
	if n != 1 {
		t.Fatalf("%d consents after refused requests, want 1", n)
	}
}

// Granting a newer version of a container supersedes the grant of the
// older one: one grant per vehicle and container.
func TestGrantOfANewerVersionSupersedesTheOlder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	owner := consenttest.CustomerCtx(w.owner)
	old := w.request(t, w.ver.ContainerID)
	if err := w.cs.Grant(owner, w.owner, old.ID, nil); err != nil {
		t.Fatal(err)
	}
	consenttest.SetVersionState(t, w.db, w.ver.ID, "deprecated")
	v2 := consenttest.NewVersion(t, w.db, w.ver, w.provider, "Service reminders", "approved", keyBrand, keyDrive, keySoftware)
	next := w.request(t, w.ver.ContainerID)
	if next.ContainerVersionID != v2.ID || next.Version != 2 {
		t.Fatalf("request went to version %d (%d), want v2 (%d)", next.Version, next.ContainerVersionID, v2.ID)
	}
	if err := w.cs.Grant(owner, w.owner, next.ID, nil); err != nil {
		t.Fatal(err)
	}
	if s := w.state(t, old.ID).State; s != consent.Superseded {
		t.Fatalf("the v1 grant is %s, want superseded", s)
	}
	if s := w.state(t, next.ID).State; s != consent.Granted {
		t.Fatalf("the v2 consent is %s", s)
	}
	if !slices.Equal(w.dropped, []int64{old.ID}) {
		t.Fatalf("pushes dropped for %v, want the superseded %d", w.dropped, old.ID)
	}
}

// GrantedAtDelivery answers the state committed before it and holds a
// share lock, so a revoke cannot commit while the delivery is recorded.
func TestGrantedAtDeliveryHoldsTheGrant(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := w.request(t, w.ver.ContainerID)
	ctx := context.Background()
	granted := func() bool {
		var ok bool
		err := w.db.Transaction(func(tx *gorm.DB) error {
			var err error
			ok, err = consent.GrantedAtDelivery(ctx, tx, c.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if granted() {
		t.Fatal("a request counts as granted at delivery")
	}
	if err := w.cs.Grant(consenttest.CustomerCtx(w.owner), w.owner, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	if !granted() {
		t.Fatal("a grant does not count at delivery")
	}

	tx := w.db.Begin()
	if ok, err := consent.GrantedAtDelivery(ctx, tx, c.ID); err != nil || !ok {
		tx.Rollback()
		t.Fatalf("in the delivery's transaction: %v %v", ok, err)
	}
	// While the delivery's transaction runs, the row cannot be locked for an update.
	lockErr := w.db.Transaction(func(other *gorm.DB) error {
		return other.Exec("SELECT 1 FROM consents WHERE id = ? FOR UPDATE NOWAIT", c.ID).Error
	})
	tx.Rollback()
	if lockErr == nil {
		t.Fatal("a revoke could lock the consent while a delivery was being recorded")
	}
	if err := w.cs.Revoke(consenttest.CustomerCtx(w.owner), w.owner, c.ID); err != nil {
		t.Fatal(err)
	}
	if granted() {
		t.Fatal("a revoked consent counts as granted at delivery")
	}
}

func keyIDs(t *testing.T, db *gorm.DB, keys ...string) []int16 {
	out := make([]int16, len(keys))
	for i, k := range keys {
		out[i] = consenttest.KeyID(t, db, k)
	}
	slices.Sort(out)
	return out
}

// The push fan-out's recipients: per event, each provider with a grant in
// force whose container holds one of the event's keys, with exactly those
// keys; nothing for others' vehicles, ended or not yet granted consents,
// expired ends, or suspended providers.
func TestRecipientsOfFiltersByGrantAndKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	owner := consenttest.CustomerCtx(w.owner)
	c1 := w.request(t, w.ver.ContainerID) // brand, drivetrain
	if err := w.cs.Grant(owner, w.owner, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	insurer := consenttest.Provider(t, w.db, "Tarif Versicherung AG")
	iv := consenttest.Container(t, w.db, insurer, "Pay as you drive", "approved", keySpeed, keyDrive)
	c2, err := w.cs.Request(consenttest.ProviderCtx(insurer), insurer, consent.NewRequest{VIN: w.vin, ContainerID: iv.ContainerID})
	if err != nil {
		t.Fatal(err)
	}
	ends := w.clockTime.Add(24 * time.Hour)
	if err := w.cs.Grant(owner, w.owner, c2.ID, &ends); err != nil {
		t.Fatal(err)
	}
	// A third provider only asked: no pushes.
	asker := consenttest.Provider(t, w.db, "Frage GmbH")
	av := consenttest.Container(t, w.db, asker, "Just asking", "approved", keyDrive)
	if _, err := w.cs.Request(consenttest.ProviderCtx(asker), asker, consent.NewRequest{VIN: w.vin, ContainerID: av.ContainerID}); err != nil {
		t.Fatal(err)
	}
	otherVehicle := consenttest.Vehicle(t, w.db, consenttest.VIN())

	at := w.clockTime.Add(time.Hour)
	events := []consent.VehicleEvent{
		{VehicleID: w.vehicle, At: at, KeyIDs: keyIDs(t, w.db, keyDrive, keySpeed, keySoftware)},
		{VehicleID: w.vehicle, At: at, KeyIDs: keyIDs(t, w.db, keySoftware)},                  // in no container
		{VehicleID: otherVehicle, At: at, KeyIDs: keyIDs(t, w.db, keyDrive, keyBrand)},        // nobody's consent
		{VehicleID: w.vehicle, At: ends.Add(time.Minute), KeyIDs: keyIDs(t, w.db, keySpeed)},  // after the insurer's end
		{VehicleID: w.vehicle, At: at, KeyIDs: keyIDs(t, w.db, keyBrand, keySpeed, keyDrive)}, // both, each its own keys
	}
	recipients := func() [][]consent.Recipient {
		t.Helper()
		out, err := w.cs.RecipientsOf(context.Background(), w.db, events)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(events) {
			t.Fatalf("%d answers for %d events", len(out), len(events))
		}
		return out
	}
	type got struct {
		provider, consent int64
		keys              []int16
	}
	flat := func(rs []consent.Recipient) []got {
		var out []got
		for _, r := range rs {
			out = append(out, got{r.ProviderID, r.ConsentID, r.KeyIDs})
		}
		return out
	}
	same := func(a, b []got) bool {
		return slices.EqualFunc(a, b, func(x, y got) bool {
			return x.provider == y.provider && x.consent == y.consent && slices.Equal(x.keys, y.keys)
		})
	}
	out := recipients()
	want := [][]got{
		{{w.provider, c1.ID, keyIDs(t, w.db, keyDrive)}, {insurer, c2.ID, keyIDs(t, w.db, keyDrive, keySpeed)}},
		nil,
		nil,
		nil,
		{{w.provider, c1.ID, keyIDs(t, w.db, keyBrand, keyDrive)}, {insurer, c2.ID, keyIDs(t, w.db, keyDrive, keySpeed)}},
	}
	for i := range events {
		if !same(flat(out[i]), want[i]) {
			t.Errorf("event %d: recipients %+v, want %+v", i, flat(out[i]), want[i])
		}
	}
	if out[0][0].ContainerID != w.ver.ContainerID || out[0][0].ContainerVersion != 1 {
		t.Errorf("recipient container %d v%d", out[0][0].ContainerID, out[0][0].ContainerVersion)
	}

	// The insurer is suspended and the workshop's grant revoked: nobody is left.
	consenttest.SetProviderStatus(t, w.db, insurer, "suspended")
	if err := w.cs.Revoke(owner, w.owner, c1.ID); err != nil {
		t.Fatal(err)
	}
	for i, rs := range recipients() {
		if len(rs) != 0 {
			t.Errorf("event %d after revoke and suspension: %+v", i, flat(rs))
		}
	}
}

// ledger gives the consent service billing's ledger reads, as app does.
type ledger struct{ b *billing.Service }

func (l ledger) Transfers(ctx context.Context, ids []int64, from, to time.Time) ([]consent.LedgerEntry, error) {
	recs, err := l.b.Transfers(ctx, ids, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]consent.LedgerEntry, len(recs))
	for i, r := range recs {
		var keys []consent.TransferKey
		if r.KeysKnown() {
			keys = []consent.TransferKey{}
			for _, k := range r.Keys() {
				keys = append(keys, consent.TransferKey{Key: k.Key, Label: k.Label, LabelDE: k.LabelDE})
			}
		}
		out[i] = consent.LedgerEntry{ID: r.ID, ConsentID: r.ConsentID, ProviderID: r.ProviderID, VIN: r.VIN, ContainerID: r.ContainerID,
			ContainerVersion: r.ContainerVersion, Kind: r.Kind, KeysDelivered: r.KeysDelivered, Keys: keys, DeliveredAt: r.DeliveredAt}
	}
	return out, nil
}

func (l ledger) SentKeys(ctx context.Context, ids []int64) ([]consent.SentKey, error) {
	sent, err := l.b.SentKeys(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]consent.SentKey, len(sent))
	for i, s := range sent {
		out[i] = consent.SentKey{ConsentID: s.ConsentID, Deliveries: s.Deliveries, First: s.First, Last: s.Last}
		if named := billing.NameKeys([]int16{s.KeyID}); len(named) == 1 {
			out[i].Key = &consent.TransferKey{Key: named[0].Key, Label: named[0].Label, LabelDE: named[0].LabelDE}
		}
	}
	return out, nil
}

// The customer's reports: the transaction report lists every ledger
// transfer under the customer's consents (and nobody else's) with the keys
// it carried and the container it was made under, limited to the period;
// the data report lists the consents with their history and keys.
func TestReportsFromTheLedger(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.cs.Transfers = ledger{&billing.Service{DB: w.db, Location: billingtest.Berlin(t)}}
	owner := consenttest.CustomerCtx(w.owner)
	c := w.request(t, w.ver.ContainerID)
	if err := w.cs.Grant(owner, w.owner, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	// Another customer's vehicle under the same container: never in this report.
	otherVIN := consenttest.VIN()
	ov := consenttest.Vehicle(t, w.db, otherVIN)
	other := consenttest.Account(t, w.db, "Other Owner")
	consenttest.Hold(t, w.db, ov, other, "primary")
	oc, err := w.cs.Request(consenttest.ProviderCtx(w.provider), w.provider, consent.NewRequest{VIN: otherVIN, ContainerID: w.ver.ContainerID})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cs.Grant(consenttest.CustomerCtx(other), other, oc.ID, nil); err != nil {
		t.Fatal(err)
	}

	day1 := time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)
	day2 := day1.Add(48 * time.Hour)
	rec := func(consentID int64, vin string, at time.Time, keys ...string) {
		billingtest.MustDelivery(t, w.db, billing.Delivery{ProviderID: w.provider, ClientID: 0, VIN: vin, ContainerID: w.ver.ContainerID,
			ContainerVersion: 1, ConsentID: consentID, Kind: billing.KindPull, KeyIDs: keyIDs(t, w.db, keys...), At: at,
			RequestID: "req-" + vin + at.Format(time.RFC3339)})
	}
	rec(c.ID, w.vin, day1, keyBrand)
	rec(c.ID, w.vin, day2, keyBrand, keyDrive)
	rec(oc.ID, otherVIN, day1, keyDrive)

	r, err := w.cs.BuildTransactionReport(consenttest.SystemCtx(), w.owner, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Customer.ID != w.owner || len(r.Transfers) != 2 {
		t.Fatalf("transaction report of %d: %d transfers %+v", r.Customer.ID, len(r.Transfers), r.Transfers)
	}
	byDay := map[time.Time][]string{}
	for _, tr := range r.Transfers {
		if tr.VIN != w.vin || tr.ConsentID != c.ID || tr.Provider != "Werkstatt Nord GmbH" || tr.Container != "Service reminders" ||
			tr.Version != 1 || tr.PurposeCode != "maintenance_repair" || !tr.KeysKnown {
			t.Errorf("transfer %+v", tr)
		}
		byDay[tr.At] = tr.Keys
	}
	if k := byDay[day1]; !slices.Equal(k, []string{keyBrand}) {
		t.Errorf("day 1 keys %v", k)
	}
	if k := byDay[day2]; len(k) != 2 || !slices.Contains(k, keyBrand) || !slices.Contains(k, keyDrive) {
		t.Errorf("day 2 keys %v", k)
	}
	if len(r.Containers) != 1 || !slices.Equal(r.Containers[0].Keys, []string{keyBrand, keyDrive}) {
		t.Errorf("containers %+v", r.Containers)
	}

	// The period is inclusive at its start, exclusive at its end.
	r, err = w.cs.BuildTransactionReport(consenttest.SystemCtx(), w.owner, day2, day2.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Transfers) != 1 || !r.Transfers[0].At.Equal(day2) {
		t.Fatalf("period report: %+v", r.Transfers)
	}
	_, err = w.cs.BuildTransactionReport(consenttest.SystemCtx(), w.owner, day2, day1)
	wantCode(t, err, errs.Invalid, "period_invalid")
	// An account that holds nothing has nothing transferred.
	if r, err = w.cs.BuildTransactionReport(consenttest.SystemCtx(), w.stranger, time.Time{}, time.Time{}); err != nil || len(r.Transfers) != 0 {
		t.Fatalf("a stranger's report: %v %+v", err, r)
	}

	d, err := w.cs.BuildDataReport(consenttest.SystemCtx(), w.owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Vehicles) != 1 || d.Vehicles[0].VIN != w.vin || d.Vehicles[0].Role != "primary" {
		t.Fatalf("data report vehicles %+v", d.Vehicles)
	}
	if len(d.Consents) != 1 || d.Consents[0].ID != c.ID || d.Consents[0].State != consent.Granted ||
		!slices.Equal(d.Consents[0].Keys, []string{keyBrand, keyDrive}) || len(d.Consents[0].History) != 2 {
		t.Fatalf("data report consents %+v", d.Consents)
	}
}
