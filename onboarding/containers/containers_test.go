package containers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/onboarding/catalog"
	"cardata/onboarding/containers"
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

const purpose = "We remind the driver of due services and book the workshop appointment for the car."

type env struct {
	db       *gorm.DB
	svc      *containers.Service
	cs       *consent.Service
	provider int64
	pm1, pm2 int64 // partner managers
	support  int64
	now      time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	gdb := dbtest.New(t)
	e := &env{db: gdb, now: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return e.now }
	e.cs = &consent.Service{DB: gdb, Now: clock}
	e.svc = &containers.Service{DB: gdb, Catalog: catalog.Default(), Consents: e.cs, PublicURL: "https://cardata.test", Now: clock}
	e.provider = consenttest.Provider(t, gdb, "Werkstatt Nord GmbH")
	e.pm1, e.pm2, e.support = staffUser(t, gdb, "pm1"), staffUser(t, gdb, "pm2"), staffUser(t, gdb, "support")
	return e
}

// staffUser inserts a staff member (approvals name a real one).
func staffUser(t *testing.T, db *gorm.DB, name string) int64 {
	t.Helper()
	var id int64
	err := db.Raw("INSERT INTO staff_users (email, name, password_hash) VALUES (?, ?, 'x') RETURNING id", name+"@cardata.example", name).Scan(&id).Error
	if err != nil || id == 0 {
		t.Fatalf("staff user: %v", err)
	}
	return id
}

// providerCtx is a user of the env's provider.
func (e *env) providerCtx() context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ID: 41, ProviderID: e.provider,
		Name: "Dev", Email: "dev@werkstatt.example", Roles: []string{"provider_developer"}})
}

func staffCtx(id int64, roles ...string) context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindStaff, ID: id,
		Name: fmt.Sprintf("staff %d", id), Email: fmt.Sprintf("staff%d@cardata.example", id), Roles: roles})
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || (e.Code != code && !slices.ContainsFunc(e.Fields, func(f errs.FieldError) bool { return f.Code == code })) {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func (e *env) create(t *testing.T, name string, submit bool, keys ...string) *containers.Version {
	t.Helper()
	v, err := e.svc.Create(e.providerCtx(), e.provider, containers.Input{Name: name, Purpose: purpose, PurposeCode: "maintenance_repair",
		Keys: keys, Submit: submit})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return v
}

func (e *env) approve(t *testing.T, versionID int64, staffID int64) bool {
	t.Helper()
	_, done, err := e.svc.Approve(staffCtx(staffID, policies.RolePartnerManager), versionID)
	if err != nil {
		t.Fatalf("approve %d by %d: %v", versionID, staffID, err)
	}
	return done
}

func (e *env) mails(t *testing.T, kind string) int64 {
	t.Helper()
	var n int64
	if err := e.db.Table("email_outbox").Where("kind = ?", kind).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// The life cycle table: what each action moves, and who may take it.
func TestTransitionTable(t *testing.T) {
	t.Parallel()
	want := map[containers.Action]string{
		containers.ActSubmit: "draft>submitted", containers.ActApprove: "submitted>approved", containers.ActReject: "submitted>rejected",
		containers.ActDeprecate: "approved>deprecated", containers.ActWithdraw: "deprecated>withdrawn",
	}
	ts := containers.Transitions()
	if len(ts) != len(want) {
		t.Fatalf("%d transitions, want %d", len(ts), len(want))
	}
	for _, tr := range ts {
		if got := string(tr.From) + ">" + string(tr.To); got != want[tr.Action] {
			t.Errorf("%s: %s, want %s", tr.Action, got, want[tr.Action])
		}
	}
	approve, _ := containers.TransitionFor(containers.ActApprove)
	if !slices.Equal(approve.By, []string{policies.KindStaff}) {
		t.Errorf("approve by %v: only staff review", approve.By)
	}
	approve.By[0] = policies.KindProvider
	if again, _ := containers.TransitionFor(containers.ActApprove); again.By[0] != policies.KindStaff {
		t.Fatal("changing a returned row changed the table")
	}
	if w, _ := containers.TransitionFor(containers.ActWithdraw); w.Note != "reason" {
		t.Errorf("withdraw needs no reason")
	}
}

// A container without sensitive keys: draft, submitted, approved by one
// partner manager; nobody else approves, and steps out of order are refused.
func TestCreateSubmitApprove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.svc.Create(e.providerCtx(), e.provider, containers.Input{Name: "Reminders", Purpose: "service", PurposeCode: "maintenance_repair",
		Keys: []string{keyBrand, "no.such.key"}})
	wantCode(t, err, "purpose_too_short")
	_, err = e.svc.Create(e.providerCtx(), e.provider, containers.Input{Name: "Reminders", Purpose: purpose, PurposeCode: "maintenance_repair",
		Keys: []string{keyBrand, "no.such.key"}})
	wantCode(t, err, "key_unknown")

	v := e.create(t, "Service reminders", false, keyBrand, keyDrive)
	if v.State != containers.Draft || v.Sensitive || v.ApprovalsRequired != 1 || v.Version != 1 || !slices.Equal(v.KeyNames(), []string{keyBrand, keyDrive}) {
		t.Fatalf("created: %+v", v)
	}
	_, _, err = e.svc.Approve(staffCtx(e.pm1, policies.RolePartnerManager), v.ID)
	wantCode(t, err, "transition_not_allowed") // a draft is not under review
	if _, err := e.svc.Submit(e.providerCtx(), e.provider, v.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Submit(e.providerCtx(), e.provider, v.ID)
	wantCode(t, err, "transition_not_allowed")

	// The provider does not approve its own container; only partner managers review.
	_, _, err = e.svc.Approve(e.providerCtx(), v.ID)
	wantCode(t, err, "not_allowed")
	_, _, err = e.svc.Approve(staffCtx(e.support, policies.RoleSupport), v.ID)
	wantCode(t, err, "partner_manager_only")
	if got, _ := e.svc.FindVersion(context.Background(), e.provider, v.ID); got.State != containers.Submitted {
		t.Fatalf("refused approvals moved it to %s", got.State)
	}

	if !e.approve(t, v.ID, e.pm1) {
		t.Fatal("one approval does not approve a container without sensitive keys")
	}
	got, err := e.svc.FindVersion(context.Background(), e.provider, v.ID)
	if err != nil || got.State != containers.Approved || got.DecidedAt == nil || len(got.Approvals) != 1 {
		t.Fatalf("approved: %+v %v", got, err)
	}
	if n := e.mails(t, "container.approved"); n != 1 {
		t.Fatalf("%d approval e-mails to the provider, want 1", n)
	}
	_, err = e.svc.Reject(staffCtx(e.pm1, policies.RolePartnerManager), v.ID, "too late")
	wantCode(t, err, "transition_not_allowed")

	// Another provider does not see it.
	other := consenttest.Provider(t, e.db, "Andere GmbH")
	if _, err := e.svc.FindVersion(context.Background(), other, v.ID); !errors.Is(err, containers.ErrNotFound) {
		t.Fatalf("another provider's view: %v", err)
	}
}

// Sensitive keys need two approvals by two different partner managers;
// the first leaves the version under review.
func TestSensitiveContainerNeedsTwoPartnerManagers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.create(t, "Pay as you drive", true, keyDrive, keySpeed)
	if v.State != containers.Submitted || !v.Sensitive || v.ApprovalsRequired != 2 {
		t.Fatalf("created: state %s sensitive %v approvals %d", v.State, v.Sensitive, v.ApprovalsRequired)
	}
	if e.approve(t, v.ID, e.pm1) {
		t.Fatal("one approval approved a container with sensitive keys")
	}
	got, _ := e.svc.FindVersion(context.Background(), e.provider, v.ID)
	if got.State != containers.Submitted || !got.ApprovedBy(e.pm1) || got.ApprovedBy(e.pm2) {
		t.Fatalf("after the first approval: %s, approvals %+v", got.State, got.Approvals)
	}
	// The same partner manager cannot give the second approval.
	_, _, err := e.svc.Approve(staffCtx(e.pm1, policies.RolePartnerManager), v.ID)
	wantCode(t, err, "second_approval_same_person")
	if n := e.mails(t, "container.approved"); n != 0 {
		t.Fatalf("approval e-mail before the second approval")
	}
	if !e.approve(t, v.ID, e.pm2) {
		t.Fatal("the second partner manager's approval did not approve")
	}
	got, _ = e.svc.FindVersion(context.Background(), e.provider, v.ID)
	if got.State != containers.Approved || !got.ApprovedBy(e.pm1) || !got.ApprovedBy(e.pm2) {
		t.Fatalf("after the second approval: %s, approvals %+v", got.State, got.Approvals)
	}
}

// A new version is based on the approved one; approving it deprecates the
// old one. Consents carry over when it only removes keys; when it adds
// keys they stay on the old version and its open requests are closed.
func TestVersionsCarryConsentsOverOnlyWhenKeysAreRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v1 := e.create(t, "Service reminders", true, keyBrand, keyDrive, keySoftware)
	e.approve(t, v1.ID, e.pm1)

	vin := consenttest.VIN()
	vehicle := consenttest.Vehicle(t, e.db, vin)
	owner := consenttest.Account(t, e.db, "Olga Owner")
	consenttest.Hold(t, e.db, vehicle, owner, "primary")
	c, err := e.cs.Request(e.providerCtx(), e.provider, consent.NewRequest{VIN: vin, ContainerID: v1.ContainerID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cs.Grant(consenttest.CustomerCtx(owner), owner, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	consentVersion := func() (int64, consent.State) {
		var row consent.Consent
		if err := e.db.Where("id = ?", c.ID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		return row.ContainerVersionID, row.State
	}

	// v2 removes a key.
	v2, err := e.svc.NewVersion(e.providerCtx(), e.provider, v1.ContainerID, containers.Input{Name: "Service reminders",
		Purpose: purpose, PurposeCode: "maintenance_repair", Keys: []string{keyBrand, keyDrive}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.BasedOn == nil || *v2.BasedOn != 1 {
		t.Fatalf("v2: version %d based on %v", v2.Version, v2.BasedOn)
	}
	_, err = e.svc.NewVersion(e.providerCtx(), e.provider, v1.ContainerID, containers.Input{Name: "Service reminders",
		Purpose: purpose, PurposeCode: "maintenance_repair", Keys: []string{keyBrand}})
	wantCode(t, err, "version_open") // one open version at a time
	e.approve(t, v2.ID, e.pm1)
	if old, _ := e.svc.FindVersion(context.Background(), e.provider, v1.ID); old.State != containers.Deprecated {
		t.Fatalf("v1 is %s after v2's approval, want deprecated", old.State)
	}
	if vid, st := consentVersion(); vid != v2.ID || st != consent.Granted {
		t.Fatalf("after a version that only removes keys the consent is on version id %d (%s), want v2 %d granted", vid, st, v2.ID)
	}

	// v3 adds a key: the grant stays with v2, a pending request for v2 closes.
	other := consenttest.VIN()
	ov := consenttest.Vehicle(t, e.db, other)
	oa := consenttest.Account(t, e.db, "Other Owner")
	consenttest.Hold(t, e.db, ov, oa, "primary")
	pending, err := e.cs.Request(e.providerCtx(), e.provider, consent.NewRequest{VIN: other, ContainerID: v1.ContainerID})
	if err != nil {
		t.Fatal(err)
	}
	v3, err := e.svc.NewVersion(e.providerCtx(), e.provider, v1.ContainerID, containers.Input{Name: "Service reminders",
		Purpose: purpose, PurposeCode: "maintenance_repair", Keys: []string{keyBrand, keyDrive, keySoftware}, Submit: true})
	if err != nil {
		t.Fatal(err)
	}
	e.approve(t, v3.ID, e.pm1)
	if vid, st := consentVersion(); vid != v2.ID || st != consent.Granted {
		t.Fatalf("after a version that adds keys the consent is on version id %d (%s), want v2 %d granted", vid, st, v2.ID)
	}
	var ps consent.State
	e.db.Raw("SELECT state FROM consents WHERE id = ?", pending.ID).Scan(&ps)
	if ps != consent.Expired {
		t.Fatalf("the pending request for the replaced version is %s, want expired", ps)
	}
	ct, err := e.svc.FindContainer(context.Background(), e.provider, v1.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if cur := ct.Current(); cur == nil || cur.ID != v3.ID {
		t.Fatalf("current version %+v, want v3", cur)
	}
}

// Withdrawal ends every consent at once; 29 days later the purge hides the
// container from its provider (staff still see it) and runs only once.
func TestWithdrawAndPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.create(t, "Service reminders", true, keyBrand)
	e.approve(t, v.ID, e.pm1)
	vin := consenttest.VIN()
	vehicle := consenttest.Vehicle(t, e.db, vin)
	owner := consenttest.Account(t, e.db, "Olga Owner")
	consenttest.Hold(t, e.db, vehicle, owner, "primary")
	c, err := e.cs.Request(e.providerCtx(), e.provider, consent.NewRequest{VIN: vin, ContainerID: v.ContainerID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cs.Grant(consenttest.CustomerCtx(owner), owner, c.ID, nil); err != nil {
		t.Fatal(err)
	}

	_, err = e.svc.Withdraw(e.providerCtx(), e.provider, v.ID, "no longer offered")
	wantCode(t, err, "transition_not_allowed") // deprecate first
	if _, err := e.svc.Deprecate(e.providerCtx(), e.provider, v.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Withdraw(e.providerCtx(), e.provider, v.ID, "  ")
	wantCode(t, err, "reason_required")
	withdrawnAt := e.now
	if _, err := e.svc.Withdraw(e.providerCtx(), e.provider, v.ID, "no longer offered"); err != nil {
		t.Fatal(err)
	}
	var st consent.State
	e.db.Raw("SELECT state FROM consents WHERE id = ?", c.ID).Scan(&st)
	if st != consent.Revoked {
		t.Fatalf("the grant is %s after withdrawal, want revoked", st)
	}

	ctx := context.Background()
	e.now = withdrawnAt.Add(containers.PurgeAfter - time.Second)
	if res, err := e.svc.PurgeWithdrawn(ctx, 10, nil); err != nil || res.Purged != 0 {
		t.Fatalf("purge a second early: %+v %v", res, err)
	}
	if _, err := e.svc.FindContainer(ctx, e.provider, v.ContainerID); err != nil {
		t.Fatalf("the provider lost the container before the purge: %v", err)
	}
	e.now = withdrawnAt.Add(containers.PurgeAfter)
	if res, err := e.svc.PurgeWithdrawn(ctx, 10, nil); err != nil || res.Purged != 1 {
		t.Fatalf("purge when due: %+v %v", res, err)
	}
	if _, err := e.svc.FindContainer(ctx, e.provider, v.ContainerID); !errors.Is(err, containers.ErrNotFound) {
		t.Fatalf("the provider still finds a purged container: %v", err)
	}
	staffView, err := e.svc.FindVersion(ctx, 0, v.ID)
	if err != nil || staffView.ContainerPurgedAt == nil {
		t.Fatalf("staff view of a purged container: %+v %v", staffView, err)
	}
	_, err = e.cs.Request(e.providerCtx(), e.provider, consent.NewRequest{VIN: vin, ContainerID: v.ContainerID})
	wantCode(t, err, "container_not_found")
	if res, err := e.svc.PurgeWithdrawn(ctx, 10, nil); err != nil || res.Purged != 0 {
		t.Fatalf("second purge: %+v %v", res, err)
	}
	var kept int64
	e.db.Raw("SELECT count(*) FROM consents WHERE id = ?", c.ID).Scan(&kept)
	if kept != 1 {
		t.Fatal("the purge deleted the ended consent (invoices and reports join to it)")
	}
}
