package vehicles

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// Master data: the manufacturer's systems keep the registry current through
// the master-data API (app/ingest), administrators by hand. The operations
// here are declarative and idempotent: sending the same state again changes
// nothing and says so (Unchanged). Every change leaves a row in the vehicle's
// master-data history naming its source, and an audit entry.

// Results of a master-data operation.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
)

// Sources of a master-data change.
const (
	SourceAPI    = "api"
	SourceStaff  = "staff"
	SourceSystem = "system"
)

// RoleMasterData is the casbin role of an authenticated master-data client
// (the manufacturer's vehicle systems).
const RoleMasterData = "master_data"

// Change is one row of a vehicle's master-data history.
type Change struct {
	ID        int64     `gorm:"column:id;primaryKey"`
	VehicleID int64     `gorm:"column:vehicle_id"`
	At        time.Time `gorm:"column:at"`
	Action    string    `gorm:"column:action"`
	Summary   string    `gorm:"column:summary"`
	// SummaryFormat and SummaryArgs are what Summary was made of (see
	// audit.Entry): SummaryIn says it in a reader's language.
	SummaryFormat string     `gorm:"column:summary_format"`
	SummaryArgs   audit.Args `gorm:"column:summary_args;type:jsonb"`
	SourceKind    string     `gorm:"column:source_kind"`
	SourceID      *int64     `gorm:"column:source_id"`
	SourceLabel   string     `gorm:"column:source_label"`
}

func (Change) TableName() string { return "vehicle_master_data_changes" }

// SummaryIn is the change's summary in lang, as the audit trail says it
// (the recorded English when the format and arguments do not give it back).
func (c *Change) SummaryIn(lang string) string {
	return audit.Entry{Summary: c.Summary, SummaryFormat: c.SummaryFormat, SummaryArgs: c.SummaryArgs}.SummaryIn(lang)
}

// SourceText describes the source for people.
func (c *Change) SourceText() string {
	switch c.SourceKind {
	case SourceAPI:
		return "master-data API (" + c.SourceLabel + ")"
	case SourceStaff:
		return "by hand (" + c.SourceLabel + ")"
	}
	return c.SourceLabel
}

// sourceOf names who makes a change: a master-data client (its principal
// carries RoleMasterData), a staff user, or the system.
func sourceOf(ctx context.Context) (kind string, id *int64, label string) {
	p := policies.PrincipalFrom(ctx)
	switch {
	case p == nil:
		return SourceSystem, nil, "system"
	case p.HasRole(RoleMasterData):
		pid := p.ID
		return SourceAPI, &pid, p.Name
	case p.Kind == policies.KindStaff:
		pid := p.ID
		return SourceStaff, &pid, p.Label()
	}
	return SourceSystem, nil, p.Label()
}

// recordChange writes the history row and the audit entry of one change,
// its summary as a format and arguments (audit.Recordf; every format the
// callers build is in the audit-onboarding catalogs).
func recordChange(ctx context.Context, tx *gorm.DB, v *Vehicle, action, format string, args ...any) error {
	kind, id, label := sourceOf(ctx)
	item := audit.ItemOf("vehicle."+strings.ReplaceAll(action, ".", "_"), "vehicle", v.VIN, format, args...)
	ch := &Change{VehicleID: v.ID, At: time.Now().UTC(), Action: action, Summary: item.Summary,
		SummaryFormat: item.Format, SummaryArgs: item.Args, SourceKind: kind, SourceID: id, SourceLabel: label}
	if err := tx.Create(ch).Error; err != nil {
		return errs.Wrap(err, "master data history")
	}
	return audit.RecordMany(ctx, tx, []audit.Item{item})
}

// History lists a vehicle's master-data changes, newest first (at most limit).
func (s *Service) History(ctx context.Context, vehicleID int64, limit int) ([]Change, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	var out []Change
	err := s.DB.WithContext(ctx).Where("vehicle_id = ?", vehicleID).Order("id DESC").Limit(limit).Find(&out).Error
	return out, errs.Wrap(err, "master data history")
}

// UpsertVehicle registers a vehicle or brings its master data (brand, model,
// drive train, market, telematics unit, SIM state) to the given state. The
// capability service reads the registry on every call, so its answer
// follows at once.
func (s *Service) UpsertVehicle(ctx context.Context, in NewVehicle) (*Vehicle, string, error) {
	if err := in.normalize(); err != nil {
		return nil, "", err
	}
	var out *Vehicle
	result := Unchanged
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, in.VIN, true)
		if errs.KindOf(err) == errs.NotFound {
			nv := &Vehicle{VIN: in.VIN, Brand: in.Brand, Model: in.Model, Drivetrain: in.Drivetrain, Market: in.Market,
				TelematicsCapable: in.TelematicsCapable, SIMActive: in.SIMActive}
			res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "vin"}}, DoNothing: true}).Create(nv)
			if res.Error != nil {
				return errs.Wrap(res.Error, "register vehicle")
			}
			if res.RowsAffected == 1 {
				out, result = nv, Created
				return recordChange(ctx, tx, nv, "vehicle.created", "registered %s %s (%s) in %s, %s, %s",
					nv.Brand, nv.Model, nv.Drivetrain, nv.Market, errs.Term(telematicsText(nv.TelematicsCapable)), errs.Term(simText(nv.SIMActive)))
			}
			// Registered concurrently: update it like any other.
			v, err = s.findByVIN(tx, in.VIN, true)
		}
		if err != nil {
			return err
		}
		// The summary lists the changed fields, "%s %s → %s" each (the
		// field's name, old and new), joined by "; ".
		var diffs []string
		var diffArgs []any
		upd := map[string]any{}
		field := func(col, label string, old, new any, oldText, newText any) {
			if old != new {
				upd[col] = new
				diffs = append(diffs, "%s %s → %s")
				diffArgs = append(diffArgs, errs.Term(label), oldText, newText)
			}
		}
		field("brand", "brand", v.Brand, in.Brand, v.Brand, in.Brand)
		field("model", "model", v.Model, in.Model, v.Model, in.Model)
		field("drivetrain", "drive train", v.Drivetrain, in.Drivetrain, v.Drivetrain, in.Drivetrain)
		field("market", "market", v.Market, in.Market, v.Market, in.Market)
		field("telematics_capable", "telematics unit", v.TelematicsCapable, in.TelematicsCapable,
			errs.Term(telematicsText(v.TelematicsCapable)), errs.Term(telematicsText(in.TelematicsCapable)))
		field("sim_active", "SIM", v.SIMActive, in.SIMActive, errs.Term(simText(v.SIMActive)), errs.Term(simText(in.SIMActive)))
		out = v
		if len(upd) == 0 {
			return nil
		}
		upd["updated_at"] = time.Now().UTC()
		if err := tx.Model(v).Updates(upd).Error; err != nil {
			return errs.Wrap(err, "update vehicle")
		}
		if err := tx.Take(v, v.ID).Error; err != nil {
			return errs.Wrap(err, "reload vehicle")
		}
		result = Updated
		return recordChange(ctx, tx, v, "vehicle.updated", strings.Join(diffs, "; "), diffArgs...)
	})
	if err != nil {
		return nil, "", err
	}
	return out, result, nil
}

func telematicsText(b bool) string {
	if b {
		return "telematics capable"
	}
	return "no telematics unit"
}

func simText(b bool) string {
	if b {
		return "SIM active"
	}
	return "SIM inactive"
}

var refPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)

// ValidateRef checks a booking reference: 1 to 100 letters, digits and
// . _ : -, not only digits (a number names a subscription by its id).
func ValidateRef(v *errs.Validation, field, ref string) {
	if !refPattern.MatchString(ref) {
		v.Add(field, "ref_invalid", "the booking reference has 1 to 100 letters, digits and . _ : -")
		return
	}
	if _, err := strconv.ParseInt(ref, 10, 64); err == nil {
		v.Add(field, "ref_invalid", "the booking reference must not be a number (a number names a subscription by its id)")
	}
}

// BookSubscription books a connected service. ref is the manufacturer's
// reference of the booking (empty for a booking made by hand): booking the
// same reference with the same service and period again changes nothing;
// with another service or period it is a conflict.
func (s *Service) BookSubscription(ctx context.Context, vin, ref string, in NewSubscription) (*Subscription, string, error) {
	ref = strings.TrimSpace(ref)
	if ref != "" {
		var val errs.Validation
		ValidateRef(&val, "ref", ref)
		if err := val.Err(); err != nil {
			return nil, "", err
		}
	}
	var out *Subscription
	result := Created
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, vin, true)
		if err != nil {
			return err
		}
		if ref != "" {
			var cur Subscription
			err := tx.Where("vehicle_id = ? AND external_ref = ?", v.ID, ref).Take(&cur).Error
			if err == nil {
				// The same booking, possibly ended early since: nothing to do.
				endedEarly := cur.EndsAt != nil && (in.EndsAt == nil || in.EndsAt.After(*cur.EndsAt))
				if cur.Service == in.Service && cur.StartsAt.Equal(in.StartsAt) && (sameEnd(cur.EndsAt, in.EndsAt) || endedEarly) {
					out, result = &cur, Unchanged
					return nil
				}
				return errs.New(errs.Conflict, "subscription_ref_conflict",
					"booking %s of %s is %s from %s; a booking cannot be changed, end it and book anew", ref, v.VIN, cur.Service,
					cur.StartsAt.UTC().Format(time.RFC3339))
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return errs.Wrap(err, "find booking")
			}
		}
		sub, err := s.insertSubscription(tx, v, in)
		if err != nil {
			return err
		}
		if ref != "" {
			if err := tx.Model(sub).Update("external_ref", ref).Error; err != nil {
				return errs.Wrap(err, "booking reference")
			}
			sub.ExternalRef = &ref
		}
		out = sub
		format, args := "booked %s from %s, open-ended", []any{sub.ServiceName(), sub.StartsAt.Format(time.RFC3339)}
		if sub.EndsAt != nil {
			format, args = "booked %s from %s, until %s", append(args, sub.EndsAt.Format(time.RFC3339))
		}
		if ref != "" {
			format, args = format+" (ref %s)", append(args, ref)
		}
		return recordChange(ctx, tx, v, "subscription.booked", format, args...)
	})
	if err != nil {
		return nil, "", err
	}
	return out, result, nil
}

func sameEnd(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// insertSubscription validates and inserts a booking (no audit: the caller
// records it).
func (s *Service) insertSubscription(tx *gorm.DB, v *Vehicle, in NewSubscription) (*Subscription, error) {
	var val errs.Validation
	cs, ok := ServiceByCode(in.Service)
	switch {
	case !ok:
		val.Add("service", "service_unknown", "unknown connected service %q", in.Service)
	case !cs.AppliesTo(v.Drivetrain):
		val.Add("service", "service_not_applicable", "%s is not available for a %s vehicle", cs.Name, errs.Term(v.Drivetrain))
	}
	if in.StartsAt.IsZero() {
		val.Add("starts_at", "starts_at_required", "enter when the subscription starts")
	}
	if in.EndsAt != nil && !in.EndsAt.After(in.StartsAt) {
		val.Add("ends_at", "ends_before_start", "the subscription must end after it starts")
	}
	if err := val.Err(); err != nil {
		return nil, err
	}
	start := in.StartsAt.UTC()
	var end *time.Time
	if in.EndsAt != nil {
		e := in.EndsAt.UTC()
		end = &e
	}
	q := tx.Model(&Subscription{}).Where("vehicle_id = ? AND service = ? AND (ends_at IS NULL OR ends_at > ?)", v.ID, in.Service, start)
	if end != nil {
		q = q.Where("starts_at < ?", *end)
	}
	var overlapping int64
	if err := q.Count(&overlapping).Error; err != nil {
		return nil, errs.Wrap(err, "subscription overlap")
	}
	if overlapping > 0 {
		return nil, errs.New(errs.Conflict, "subscription_overlaps", "%s already has %s in that period", v.VIN, cs.Name)
	}
	sub := &Subscription{VehicleID: v.ID, Service: in.Service, StartsAt: start, EndsAt: end}
	if err := tx.Omit("external_ref").Create(sub).Error; err != nil {
		return nil, errs.Wrap(err, "subscribe")
	}
	return sub, nil
}

// EndBooking ends a vehicle's subscription early, at `at`. The
// subscription is named by its id (digits) or by the manufacturer's
// reference. A subscription that already ends by then is left as it is
// (Unchanged), so the call can be repeated.
func (s *Service) EndBooking(ctx context.Context, vin, idOrRef string, at time.Time) (*Subscription, string, error) {
	at = at.UTC()
	var out *Subscription
	result := Updated
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, vin, true)
		if err != nil {
			return err
		}
		q := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("vehicle_id = ?", v.ID)
		if id, perr := strconv.ParseInt(idOrRef, 10, 64); perr == nil {
			q = q.Where("id = ?", id)
		} else {
			q = q.Where("external_ref = ?", idOrRef)
		}
		var sub Subscription
		if err := q.Take(&sub).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errs.New(errs.NotFound, "subscription_not_found", "vehicle %s has no subscription %q", v.VIN, idOrRef)
			}
			return errs.Wrap(err, "find subscription")
		}
		out = &sub
		if sub.EndsAt != nil && !at.Before(*sub.EndsAt) {
			result = Unchanged
			return nil
		}
		if !at.After(sub.StartsAt) {
			return errs.New(errs.Conflict, "subscription_not_started",
				"the subscription starts %s, after the end asked for (%s)", sub.StartsAt.UTC().Format(time.RFC3339), at.Format(time.RFC3339))
		}
		if err := tx.Model(&sub).Update("ends_at", at).Error; err != nil {
			return errs.Wrap(err, "end subscription")
		}
		sub.EndsAt = &at
		if sub.ExternalRef != nil {
			return recordChange(ctx, tx, v, "subscription.ended", "%s ended early, at %s (ref %s)",
				sub.ServiceName(), at.Format(time.RFC3339), *sub.ExternalRef)
		}
		return recordChange(ctx, tx, v, "subscription.ended", "%s ended early, at %s", sub.ServiceName(), at.Format(time.RFC3339))
	})
	if err != nil {
		return nil, "", err
	}
	return out, result, nil
}

// HolderInput names a customer account by e-mail; Name is needed only when
// the account does not exist yet (it is then created).
type HolderInput struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// HoldersResult is what SetHolders did.
type HoldersResult struct {
	Result string
	// OwnerChanged: the former primary holder no longer holds the vehicle
	// as primary; their consents end (EndFormerOwnersConsents).
	OwnerChanged    bool
	FormerPrimary   string
	AccountsCreated int
}

// SetHolders brings a vehicle's account mapping to the given state: primary
// (nil: no primary holder) and the secondary users. A different primary
// holder than today's is a change of owner: the former owner's consents end
// (the caller runs EndFormerOwnersConsents once its changes are committed).
func (s *Service) SetHolders(ctx context.Context, vin string, primary *HolderInput, secondaries []HolderInput) (*HoldersResult, error) {
	var val errs.Validation
	seen := map[string]bool{}
	check := func(field string, h *HolderInput) {
		h.Email, h.Name = strings.TrimSpace(h.Email), strings.TrimSpace(h.Name)
		if a, err := mail.ParseAddress(h.Email); err != nil || a.Address != h.Email || len(h.Email) > 254 {
			val.Add(field+".email", "email_invalid", "enter an e-mail address such as anna@example.com")
			return
		}
		if len(h.Name) > 200 {
			val.Add(field+".name", "name_invalid", "a name has at most 200 characters")
		}
		key := strings.ToLower(h.Email)
		if seen[key] {
			val.Add(field+".email", "holder_twice", "%s is named twice; an account holds a vehicle in one role", h.Email)
		}
		seen[key] = true
	}
	if primary != nil {
		check("primary", primary)
	}
	if len(secondaries) > 50 {
		val.Add("secondary", "too_many_holders", "a vehicle has at most 50 secondary users")
	}
	for i := range secondaries {
		check(fmt.Sprintf("secondary[%d]", i), &secondaries[i])
	}
	if err := val.Err(); err != nil {
		return nil, err
	}
	out := &HoldersResult{Result: Unchanged}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := s.findByVIN(tx, vin, true)
		if err != nil {
			return err
		}
		// The desired mapping, by account id.
		want := map[int64]string{}
		emails := map[int64]string{}
		resolve := func(field string, h HolderInput, role string) error {
			var acc Account
			err := tx.Where("lower(email) = lower(?)", h.Email).Take(&acc).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				if h.Name == "" {
					var val errs.Validation
					val.Add(field+".name", "name_required", "no customer account %s exists yet: give the holder's name to create it", h.Email)
					return val.Err()
				}
				acc = Account{Email: h.Email, Name: h.Name}
				res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&acc)
				if res.Error != nil {
					return errs.Wrap(res.Error, "create account")
				}
				if res.RowsAffected == 0 { // created concurrently
					if err := tx.Where("lower(email) = lower(?)", h.Email).Take(&acc).Error; err != nil {
						return errs.Wrap(err, "find account")
					}
					want[acc.ID], emails[acc.ID] = role, acc.Email
					return nil
				}
				out.AccountsCreated++
				if err := audit.Recordf(ctx, tx, "customer_account.create", "customer_account", strconv.FormatInt(acc.ID, 10),
					"created account %s for vehicle %s", acc.Email, v.VIN); err != nil {
					return err
				}
			} else if err != nil {
				return errs.Wrap(err, "find account")
			}
			want[acc.ID], emails[acc.ID] = role, acc.Email
			return nil
		}
		if primary != nil {
			if err := resolve("primary", *primary, RolePrimary); err != nil {
				return err
			}
		}
		for i, h := range secondaries {
			if err := resolve(fmt.Sprintf("secondary[%d]", i), h, RoleSecondary); err != nil {
				return err
			}
		}
		var cur []Holder
		if err := tx.Table("vehicle_holders h").Select("h.vehicle_id, h.account_id, h.role, h.created_at, a.email, a.name").
			Joins("JOIN customer_accounts a ON a.id = h.account_id").Where("h.vehicle_id = ?", v.ID).
			Order("h.role, a.email").Scan(&cur).Error; err != nil {
			return errs.Wrap(err, "holders")
		}
		have := map[int64]string{}
		var oldPrimary *Holder
		for i := range cur {
			have[cur[i].AccountID] = cur[i].Role
			emails[cur[i].AccountID] = cur[i].Email
			if cur[i].Role == RolePrimary {
				oldPrimary = &cur[i]
			}
		}
		var newPrimary int64
		for id, role := range want {
			if role == RolePrimary {
				newPrimary = id
			}
		}
		type change struct {
			action, format string
			args           []any
		}
		var changes []change
		// Rows that go or change their role are deleted first (a vehicle
		// has at most one primary holder at any moment), then the missing
		// ones inserted.
		for _, h := range cur {
			role, keep := want[h.AccountID]
			if keep && role == h.Role {
				continue
			}
			if err := tx.Where("vehicle_id = ? AND account_id = ?", v.ID, h.AccountID).Delete(&Holder{}).Error; err != nil {
				return errs.Wrap(err, "remove holder")
			}
			if h.Role == RoleSecondary && !keep {
				changes = append(changes, change{"holders.secondary_removed", "%s is no longer a secondary user", []any{h.Email}})
			}
		}
		for id, role := range want {
			if have[id] == role {
				continue
			}
			if err := tx.Create(&Holder{VehicleID: v.ID, AccountID: id, Role: role}).Error; err != nil {
				return errs.Wrap(err, "assign holder")
			}
			if role == RoleSecondary {
				changes = append(changes, change{"holders.secondary_added", "%s is now a secondary user", []any{emails[id]}})
			}
		}
		switch {
		case oldPrimary != nil && newPrimary == 0:
			out.OwnerChanged, out.FormerPrimary = true, oldPrimary.Email
			changes = append([]change{{"holders.primary_removed",
				"%s no longer holds the vehicle as primary holder; their consents end", []any{oldPrimary.Email}}}, changes...)
		case oldPrimary != nil && oldPrimary.AccountID != newPrimary:
			out.OwnerChanged, out.FormerPrimary = true, oldPrimary.Email
			changes = append([]change{{"holders.change_of_owner",
				"change of owner: %s → %s; the former owner's consents end", []any{oldPrimary.Email, emails[newPrimary]}}}, changes...)
		case oldPrimary == nil && newPrimary != 0:
			changes = append([]change{{"holders.primary_set", "%s is now the primary holder", []any{emails[newPrimary]}}}, changes...)
		}
		for _, c := range changes {
			if err := recordChange(ctx, tx, v, c.action, c.format, c.args...); err != nil {
				return err
			}
		}
		if len(changes) > 0 {
			out.Result = Updated
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EndFormerOwnersConsents ends the consents of customers who no longer hold
// their vehicle as primary holder, as the consent expiry job does, so a
// change of owner takes effect at once. It returns how many consents ended;
// without FormerOwnerConsents wired in it does nothing (the job does it on
// its next run).
func (s *Service) EndFormerOwnersConsents(ctx context.Context) (int, error) {
	if s.FormerOwnerConsents == nil {
		return 0, nil
	}
	return s.FormerOwnerConsents(ctx)
}
