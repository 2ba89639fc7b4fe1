package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/bcrypt"

	"cardata/app/ingest"
	"cardata/billing"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// Demo consent data (documented in README): customer1@demo.local holds a
// BMW in Germany with consents in every state, and the demo insurer holds
// granted consents to "Pay-as-you-drive" for InsurerConsents vehicles.
const (
	Customer1Email  = "customer1@demo.local"
	Customer1VIN    = "WBA8E91C0NJ900001" // check digit fixed up at run time (demoVIN)
	InsurerConsents = 120
	PAYD            = "Pay-as-you-drive"
)

type demoContainer struct {
	provider, name, purposeCode, purpose string
	keys                                 []string
	// end is where the demo leaves version 1: draft, submitted, approved,
	// rejected, deprecated or withdrawn; approvals counts partner-manager
	// approvals given to a submitted one.
	end       containers.State
	approvals int
	reason    string
}

const (
	kMileage    = "vehicle.vehicle.travelledDistance"
	kWeeklyLong = "vehicle.vehicle.averageWeeklyDistanceLongTerm"
	kWeekly     = "vehicle.vehicle.averageWeeklyDistanceShortTerm"
	kTrips      = "vehicle.vehicle.tripCount"
	kLat        = "vehicle.cabin.infotainment.navigation.currentLocation.latitude"
	kLon        = "vehicle.cabin.infotainment.navigation.currentLocation.longitude"
)

var demoContainers = []demoContainer{
	{provider: "Demo Insurance AG", name: PAYD, purposeCode: "insurance_usage", end: containers.Approved,
		purpose: "Your premium follows how much you drive: we read the mileage and the average distance per week, and the position to rate the region you mostly drive in.",
		keys:    []string{kMileage, kWeeklyLong, kLat, kLon}},
	{provider: "Demo Insurance AG", name: "Mileage check", purposeCode: "insurance_usage", end: containers.Approved,
		purpose: "We check the yearly mileage you declared for your motor insurance once a month, so you never pay for kilometres you did not drive.",
		keys:    []string{kMileage, kWeekly, kTrips}},
	{provider: "Demo Insurance AG", name: "Legacy tariff", purposeCode: "insurance_usage", end: containers.Deprecated,
		purpose: "The mileage-based tariff sold until 2024: the premium is recalculated each quarter from the mileage your car reports.",
		keys:    []string{kMileage}},
	{provider: "Demo Insurance AG", name: "Winter campaign 2024", purposeCode: "insurance_usage", end: containers.Withdrawn,
		reason:  "The campaign has ended.",
		purpose: "A winter discount for drivers who drive less than 200 km per week from December to February, checked from the weekly distance.",
		keys:    []string{kWeekly}},
	{provider: "Demo Insurance AG", name: "Driving style bonus", purposeCode: "insurance_usage", end: containers.Submitted, approvals: 1,
		purpose: "A bonus of up to 20 percent for calm driving, computed from harsh braking, harsh acceleration and the share of night driving per trip.",
		keys: []string{kMileage, "vehicle.trip.segment.harshBrakingCount", "vehicle.trip.segment.harshAccelerationCount",
			"vehicle.trip.segment.nightDrivingShare"}},
	{provider: "Demo Insurance AG", name: "Telematics tariff 2026", purposeCode: "insurance_usage", end: containers.Draft,
		purpose: "The tariff planned for 2026: the premium follows mileage and fuel consumption as a measure of engine load.",
		keys:    []string{kMileage, "vehicle.drivetrain.avgFuelConsumption"}},
	{provider: "Demo Insurance AG", name: "Claims hotline", purposeCode: "roadside_assistance", end: containers.Rejected,
		reason:  "The vehicle speed is not needed to assist after a breakdown, and door status is unrelated to a claim; remove them and submit a new version.",
		purpose: "When you call our claims hotline we see where your car is and whether it is still moving, to send help faster.",
		keys:    []string{kLat, kLon, "vehicle.vehicle.speed", "vehicle.cabin.door.status"}},
	{provider: "Garage Dupont SAS", name: "Service reminders", purposeCode: "maintenance_repair", end: containers.Approved,
		purpose: "We remind you when your car's next service or inspection is due and offer you an appointment at our workshop in Lyon.",
		keys: []string{kMileage, "vehicle.status.serviceDistance.next", "vehicle.status.serviceTime.next",
			"vehicle.status.checkControlMessages", "vehicle.drivetrain.engine.oil.level"}},
	{provider: "Stockholm Bilservice AB", name: "Service booking", purposeCode: "maintenance_repair", end: containers.Approved,
		purpose: "Book the service your car reports as due directly with our workshop; we read the service due dates and the mileage.",
		keys:    []string{kMileage, "vehicle.status.serviceDue", "vehicle.status.conditionBasedServices"}},
	{provider: "Brussels Roadside SA", name: "Breakdown help", purposeCode: "roadside_assistance", end: containers.Submitted,
		purpose: "After a breakdown call from your car we see where it stands and which warnings it shows, and send the right help.",
		keys:    []string{"vehicle.status.breakdownCall", kLat, kLon, "vehicle.status.checkControlMessages"}},
	{provider: "Helsinki Fleet Oy", name: "Fleet logbook", purposeCode: "mileage_logbook", end: containers.Draft,
		purpose: "An automatic logbook for company cars: the mileage at the end of each trip and the number of trips, for tax records.",
		keys:    []string{kMileage, kTrips, "vehicle.trip.segment.end.travelledDistance"}},
}

// demoConsent loads containers in every state, demo customers' passwords
// and consents in every state, the demo insurer's granted consents, and a
// few deliveries so the transaction reports have lines.
func (a loader) demoConsent(ctx context.Context, out io.Writer) error {
	cs, ct := a.Consents, a.Containers
	d := &consentDemo{a: a, cs: cs, ct: ct, out: out, now: time.Now().UTC()}
	var err error
	if d.pm1, err = d.staffCtx(ctx, "manager@demo.local"); err != nil {
		return err
	}
	if d.pm2, err = d.staffCtx(ctx, "manager2@demo.local"); err != nil {
		return err
	}
	ids := map[string]int64{}
	for _, dc := range demoContainers {
		id, err := d.container(ctx, dc)
		if err != nil {
			return fmt.Errorf("container %q: %w", dc.name, err)
		}
		ids[dc.name] = id
	}
	if err := d.passwords(ctx); err != nil {
		return err
	}
	if err := d.showcase(ctx, ids); err != nil {
		return err
	}
	if err := d.insurerFleet(ctx, ids[PAYD]); err != nil {
		return err
	}
	if _, err := cs.ExpireDue(policies.WithPrincipal(ctx, policies.System("demo")), 1000); err != nil {
		return err
	}
	return d.deliveries(ctx)
}

type consentDemo struct {
	a        loader
	cs       *consent.Service
	ct       *containers.Service
	out      io.Writer
	now      time.Time
	pm1, pm2 context.Context
}

func (d *consentDemo) staffCtx(ctx context.Context, email string) (context.Context, error) {
	u, err := d.a.Staff.FindByEmail(ctx, email)
	if err != nil {
		return nil, fmt.Errorf("demo staff %s: %w", email, err)
	}
	return policies.WithPrincipal(ctx, u.Principal(0)), nil
}

func (d *consentDemo) providerCtx(ctx context.Context, name string) (context.Context, int64, error) {
	var row struct {
		ID           int64
		ContactEmail string
	}
	if err := d.a.DB.WithContext(ctx).Raw("SELECT id, contact_email FROM providers WHERE legal_name = ? ORDER BY id DESC LIMIT 1", name).
		Scan(&row).Error; err != nil {
		return nil, 0, err
	}
	if row.ID == 0 {
		return nil, 0, fmt.Errorf("demo provider %q missing (the onboarding step runs first)", name)
	}
	p := &policies.Principal{Kind: policies.KindProvider, Name: "demo (" + name + ")", Email: row.ContactEmail,
		Roles: []string{"provider_admin"}, ProviderID: row.ID}
	return policies.WithPrincipal(ctx, p), row.ID, nil
}

// container creates one demo container and walks it to its end state.
func (d *consentDemo) container(ctx context.Context, dc demoContainer) (int64, error) {
	pctx, pid, err := d.providerCtx(ctx, dc.provider)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := d.a.DB.WithContext(ctx).Raw("SELECT container_id FROM container_versions WHERE provider_id = ? AND name = ? ORDER BY id LIMIT 1",
		pid, dc.name).Scan(&id).Error; err != nil {
		return 0, err
	}
	if id != 0 {
		return id, nil
	}
	v, err := d.ct.Create(pctx, pid, containers.Input{Name: dc.name, Purpose: dc.purpose, PurposeCode: dc.purposeCode, Keys: dc.keys,
		Submit: dc.end != containers.Draft})
	if err != nil {
		return 0, err
	}
	switch dc.end {
	case containers.Submitted:
		if dc.approvals > 0 {
			if _, _, err := d.ct.Approve(d.pm1, v.ID); err != nil {
				return 0, err
			}
		}
	case containers.Rejected:
		if _, err := d.ct.Reject(d.pm2, v.ID, dc.reason); err != nil {
			return 0, err
		}
	case containers.Approved, containers.Deprecated, containers.Withdrawn:
		// Deprecated and withdrawn ones are approved now and ended after
		// customers have consented (showcase).
		for i, pm := range []context.Context{d.pm1, d.pm2} {
			if i >= v.ApprovalsRequired {
				break
			}
			if _, _, err := d.ct.Approve(pm, v.ID); err != nil {
				return 0, err
			}
		}
	}
	fmt.Fprintf(d.out, "demo: data container %q of %s (%s)\n", dc.name, dc.provider, dc.end)
	return v.ContainerID, nil
}

// passwords gives every demo customer the demo password (one hash for all:
// hashing a thousand passwords would make the demo slow).
func (d *consentDemo) passwords(ctx context.Context) error {
	var ids []int64
	if err := d.a.DB.WithContext(ctx).Raw(`SELECT id FROM customer_accounts WHERE (email LIKE 'customer%@demo.local' OR email = ?)
		AND id NOT IN (SELECT account_id FROM customer_credentials)`, AnnaEmail).Scan(&ids).Error; err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), d.a.Cfg.BcryptCost)
	if err != nil {
		return err
	}
	if err := d.cs.SetCustomerPasswordHashes(ctx, string(hash), ids); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "demo: %d customers can sign in at /my with password %s (e.g. %s, %s)\n", len(ids), Password, Customer1Email, AnnaEmail)
	return nil
}

func (d *consentDemo) customerCtx(ctx context.Context, email string) (context.Context, int64, error) {
	var id int64
	if err := d.a.DB.WithContext(ctx).Raw("SELECT id FROM customer_accounts WHERE lower(email) = lower(?)", email).Scan(&id).Error; err != nil {
		return nil, 0, err
	}
	if id == 0 {
		return nil, 0, nil
	}
	c, err := d.cs.FindCustomer(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	return policies.WithPrincipal(ctx, c.Principal(0)), id, nil
}

// at returns a consent service whose clock shows t (for states that need
// time to pass: unanswered requests, reached end dates).
func (d *consentDemo) at(t time.Time) *consent.Service {
	s := *d.cs
	s.Now = func() time.Time { return t }
	return &s
}

func (d *consentDemo) request(ctx context.Context, s *consent.Service, provider string, containerID int64, vin string, end *time.Time) (*consent.Consent, error) {
	pctx, pid, err := d.providerCtx(ctx, provider)
	if err != nil {
		return nil, err
	}
	return s.Request(pctx, pid, consent.NewRequest{VIN: vin, ContainerID: containerID, EndsAt: end})
}

// showcase gives customer1 a BMW in Germany with consents in every state,
// and Anna a grant, so /my shows each of them.
func (d *consentDemo) showcase(ctx context.Context, ids map[string]int64) error {
	cctx, accountID, err := d.customerCtx(ctx, Customer1Email)
	if err != nil || accountID == 0 {
		return err // no customer1: the vehicles step did not run
	}
	vin := demoVIN("WBA", "8E91C", 900001)
	sys := policies.WithPrincipal(ctx, policies.System("demo"))
	if _, err := d.a.Vehicles.FindByVIN(ctx, vin); errs.KindOf(err) == errs.NotFound {
		if _, err := d.a.Vehicles.RegisterVehicle(sys, vehicles.NewVehicle{VIN: vin, Brand: "BMW", Model: "330e", Drivetrain: "phev",
			Market: "DE", TelematicsCapable: true, SIMActive: true}); err != nil {
			return err
		}
		if err := d.a.Vehicles.AssignHolder(sys, vin, accountID, vehicles.RolePrimary); err != nil {
			return err
		}
		if _, err := d.a.Vehicles.Subscribe(sys, vin, vehicles.NewSubscription{Service: "cd_basic", StartsAt: d.now.AddDate(-1, 0, 0)}); err != nil {
			return err
		}
		// A day of readings, so the grant below has data to deliver and
		// customer1's transaction report has transfers naming their keys.
		car := ingest.NewFleet([]string{vin}, []string{"phev"}, nil, 13)
		car.LateShare = 0
		for at := d.now.Add(-24 * time.Hour); !at.After(d.now); at = at.Add(2 * time.Hour) {
			if _, err := d.a.demoSend(ctx, car, 1, at); err != nil {
				return err
			}
		}
	} else if err != nil {
		return err
	}
	var n int64
	if err := d.a.DB.WithContext(ctx).Raw("SELECT count(*) FROM consents WHERE vin = ?", vin).Scan(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return nil // already there
	}
	day := 24 * time.Hour
	old, older := d.at(d.now.Add(-40*day)), d.at(d.now.Add(-70*day))
	steps := []struct {
		what string
		run  func() error
	}{
		{"an expired request and a revoked grant (Service reminders)", func() error {
			if _, err := d.request(ctx, old, "Garage Dupont SAS", ids["Service reminders"], vin, nil); err != nil {
				return err
			}
			if _, err := d.cs.ExpireDue(sys, 1000); err != nil {
				return err
			}
			k, err := d.request(ctx, d.cs, "Garage Dupont SAS", ids["Service reminders"], vin, nil)
			if err != nil {
				return err
			}
			if err := d.cs.Grant(cctx, accountID, k.ID, nil); err != nil {
				return err
			}
			return d.cs.Revoke(cctx, accountID, k.ID)
		}},
		{"a denied request (Service booking)", func() error {
			k, err := d.request(ctx, d.cs, "Stockholm Bilservice AB", ids["Service booking"], vin, nil)
			if err != nil {
				return err
			}
			return d.cs.Deny(cctx, accountID, k.ID)
		}},
		{"a grant that reached its end date (Legacy tariff)", func() error {
			end := d.now.Add(-10 * day)
			k, err := d.request(ctx, older, "Demo Insurance AG", ids["Legacy tariff"], vin, &end)
			if err != nil {
				return err
			}
			return older.Grant(cctx, accountID, k.ID, nil)
		}},
		{"a grant ended by the container's withdrawal (Winter campaign 2024)", func() error {
			k, err := d.request(ctx, d.cs, "Demo Insurance AG", ids["Winter campaign 2024"], vin, nil)
			if err != nil {
				return err
			}
			return d.cs.Grant(cctx, accountID, k.ID, nil)
		}},
		{"a grant carried over to version 2 (Mileage check)", func() error {
			k, err := d.request(ctx, d.cs, "Demo Insurance AG", ids["Mileage check"], vin, nil)
			if err != nil {
				return err
			}
			return d.cs.Grant(cctx, accountID, k.ID, nil)
		}},
		{"an open request (Pay-as-you-drive)", func() error {
			_, err := d.request(ctx, d.cs, "Demo Insurance AG", ids[PAYD], vin, nil)
			return err
		}},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			return fmt.Errorf("showcase %s: %w", st.what, err)
		}
	}
	// customer1's MINI registered in Norway is not eligible (MINI outside
	// the EU): no consent can be asked for it, and /my says why.
	if _, err := d.request(ctx, d.cs, "Demo Insurance AG", ids[PAYD], MININorway, nil); err == nil {
		return fmt.Errorf("a consent request for the MINI in Norway %s was accepted", MININorway)
	} else if !errs.Is(err, consent.ErrVehicleNotEligible) && errs.KindOf(err) != errs.Invalid {
		return err
	}
	// Anna grants the mileage check for her BMW in Austria.
	if actx, annaID, err := d.customerCtx(ctx, AnnaEmail); err == nil && annaID != 0 {
		if k, err := d.request(ctx, d.cs, "Demo Insurance AG", ids["Mileage check"], AnnaVIN, nil); err == nil {
			if err := d.cs.Grant(actx, annaID, k.ID, nil); err != nil {
				return err
			}
		}
	}
	if err := d.endContainers(ctx, ids); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "demo: %s (BMW 330e %s, DE) has consents in every state\n", Customer1Email, vin)
	return nil
}

// endContainers gives Mileage check a version 2 that only removes a key
// (consents carry over), deprecates Legacy tariff and withdraws Winter
// campaign 2024 (its consents end).
func (d *consentDemo) endContainers(ctx context.Context, ids map[string]int64) error {
	pctx, pid, err := d.providerCtx(ctx, "Demo Insurance AG")
	if err != nil {
		return err
	}
	mc, err := d.ct.FindContainer(ctx, pid, ids["Mileage check"])
	if err != nil {
		return err
	}
	if len(mc.Versions) == 1 {
		cur := mc.Current()
		v2, err := d.ct.NewVersion(pctx, pid, mc.ID, containers.Input{Name: cur.Name, PurposeCode: cur.PurposeCode, Submit: true,
			Purpose: cur.Purpose, Keys: []string{kMileage, kWeekly}})
		if err != nil {
			return err
		}
		if _, _, err := d.ct.Approve(d.pm2, v2.ID); err != nil {
			return err
		}
	}
	for name, steps := range map[string][]containers.Action{
		"Legacy tariff":        {containers.ActDeprecate},
		"Winter campaign 2024": {containers.ActDeprecate, containers.ActWithdraw},
	} {
		c, err := d.ct.FindContainer(ctx, pid, ids[name])
		if err != nil {
			return err
		}
		v := c.Current()
		for _, a := range steps {
			switch {
			case a == containers.ActDeprecate && v.State == containers.Approved:
				v, err = d.ct.Deprecate(pctx, pid, v.ID, "")
			case a == containers.ActWithdraw && v.State == containers.Deprecated:
				v, err = d.ct.Withdraw(pctx, pid, v.ID, "The campaign has ended.")
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// insurerFleet grants the demo insurer Pay-as-you-drive consents for
// InsurerConsents eligible vehicles in markets it covers.
func (d *consentDemo) insurerFleet(ctx context.Context, payd int64) error {
	var rows []struct {
		VIN   string `gorm:"column:vin"`
		Email string
	}
	err := d.a.DB.WithContext(ctx).Raw(`SELECT v.vin, a.email FROM vehicles v
		JOIN vehicle_holders h ON h.vehicle_id = v.id AND h.role = 'primary'
		JOIN customer_accounts a ON a.id = h.account_id
		WHERE v.telematics_capable AND v.sim_active AND v.market IN ('DE','AT','FR','IT') AND v.vin NOT IN (?, ?)
		  AND lower(a.email) NOT IN (?, ?)
		  AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.vehicle_id = v.id AND c.container_id = ?)
		ORDER BY v.vin LIMIT ?`, AnnaVIN, demoVIN("WBA", "8E91C", 900001), Customer1Email, AnnaEmail, payd,
		InsurerConsents).Scan(&rows).Error
	if err != nil {
		return err
	}
	var have int64
	if err := d.a.DB.WithContext(ctx).Raw("SELECT count(*) FROM consents WHERE container_id = ? AND state = 'granted'", payd).Scan(&have).Error; err != nil {
		return err
	}
	granted := 0
	for _, r := range rows {
		if int(have)+granted >= InsurerConsents {
			break
		}
		cctx, accountID, err := d.customerCtx(ctx, r.Email)
		if err != nil {
			return err
		}
		k, err := d.request(ctx, d.cs, "Demo Insurance AG", payd, r.VIN, nil)
		if errs.Is(err, consent.ErrVehicleNotEligible) {
			continue // e.g. no connected service for the container's keys
		}
		if err != nil {
			return err
		}
		if err := d.cs.Grant(cctx, accountID, k.ID, nil); err != nil {
			return err
		}
		granted++
	}
	if granted > 0 {
		fmt.Fprintf(d.out, "demo: %s granted %q to the demo insurer for %d more vehicles\n", "customers", PAYD, granted)
	}
	return nil
}

// deliveries records a few transfers for the showcase customers' grants in
// the delivery ledger (as the provider API would), so their transaction
// reports have lines. Request ids make this idempotent.
func (d *consentDemo) deliveries(ctx context.Context) error {
	var grants []struct {
		ID          int64
		ProviderID  int64
		VIN         string `gorm:"column:vin"`
		ContainerID int64
		Version     int
		Keys        sqlarray.Int16s // the container's keys the vehicle has values for: what a read delivers
	}
	err := d.a.DB.WithContext(ctx).Raw(`SELECT c.id, c.provider_id, c.vin, c.container_id, cv.version,
			ARRAY(SELECT k.key_id FROM container_version_keys k JOIN vehicles v ON v.vin = c.vin
				JOIN vehicle_latest_values l ON l.vehicle_id = v.id AND l.key_id = k.key_id
				WHERE k.version_id = cv.id ORDER BY k.key_id) AS keys
		FROM consents c JOIN container_versions cv ON cv.id = c.container_version_id
		JOIN customer_accounts a ON a.id = c.account_id
		WHERE lower(a.email) IN (?, ?) AND c.state = 'granted'`,
		Customer1Email, AnnaEmail).Scan(&grants).Error
	if err != nil {
		return err
	}
	t0 := time.Now().UTC() // after every grant above: no transfer before its consent
	for _, g := range grants {
		// A grant whose vehicle sends nothing (e.g. one from an older demo
		// for the MINI in Norway) would never see a delivery.
		why, err := d.cs.WhyNoData(ctx, g.VIN)
		if err != nil {
			return err
		}
		if len(why) > 0 {
			continue
		}
		for i := 0; i < 3; i++ {
			err := billing.Ledger{}.Record(ctx, d.a.DB, billing.Delivery{ProviderID: g.ProviderID, VIN: g.VIN, ContainerID: g.ContainerID,
				ContainerVersion: g.Version, ConsentID: g.ID, Kind: billing.KindPull, KeyIDs: g.Keys, Bytes: 420,
				RequestID: fmt.Sprintf("demo-consent-%d-%d", g.ID, i), At: t0.Add(time.Duration(i) * time.Millisecond)})
			if err != nil && !errors.Is(err, billing.ErrNotBillable) {
				return err
			}
		}
	}
	return nil
}
