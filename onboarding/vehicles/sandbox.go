package vehicles

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
)

// SandboxVehicle is one vehicle of the simulated fleet every provider's
// sandbox gets: brands, markets and drive trains of the real registry,
// eligible ones and, on purpose, ineligible ones (a MINI outside the EU, a
// vehicle without telematics, one with its SIM switched off), so a
// provider's code meets every refusal it will meet in production.
type SandboxVehicle struct {
	Brand, Model, Drivetrain, Market string
	TelematicsCapable, SIMActive     bool
	// Note says what the vehicle is for (shown on the portal's sandbox page).
	Note string
}

// SandboxFleet is the simulated fleet, in VIN order: the n-th vehicle's VIN
// ends in n. Simulated customers decide consent requests by the VIN's last
// digit: odd grants, even denies (consent.SandboxGrants).
var SandboxFleet = []SandboxVehicle{
	{BMW, "330e Touring", "phev", "DE", true, true, "eligible; grants"},
	{BMW, "iX xDrive40", "bev", "AT", true, true, "eligible; denies"},
	{MINI, "Cooper SE", "bev", "FR", true, true, "eligible (MINI in the EU); grants"},
	{BMW, "X5 xDrive30d", "combustion", "IT", true, true, "eligible; denies"},
	{MINI, "Countryman", "combustion", "NO", true, true, "not eligible: MINI outside the EU"},
	{MINI, "Cooper S", "combustion", "CH", true, true, "not eligible: MINI outside the EU"},
	{BMW, "118i", "combustion", "DE", false, true, "not eligible: not telematics-capable"},
	{BMW, "520d", "combustion", "NL", true, false, "not eligible: SIM inactive"},
	{BMW, "i4 eDrive40", "bev", "ES", true, true, "eligible; grants"},
}

// SandboxVIN is the VIN of the n-th (1-based) vehicle of provider
// providerID's simulated fleet: the manufacturer's prefix, "SBX", the
// provider id (7 digits) and n (4 digits), so the last digit is n's.
func SandboxVIN(providerID int64, n int, brand string) string {
	wmi := "WBA"
	if brand == MINI {
		wmi = "WMW"
	}
	return fmt.Sprintf("%sSBX%07d%04d", wmi, providerID%10_000_000, n)
}

// EnsureSandboxFleet creates provider providerID's simulated fleet when it
// has none: every SandboxFleet vehicle, registered in the registry with
// sandbox_provider_id set, held by a simulated customer of its own (no
// password: it never signs in), with every connected service its drive
// train can book. It is idempotent (the provider row is locked, an existing
// fleet is left alone) and returns how many vehicles it created.
func (s *Service) EnsureSandboxFleet(ctx context.Context, providerID int64) (int, error) {
	created := 0
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var found int64
		if err := tx.Raw("SELECT id FROM providers WHERE id = ? FOR UPDATE", providerID).Scan(&found).Error; err != nil {
			return errs.Wrap(err, "lock provider")
		}
		if found == 0 {
			return errs.New(errs.NotFound, "provider_not_found", "provider not found")
		}
		var n int64
		if err := tx.Raw("SELECT count(*) FROM vehicles WHERE sandbox_provider_id = ?", providerID).Scan(&n).Error; err != nil {
			return errs.Wrap(err, "sandbox fleet")
		}
		if n > 0 {
			return nil
		}
		now := s.now()
		for i, sv := range SandboxFleet {
			vin := SandboxVIN(providerID, i+1, sv.Brand)
			var vehicleID, accountID int64
			if err := tx.Raw(`INSERT INTO vehicles (vin, brand, model, drivetrain, market, telematics_capable, sim_active, sandbox_provider_id, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, vin, sv.Brand, sv.Model, sv.Drivetrain, sv.Market,
				sv.TelematicsCapable, sv.SIMActive, providerID, now, now).Scan(&vehicleID).Error; err != nil {
				return errs.Wrap(err, "sandbox vehicle")
			}
			email := fmt.Sprintf("sandbox-%d-%d@sandbox.cardata.invalid", providerID, i+1)
			if err := tx.Raw(`INSERT INTO customer_accounts (email, name, sandbox_provider_id, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?) RETURNING id`, email, fmt.Sprintf("Simulated customer %d", i+1), providerID, now, now).
				Scan(&accountID).Error; err != nil {
				return errs.Wrap(err, "sandbox customer")
			}
			if err := tx.Exec(`INSERT INTO vehicle_holders (vehicle_id, account_id, role, created_at) VALUES (?, ?, ?, ?)`,
				vehicleID, accountID, RolePrimary, now).Error; err != nil {
				return errs.Wrap(err, "sandbox holder")
			}
			for _, cs := range Services {
				if !cs.AppliesTo(sv.Drivetrain) {
					continue
				}
				if err := tx.Exec(`INSERT INTO service_subscriptions (vehicle_id, service, starts_at, created_at) VALUES (?, ?, ?, ?)`,
					vehicleID, cs.Code, now.Add(-24*time.Hour), now).Error; err != nil {
					return errs.Wrap(err, "sandbox subscription")
				}
			}
			created++
		}
		return audit.Recordf(ctx, tx, "sandbox.fleet", "provider", strconv.FormatInt(providerID, 10),
			"created the sandbox's simulated fleet (%d vehicles, one simulated customer each)", created)
	})
	return created, err
}

// SandboxFleetOf lists provider providerID's simulated vehicles, by VIN.
func (s *Service) SandboxFleetOf(ctx context.Context, providerID int64) ([]Vehicle, error) {
	var out []Vehicle
	err := s.DB.WithContext(ctx).Where("sandbox_provider_id = ?", providerID).Order("vin").Find(&out).Error
	return out, errs.Wrap(err, "sandbox fleet")
}

// SandboxProviders lists the providers that have a simulated fleet.
func (s *Service) SandboxProviders(ctx context.Context) ([]int64, error) {
	var out []int64
	err := s.DB.WithContext(ctx).Raw(`SELECT DISTINCT sandbox_provider_id FROM vehicles WHERE sandbox_provider_id IS NOT NULL ORDER BY 1`).
		Scan(&out).Error
	return out, errs.Wrap(err, "sandbox providers")
}

// SandboxNote is what vehicle number n (1-based, the VIN's last digits) of
// the simulated fleet is for.
func SandboxNote(vin string) string {
	if len(vin) < 4 {
		return ""
	}
	n, err := strconv.Atoi(vin[len(vin)-4:])
	if err != nil || n < 1 || n > len(SandboxFleet) {
		return ""
	}
	return SandboxFleet[n-1].Note
}
