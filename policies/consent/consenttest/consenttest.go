// Package consenttest builds the world a consent lives in (an active
// provider, an approved data container, a vehicle and its holders) straight
// in SQL, for the package tests of policies/consent and of the packages
// above it. policies may not import onboarding, so the rows are written the
// way onboarding's services leave them, not through those services.
package consenttest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
)

var seq atomic.Int64

// next is a number unique within the test binary (VINs, VAT IDs, e-mails).
func next() int64 { return seq.Add(1) }

// Provider inserts an active provider and returns its id.
func Provider(t testing.TB, db *gorm.DB, name string) int64 {
	t.Helper()
	n := next()
	var id int64
	err := db.Raw(`INSERT INTO providers (legal_name, legal_form, street, postal_code, city, country, vat_id, register_number,
			contact_name, contact_email, billing_email, intended_services, status, terms_version, terms_accepted_at,
			terms_client_addr, approved_at)
		VALUES (?, 'GmbH', 'Hafenstraße 1', '20457', 'Hamburg', 'DE', ?, 'HRB 1', 'Erika Muster', ?, ?, 'tests', 'active',
			(SELECT version FROM terms_versions ORDER BY version DESC LIMIT 1), now(), '127.0.0.1', now())
		RETURNING id`, name, fmt.Sprintf("DE%09d", 100000000+n), fmt.Sprintf("contact%d@provider.example", n),
		fmt.Sprintf("billing%d@provider.example", n)).Scan(&id).Error
	if err != nil || id == 0 {
		t.Fatalf("provider %s: %v", name, err)
	}
	return id
}

// SetProviderStatus changes a provider's status (suspended, terminated, ...).
func SetProviderStatus(t testing.TB, db *gorm.DB, providerID int64, status string) {
	t.Helper()
	if err := db.Exec("UPDATE providers SET status = ? WHERE id = ?", status, providerID).Error; err != nil {
		t.Fatalf("provider status: %v", err)
	}
}

// Version is a container version written by Container or NewVersion.
type Version struct {
	ContainerID int64
	ID          int64
	Version     int
}

// Container inserts a container of the provider with version 1 in state
// (usually "approved") holding keys (catalog key names, in this order).
func Container(t testing.TB, db *gorm.DB, providerID int64, name, state string, keys ...string) Version {
	t.Helper()
	var cid int64
	if err := db.Raw("INSERT INTO containers (provider_id) VALUES (?) RETURNING id", providerID).Scan(&cid).Error; err != nil || cid == 0 {
		t.Fatalf("container: %v", err)
	}
	return NewVersion(t, db, Version{ContainerID: cid}, providerID, name, state, keys...)
}

// NewVersion adds the next version of prev's container in state with keys.
func NewVersion(t testing.TB, db *gorm.DB, prev Version, providerID int64, name, state string, keys ...string) Version {
	t.Helper()
	v := Version{ContainerID: prev.ContainerID, Version: prev.Version + 1}
	var withdrawn *time.Time
	if state == "withdrawn" {
		now := time.Now().UTC()
		withdrawn = &now
	}
	err := db.Raw(`INSERT INTO container_versions (container_id, provider_id, version, name, purpose, purpose_code,
			purpose_list_version, state, created_by, withdrawn_at)
		VALUES (?, ?, ?, ?, 'Tells the driver when the car needs a workshop visit and books the appointment.', 'maintenance_repair',
			'2025-01', ?, 'test', ?) RETURNING id`, v.ContainerID, providerID, v.Version, name, state, withdrawn).Scan(&v.ID).Error
	if err != nil || v.ID == 0 {
		t.Fatalf("container version: %v", err)
	}
	for i, k := range keys {
		res := db.Exec(`INSERT INTO container_version_keys (version_id, key_id, position) SELECT ?, id, ? FROM catalog_keys WHERE key = ?`,
			v.ID, i, k)
		if res.Error != nil || res.RowsAffected != 1 {
			t.Fatalf("container key %s: %v (not in the catalog?)", k, res.Error)
		}
	}
	return v
}

// SetVersionState moves a version without its service (a cascade's effect).
func SetVersionState(t testing.TB, db *gorm.DB, versionID int64, state string) {
	t.Helper()
	err := db.Exec("UPDATE container_versions SET state = ?, withdrawn_at = CASE WHEN ? = 'withdrawn' THEN now() END WHERE id = ?",
		state, state, versionID).Error
	if err != nil {
		t.Fatalf("version state: %v", err)
	}
}

// KeyID is a catalog key's id.
func KeyID(t testing.TB, db *gorm.DB, key string) int16 {
	t.Helper()
	var id int16
	if err := db.Raw("SELECT id FROM catalog_keys WHERE key = ?", key).Scan(&id).Error; err != nil || id == 0 {
		t.Fatalf("catalog key %s: %v", key, err)
	}
	return id
}

// VIN returns a valid VIN not used before in this test binary.
func VIN() string { return fmt.Sprintf("WBATEST%010d", next()) }

// Vehicle inserts a telematics-capable BMW with an active SIM in market DE.
func Vehicle(t testing.TB, db *gorm.DB, vin string) int64 {
	t.Helper()
	var id int64
	err := db.Raw(`INSERT INTO vehicles (vin, brand, model, drivetrain, market, telematics_capable, sim_active)
		VALUES (?, 'BMW', 'i4 eDrive40', 'bev', 'DE', true, true) RETURNING id`, vin).Scan(&id).Error
	if err != nil || id == 0 {
		t.Fatalf("vehicle %s: %v", vin, err)
	}
	return id
}

// Account inserts a customer account.
func Account(t testing.TB, db *gorm.DB, name string) int64 {
	t.Helper()
	var id int64
	err := db.Raw("INSERT INTO customer_accounts (email, name) VALUES (?, ?) RETURNING id",
		fmt.Sprintf("customer%d@example.com", next()), name).Scan(&id).Error
	if err != nil || id == 0 {
		t.Fatalf("account %s: %v", name, err)
	}
	return id
}

// Hold makes the account a holder (primary or secondary) of the vehicle.
func Hold(t testing.TB, db *gorm.DB, vehicleID, accountID int64, role string) {
	t.Helper()
	if err := db.Exec("INSERT INTO vehicle_holders (vehicle_id, account_id, role) VALUES (?, ?, ?)", vehicleID, accountID, role).Error; err != nil {
		t.Fatalf("holder: %v", err)
	}
}

// CustomerCtx acts as the customer.
func CustomerCtx(accountID int64) context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindCustomer, ID: accountID,
		Name: fmt.Sprintf("customer %d", accountID), Email: fmt.Sprintf("customer%d@example.com", accountID), Roles: []string{"customer"}})
}

// ProviderCtx acts as the provider's API client.
func ProviderCtx(providerID int64) context.Context {
	return policies.WithPrincipal(context.Background(), &policies.Principal{Kind: policies.KindProvider, ID: providerID,
		ProviderID: providerID, Name: "api client", Roles: []string{"provider_api"}})
}

// SystemCtx acts as a job.
func SystemCtx() context.Context {
	return policies.WithPrincipal(context.Background(), policies.System("test"))
}
