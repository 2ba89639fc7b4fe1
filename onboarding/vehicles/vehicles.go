// Package vehicles is the vehicle registry: vehicles (VIN, brand, model,
// market of registration, telematics hardware), the customer accounts that
// hold them (one primary holder, optional secondary users), their
// connected-service subscriptions, and the capability service that says, per
// VIN and point in time, which keys can be had and how often.
//
// The registry is fed by the manufacturer's systems (here: the demo loader
// and ImportFleet); staff only look vehicles up.
package vehicles

import (
	"context"
	"errors"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/onboarding/catalog"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// Brands.
const (
	BMW  = "BMW"
	MINI = "MINI"
)

// Brands lists the brands CarData serves.
var Brands = []string{BMW, MINI}

// Holder roles.
const (
	RolePrimary   = "primary"
	RoleSecondary = "secondary"
)

// Vehicle is one registered vehicle.
type Vehicle struct {
	ID                int64  `gorm:"column:id;primaryKey"`
	VIN               string `gorm:"column:vin"`
	Brand             string `gorm:"column:brand"`
	Model             string `gorm:"column:model"`
	Drivetrain        string `gorm:"column:drivetrain"`
	Market            string `gorm:"column:market"`
	TelematicsCapable bool   `gorm:"column:telematics_capable"`
	SIMActive         bool   `gorm:"column:sim_active"`
	// SandboxProviderID names the provider whose simulated fleet the
	// vehicle belongs to; nil for every real vehicle.
	SandboxProviderID *int64    `gorm:"column:sandbox_provider_id"`
	CreatedAt         time.Time `gorm:"column:created_at"`
	UpdatedAt         time.Time `gorm:"column:updated_at"`
}

func (Vehicle) TableName() string { return "vehicles" }

// Account is a customer account (a vehicle owner or user).
type Account struct {
	ID        int64     `gorm:"column:id;primaryKey"`
	Email     string    `gorm:"column:email"`
	Name      string    `gorm:"column:name"`
	CreatedAt time.Time `gorm:"column:created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

func (Account) TableName() string { return "customer_accounts" }

// Holder maps an account to a vehicle.
type Holder struct {
	VehicleID int64     `gorm:"column:vehicle_id;primaryKey"`
	AccountID int64     `gorm:"column:account_id;primaryKey"`
	Role      string    `gorm:"column:role"`
	CreatedAt time.Time `gorm:"column:created_at"`
	Email     string    `gorm:"->;column:email"` // read from the joined account
	Name      string    `gorm:"->;column:name"`
}

func (Holder) TableName() string { return "vehicle_holders" }

// Subscription is a booked connected service, valid in [StartsAt, EndsAt).
type Subscription struct {
	ID        int64      `gorm:"column:id;primaryKey"`
	VehicleID int64      `gorm:"column:vehicle_id"`
	Service   string     `gorm:"column:service"`
	StartsAt  time.Time  `gorm:"column:starts_at"`
	EndsAt    *time.Time `gorm:"column:ends_at"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	// ExternalRef is the manufacturer's reference of the booking (master
	// data API); nil for bookings made by hand or imported.
	ExternalRef *string `gorm:"column:external_ref"`
}

func (Subscription) TableName() string { return "service_subscriptions" }

// ActiveAt reports whether the subscription is valid at t.
func (s *Subscription) ActiveAt(t time.Time) bool {
	return !t.Before(s.StartsAt) && (s.EndsAt == nil || t.Before(*s.EndsAt))
}

// State is "active", "future" or "expired" at t.
func (s *Subscription) State(t time.Time) string {
	switch {
	case t.Before(s.StartsAt):
		return "future"
	case s.EndsAt != nil && !t.Before(*s.EndsAt):
		return "expired"
	}
	return "active"
}

// ServiceName is the display name of the subscribed service.
func (s *Subscription) ServiceName() string {
	if cs, ok := ServiceByCode(s.Service); ok {
		return cs.Name
	}
	return s.Service
}

// Service is the registry.
type Service struct {
	DB      *gorm.DB
	Catalog *catalog.Catalog
	Now     func() time.Time // nil: time.Now
	// FormerOwnerConsents ends the consents of customers who no longer hold
	// their vehicle as primary holder (the consent module's expiry, wired in
	// by the app); see EndFormerOwnersConsents.
	FormerOwnerConsents func(ctx context.Context) (int, error)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) cat() *catalog.Catalog {
	if s.Catalog != nil {
		return s.Catalog
	}
	return catalog.Default()
}

// NewAccount is the input of CreateAccount.
type NewAccount struct {
	Email string
	Name  string
}

func (in *NewAccount) normalize() error {
	in.Email, in.Name = strings.TrimSpace(in.Email), strings.TrimSpace(in.Name)
	var v errs.Validation
	if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
		v.Add("email", "email_invalid", "enter an e-mail address such as anna@example.com")
	}
	if in.Name == "" || len(in.Name) > 200 {
		v.Add("name", "name_required", "enter the account holder's name (at most 200 characters)")
	}
	return v.Err()
}

// CreateAccount registers a customer account.
func (s *Service) CreateAccount(ctx context.Context, in NewAccount) (*Account, error) {
	if err := in.normalize(); err != nil {
		return nil, err
	}
	a := &Account{Email: in.Email, Name: in.Name}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(a).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "account_exists", "an account with the e-mail %s already exists", in.Email)
			}
			return errs.Wrap(err, "create account")
		}
		return audit.Recordf(ctx, tx, "customer_account.create", "customer_account", strconv.FormatInt(a.ID, 10), "created account %s", a.Email)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// FindAccountByEmail finds an account (e-mail compared case-insensitively).
func (s *Service) FindAccountByEmail(ctx context.Context, email string) (*Account, error) {
	var a Account
	err := s.DB.WithContext(ctx).Where("lower(email) = lower(?)", strings.TrimSpace(email)).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errs.New(errs.NotFound, "account_not_found", "no customer account with that e-mail")
	}
	if err != nil {
		return nil, errs.Wrap(err, "find account")
	}
	return &a, nil
}

// NewVehicle is the input of RegisterVehicle.
type NewVehicle struct {
	VIN               string
	Brand             string
	Model             string
	Drivetrain        string // combustion, phev, bev
	Market            string // ISO 3166-1 alpha-2 of registration
	TelematicsCapable bool
	SIMActive         bool
}

// normalize cleans the input and validates it. The market may be any
// country code: a vehicle registered outside the supported markets exists in
// the registry but is not eligible (see Capabilities).
func (in *NewVehicle) normalize() error {
	in.VIN = policies.NormalizeVIN(in.VIN)
	in.Brand = strings.ToUpper(strings.TrimSpace(in.Brand))
	in.Model = strings.TrimSpace(in.Model)
	in.Drivetrain = strings.ToLower(strings.TrimSpace(in.Drivetrain))
	in.Market = strings.ToUpper(strings.TrimSpace(in.Market))
	var v errs.Validation
	ValidateVIN(&v, "vin", in.VIN)
	if !slices.Contains(Brands, in.Brand) {
		v.Add("brand", "brand_invalid", "brand must be BMW or MINI")
	}
	if in.Model == "" || len(in.Model) > 100 {
		v.Add("model", "model_required", "enter the model (at most 100 characters)")
	}
	if !slices.Contains(catalog.Drivetrains, in.Drivetrain) {
		v.Add("drivetrain", "drivetrain_invalid", "drive train must be combustion, phev or bev")
	}
	if len(in.Market) != 2 || in.Market[0] < 'A' || in.Market[0] > 'Z' || in.Market[1] < 'A' || in.Market[1] > 'Z' {
		v.Add("market", "market_invalid", "market is the two-letter country code of registration, such as AT")
	}
	return v.Err()
}

// RegisterVehicle adds a vehicle to the registry.
func (s *Service) RegisterVehicle(ctx context.Context, in NewVehicle) (*Vehicle, error) {
	if err := in.normalize(); err != nil {
		return nil, err
	}
	v := &Vehicle{VIN: in.VIN, Brand: in.Brand, Model: in.Model, Drivetrain: in.Drivetrain, Market: in.Market,
		TelematicsCapable: in.TelematicsCapable, SIMActive: in.SIMActive}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(v).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "vin_exists", "vehicle %s is already registered", in.VIN)
			}
			return errs.Wrap(err, "register vehicle")
		}
		return audit.Recordf(ctx, tx, "vehicle.register", "vehicle", v.VIN,
			"registered %s %s (%s) in %s", v.Brand, v.Model, v.Drivetrain, v.Market)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// FindByVIN finds a vehicle; a malformed VIN is a validation error, an
// unknown one not found.
func (s *Service) FindByVIN(ctx context.Context, vin string) (*Vehicle, error) {
	return s.findByVIN(s.DB.WithContext(ctx), vin, false)
}

func (s *Service) findByVIN(tx *gorm.DB, vin string, lock bool) (*Vehicle, error) {
	vin = policies.NormalizeVIN(vin)
	var val errs.Validation
	ValidateVIN(&val, "vin", vin)
	if err := val.Err(); err != nil {
		return nil, err
	}
	q := tx.Where("vin = ?", vin)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var v Vehicle
	err := q.Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, s.unknownVIN(vin)
	}
	if err != nil {
		return nil, errs.Wrap(err, "find vehicle")
	}
	return &v, nil
}

// unknownVIN is the answer for a VIN the registry does not know.
func (s *Service) unknownVIN(vin string) error {
	return errs.New(errs.NotFound, "vehicle_not_found", "no vehicle with VIN %s", vin)
}

// AssignHolder maps an account to a vehicle as primary holder or secondary
// user. A vehicle has at most one primary holder; replacing one means
// removing it first (a change of owner ends the old owner's consents, which
// the consent module reacts to).
func (s *Service) AssignHolder(ctx context.Context, vin string, accountID int64, role string) error {
	if role != RolePrimary && role != RoleSecondary {
		var v errs.Validation
		v.Add("role", "role_invalid", "role must be primary or secondary")
		return v.Err()
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, vin, true)
		if err != nil {
			return err
		}
		var acc Account
		if err := tx.Take(&acc, accountID).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errs.New(errs.NotFound, "account_not_found", "no customer account %d", accountID)
			}
			return errs.Wrap(err, "find account")
		}
		var holders []Holder
		if err := tx.Where("vehicle_id = ?", v.ID).Find(&holders).Error; err != nil {
			return errs.Wrap(err, "holders")
		}
		for _, h := range holders {
			switch {
			case h.AccountID == accountID && h.Role == role:
				return nil
			case h.AccountID == accountID:
				return errs.New(errs.Conflict, "holder_exists", "%s already holds this vehicle as %s user; remove that first", acc.Email, errs.Term(h.Role))
			case role == RolePrimary && h.Role == RolePrimary:
				return errs.New(errs.Conflict, "primary_holder_exists", "vehicle %s already has a primary holder; remove it first", v.VIN)
			}
		}
		if err := tx.Create(&Holder{VehicleID: v.ID, AccountID: accountID, Role: role}).Error; err != nil {
			return errs.Wrap(err, "assign holder")
		}
		return audit.Recordf(ctx, tx, "vehicle.holder_assign", "vehicle", v.VIN, "%s is now %s holder", acc.Email, errs.Term(role))
	})
}

// RemoveHolder ends an account's mapping to a vehicle.
func (s *Service) RemoveHolder(ctx context.Context, vin string, accountID int64) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, vin, true)
		if err != nil {
			return err
		}
		res := tx.Where("vehicle_id = ? AND account_id = ?", v.ID, accountID).Delete(&Holder{})
		if res.Error != nil {
			return errs.Wrap(res.Error, "remove holder")
		}
		if res.RowsAffected == 0 {
			return errs.New(errs.NotFound, "holder_not_found", "that account does not hold vehicle %s", v.VIN)
		}
		return audit.Recordf(ctx, tx, "vehicle.holder_remove", "vehicle", v.VIN, "account %d no longer holds the vehicle", accountID)
	})
}

// Holders lists who holds a vehicle, primary first.
func (s *Service) Holders(ctx context.Context, vehicleID int64) ([]Holder, error) {
	var out []Holder
	err := s.DB.WithContext(ctx).Table("vehicle_holders h").
		Select("h.vehicle_id, h.account_id, h.role, h.created_at, a.email, a.name").
		Joins("JOIN customer_accounts a ON a.id = h.account_id").
		Where("h.vehicle_id = ?", vehicleID).Order("h.role, a.email").Scan(&out).Error
	return out, errs.Wrap(err, "holders")
}

// VehiclesOfAccount lists the vehicles an account holds (any role).
func (s *Service) VehiclesOfAccount(ctx context.Context, accountID int64) ([]Vehicle, error) {
	var out []Vehicle
	err := s.DB.WithContext(ctx).Where("id IN (SELECT vehicle_id FROM vehicle_holders WHERE account_id = ?)", accountID).
		Order("vin").Find(&out).Error
	return out, errs.Wrap(err, "vehicles of account")
}

// NewSubscription is the input of Subscribe.
type NewSubscription struct {
	Service  string
	StartsAt time.Time
	EndsAt   *time.Time // nil: open-ended
}

// Subscribe books a connected service for a vehicle. Subscriptions of the
// same service may follow each other but not overlap.
func (s *Service) Subscribe(ctx context.Context, vin string, in NewSubscription) (*Subscription, error) {
	var sub *Subscription
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, vin, true)
		if err != nil {
			return err
		}
		sub, err = s.subscribe(ctx, tx, v, in)
		return err
	})
	return sub, err
}

func (s *Service) subscribe(ctx context.Context, tx *gorm.DB, v *Vehicle, in NewSubscription) (*Subscription, error) {
	sub, err := s.insertSubscription(tx, v, in)
	if err != nil {
		return nil, err
	}
	cs, _ := ServiceByCode(sub.Service)
	start, end := sub.StartsAt, sub.EndsAt
	if end != nil {
		return sub, audit.Recordf(ctx, tx, "vehicle.subscribe", "vehicle", v.VIN,
			"booked %s from %s, until %s", cs.Name, start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return sub, audit.Recordf(ctx, tx, "vehicle.subscribe", "vehicle", v.VIN,
		"booked %s from %s, open-ended", cs.Name, start.Format(time.RFC3339))
}

// EndSubscription ends a subscription at `at` (a cancellation takes effect
// then; at must lie within the subscription).
func (s *Service) EndSubscription(ctx context.Context, id int64, at time.Time) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sub Subscription
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&sub, id).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errs.New(errs.NotFound, "subscription_not_found", "no subscription %d", id)
			}
			return errs.Wrap(err, "find subscription")
		}
		at = at.UTC()
		if !at.After(sub.StartsAt) || (sub.EndsAt != nil && !at.Before(*sub.EndsAt)) {
			return errs.New(errs.Conflict, "subscription_not_running", "the subscription does not run at %s", at.Format(time.RFC3339))
		}
		if err := tx.Model(&sub).Update("ends_at", at).Error; err != nil {
			return errs.Wrap(err, "end subscription")
		}
		var vin string
		if err := tx.Model(&Vehicle{}).Where("id = ?", sub.VehicleID).Pluck("vin", &vin).Error; err != nil {
			return errs.Wrap(err, "vin")
		}
		return audit.Recordf(ctx, tx, "vehicle.unsubscribe", "vehicle", vin,
			"%s ends %s", sub.ServiceName(), at.Format(time.RFC3339))
	})
}

// Subscriptions lists a vehicle's subscriptions, newest start first.
func (s *Service) Subscriptions(ctx context.Context, vehicleID int64) ([]Subscription, error) {
	var out []Subscription
	err := s.DB.WithContext(ctx).Where("vehicle_id = ?", vehicleID).Order("starts_at DESC, id DESC").Find(&out).Error
	return out, errs.Wrap(err, "subscriptions")
}

// Filter narrows Search.
type Filter struct {
	Query  string // VIN or its start, model, or a holder's e-mail
	Brand  string
	Market string
	// Order is the list's sort (Sort); the zero value is by VIN.
	Order  listsort.Order
	Offset int
	Limit  int
}

// Sort is the vehicle list's sort whitelist.
var Sort = listsort.Spec{
	Columns: map[string]string{
		"vin":        "vin",
		"brand":      "brand",
		"model":      "lower(model)",
		"drive":      "drivetrain",
		"market":     "market",
		"telematics": "telematics_capable",
		"sim":        "sim_active",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "vin"},
}

// Search lists vehicles matching f, by VIN, and the total.
func (s *Service) Search(ctx context.Context, f Filter) ([]Vehicle, int64, error) {
	q := s.DB.WithContext(ctx).Model(&Vehicle{}).Where("sandbox_provider_id IS NULL") // simulated fleets are the providers' sandboxes
	if t := strings.TrimSpace(f.Query); t != "" {
		like := escapeLike(t) + "%"
		q = q.Where("vin LIKE ? OR model ILIKE ? OR id IN (SELECT h.vehicle_id FROM vehicle_holders h JOIN customer_accounts a ON a.id = h.account_id WHERE lower(a.email) LIKE lower(?))",
			escapeLike(policies.NormalizeVIN(t))+"%", "%"+escapeLike(t)+"%", like)
	}
	if f.Brand != "" {
		q = q.Where("brand = ?", f.Brand)
	}
	if f.Market != "" {
		q = q.Where("market = ?", strings.ToUpper(f.Market))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count vehicles")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 25
	}
	var out []Vehicle
	err := q.Order(Sort.SQL(f.Order)).Offset(f.Offset).Limit(f.Limit).Find(&out).Error
	return out, total, errs.Wrap(err, "search vehicles")
}

// FindVINs lists up to limit real vehicles whose VIN starts with prefix
// (any case), by VIN, and whether there are more. The VIN's unique index
// serves it as a range scan (measured: 300,000 vehicles, 0.04 ms against
// 70 ms for LIKE alone and 430 ms for Search's combined filter), so the
// header's search can ask it on every query. A prefix with characters no
// VIN has finds nothing without asking the database.
func (s *Service) FindVINs(ctx context.Context, prefix string, limit int) ([]Vehicle, bool, error) {
	prefix = policies.NormalizeVIN(prefix)
	if prefix == "" || len(prefix) > 17 || strings.IndexFunc(prefix, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z') || r == 'I' || r == 'O' || r == 'Q'
	}) >= 0 {
		return nil, false, nil
	}
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	var out []Vehicle
	err := s.DB.WithContext(ctx).Model(&Vehicle{}).
		Where("vin >= ? AND vin <= ? AND vin LIKE ? AND sandbox_provider_id IS NULL", prefix, prefix+strings.Repeat("Z", 17), escapeLike(prefix)+"%").
		Order("vin").Limit(limit + 1).Find(&out).Error
	if err != nil {
		return nil, false, errs.Wrap(err, "find vins")
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// LatestValue is the newest stored reading of one key.
type LatestValue struct {
	Key        *catalog.Key
	Value      string
	ReadAt     time.Time
	ReceivedAt time.Time
}

// LatestValues returns the newest stored value of every key the vehicle has
// sent, in catalog order. Keys never received are absent.
func (s *Service) LatestValues(ctx context.Context, vehicleID int64) ([]LatestValue, error) {
	var rows []struct {
		KeyID      int16
		Value      string
		ReadAt     time.Time
		ReceivedAt time.Time
	}
	err := s.DB.WithContext(ctx).Raw("SELECT key_id, value, read_at, received_at FROM vehicle_latest_values WHERE vehicle_id = ? ORDER BY key_id",
		vehicleID).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "latest values")
	}
	out := make([]LatestValue, 0, len(rows))
	for _, r := range rows {
		k, ok := s.cat().ByID(r.KeyID)
		if !ok {
			continue // a retired key
		}
		out = append(out, LatestValue{Key: k, Value: r.Value, ReadAt: r.ReadAt.UTC(), ReceivedAt: r.ReceivedAt.UTC()})
	}
	return out, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
