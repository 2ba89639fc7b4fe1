package vehicles

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// FleetVehicle is one vehicle of a bulk import, with its primary holder
// (empty HolderEmail: unmapped) and subscriptions.
type FleetVehicle struct {
	NewVehicle
	HolderEmail   string
	HolderName    string
	Subscriptions []NewSubscription
}

// ImportResult counts what an import created.
type ImportResult struct {
	Vehicles, Accounts, Subscriptions int
}

// ImportFleet registers many vehicles at once, as the manufacturer's
// systems deliver them: set-based statements, one transaction, one audit
// entry. VINs already registered are skipped (with their holders and
// subscriptions), so an import can be repeated. Each vehicle is validated
// like RegisterVehicle; the first invalid one names its position.
func (s *Service) ImportFleet(ctx context.Context, fleet []FleetVehicle) (ImportResult, error) {
	var res ImportResult
	var vins, brands, models, drivetrains, markets, emails, names []string
	var capable, sim []bool
	seenEmail := map[string]bool{}
	for i := range fleet {
		fv := &fleet[i]
		if err := fv.normalize(); err != nil {
			return res, fmt.Errorf("vehicle %d (%s): %w", i, fv.VIN, err)
		}
		for _, sub := range fv.Subscriptions {
			cs, ok := ServiceByCode(sub.Service)
			if !ok || !cs.AppliesTo(fv.Drivetrain) || sub.StartsAt.IsZero() || (sub.EndsAt != nil && !sub.EndsAt.After(sub.StartsAt)) {
				return res, errs.New(errs.Invalid, "subscription_invalid", "vehicle %d (%s): invalid subscription %q", i, fv.VIN, sub.Service)
			}
		}
		vins, brands, models = append(vins, fv.VIN), append(brands, fv.Brand), append(models, fv.Model)
		drivetrains, markets = append(drivetrains, fv.Drivetrain), append(markets, fv.Market)
		capable, sim = append(capable, fv.TelematicsCapable), append(sim, fv.SIMActive)
		if e := strings.ToLower(strings.TrimSpace(fv.HolderEmail)); e != "" && !seenEmail[e] {
			seenEmail[e] = true
			acc := NewAccount{Email: fv.HolderEmail, Name: fv.HolderName}
			if err := acc.normalize(); err != nil {
				return res, fmt.Errorf("vehicle %d (%s) holder: %w", i, fv.VIN, err)
			}
			emails, names = append(emails, acc.Email), append(names, acc.Name)
		}
	}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r := tx.Exec(`INSERT INTO customer_accounts (email, name)
			SELECT * FROM unnest(?::text[], ?::text[]) ON CONFLICT (lower(email)) DO NOTHING`, sqlarray.Texts(emails), sqlarray.Texts(names))
		if r.Error != nil {
			return errs.Wrap(r.Error, "import accounts")
		}
		res.Accounts = int(r.RowsAffected)
		var created []struct {
			ID  int64
			VIN string
		}
		err := tx.Raw(`INSERT INTO vehicles (vin, brand, model, drivetrain, market, telematics_capable, sim_active)
			SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bool[], ?::bool[])
			ON CONFLICT (vin) DO NOTHING RETURNING id, vin`,
			sqlarray.Texts(vins), sqlarray.Texts(brands), sqlarray.Texts(models), sqlarray.Texts(drivetrains), sqlarray.Texts(markets),
			sqlarray.Bools(capable), sqlarray.Bools(sim)).Scan(&created).Error
		if err != nil {
			return errs.Wrap(err, "import vehicles")
		}
		res.Vehicles = len(created)
		if len(created) == 0 {
			return nil
		}
		idOf := make(map[string]int64, len(created))
		for _, c := range created {
			idOf[c.VIN] = c.ID
		}
		var hVIN, hEmail, sVIN, sService []string
		var sStart, sEnd []string
		for i := range fleet {
			fv := &fleet[i]
			if _, ok := idOf[fv.VIN]; !ok {
				continue
			}
			if strings.TrimSpace(fv.HolderEmail) != "" {
				hVIN, hEmail = append(hVIN, fv.VIN), append(hEmail, strings.TrimSpace(fv.HolderEmail))
			}
			for _, sub := range fv.Subscriptions {
				sVIN, sService = append(sVIN, fv.VIN), append(sService, sub.Service)
				sStart = append(sStart, sub.StartsAt.UTC().Format(time.RFC3339Nano))
				end := ""
				if sub.EndsAt != nil {
					end = sub.EndsAt.UTC().Format(time.RFC3339Nano)
				}
				sEnd = append(sEnd, end)
			}
		}
		if err := tx.Exec(`INSERT INTO vehicle_holders (vehicle_id, account_id, role)
			SELECT v.id, a.id, 'primary' FROM unnest(?::text[], ?::text[]) AS h(vin, email)
			JOIN vehicles v ON v.vin = h.vin JOIN customer_accounts a ON lower(a.email) = lower(h.email)`,
			sqlarray.Texts(hVIN), sqlarray.Texts(hEmail)).Error; err != nil {
			return errs.Wrap(err, "import holders")
		}
		r = tx.Exec(`INSERT INTO service_subscriptions (vehicle_id, service, starts_at, ends_at)
			SELECT v.id, s.service, s.starts_at::timestamptz, NULLIF(s.ends_at, '')::timestamptz
			FROM unnest(?::text[], ?::text[], ?::text[], ?::text[]) AS s(vin, service, starts_at, ends_at)
			JOIN vehicles v ON v.vin = s.vin`, sqlarray.Texts(sVIN), sqlarray.Texts(sService), sqlarray.Texts(sStart), sqlarray.Texts(sEnd))
		if r.Error != nil {
			return errs.Wrap(r.Error, "import subscriptions")
		}
		res.Subscriptions = int(r.RowsAffected)
		return audit.Recordf(ctx, tx, "vehicle.import", "vehicle", "fleet",
			"imported %d vehicles, %d accounts, %d subscriptions", res.Vehicles, res.Accounts, res.Subscriptions)
	})
	return res, err
}
