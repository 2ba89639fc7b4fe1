package vehicles

import (
	"context"
	"errors"
	"slices"
	"time"

	"gorm.io/gorm"

	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/policies/errs"
)

// Ineligibility reasons (stable codes, MISSION.md rules 11, 12 and 10).
const (
	ReasonNotTelematicsCapable = "not_telematics_capable"
	ReasonNotMapped            = "not_mapped_to_account"
	ReasonMINIOutsideEU        = "mini_outside_eu"
	ReasonMarketNotSupported   = "market_not_supported"
	ReasonSIMInactive          = "sim_inactive"
	// ReasonNoServiceForKeys is not a property of the vehicle alone: no
	// connected service active on it enables any key of the data container
	// a consent is asked for (see NoServiceFor).
	ReasonNoServiceForKeys = "no_service_for_container_keys"
)

// ReasonText explains a reason code to people.
func ReasonText(code string) string {
	switch code {
	case ReasonNotTelematicsCapable:
		return "The vehicle has no telematics unit, so it sends no data."
	case ReasonNotMapped:
		return "The vehicle is not assigned to a customer account (no primary holder)."
	case ReasonMINIOutsideEU:
		return "CarData serves MINI vehicles only when registered in the EU."
	case ReasonMarketNotSupported:
		return "The market of registration is not a supported CarData market."
	case ReasonSIMInactive:
		return "The vehicle's built-in SIM is inactive, so no data reaches CarData."
	case ReasonNoServiceForKeys:
		return "No connected service active on the vehicle provides any data the container asks for."
	}
	return code
}

// KeyCapability says whether a key can be had and how often.
type KeyCapability struct {
	Key       string `json:"key"`
	Available bool   `json:"available"`
	Frequency string `json:"frequency,omitempty"` // "event" or an ISO 8601 duration
	Push      bool   `json:"push"`
}

// ActiveService is a connected service running at the time asked about.
type ActiveService struct {
	Code     string     `json:"code"`
	Name     string     `json:"name"`
	StartsAt time.Time  `json:"startsAt"`
	EndsAt   *time.Time `json:"endsAt,omitempty"`
}

// Capabilities is the capability service's answer for one VIN at one time.
type Capabilities struct {
	VIN               string          `json:"vin"`
	AsOf              time.Time       `json:"asOf"`
	Eligible          bool            `json:"eligible"`
	Reasons           []string        `json:"reasons"`
	Brand             string          `json:"brand"`
	Market            string          `json:"market"`
	TelematicsCapable bool            `json:"telematicsCapable"`
	SIMActive         bool            `json:"simActive"`
	DataDelivery      []string        `json:"dataDelivery"`
	Services          []ActiveService `json:"services"`
	Keys              []KeyCapability `json:"keys"`
}

// AvailableKeys counts the keys that can be had.
func (c *Capabilities) AvailableKeys() int {
	n := 0
	for _, k := range c.Keys {
		if k.Available {
			n++
		}
	}
	return n
}

// Eligibility returns the reasons a vehicle cannot take part in CarData
// (empty: eligible). mapped means the vehicle has a primary holder.
func Eligibility(v *Vehicle, mapped bool) []string {
	reasons := []string{}
	if !v.TelematicsCapable {
		reasons = append(reasons, ReasonNotTelematicsCapable)
	}
	if v.TelematicsCapable && !v.SIMActive {
		// A vehicle without a telematics unit has no SIM to speak of.
		reasons = append(reasons, ReasonSIMInactive)
	}
	if !mapped {
		reasons = append(reasons, ReasonNotMapped)
	}
	if !onboarding.IsSupportedMarket(v.Market) {
		reasons = append(reasons, ReasonMarketNotSupported)
	}
	if v.Brand == MINI && !onboarding.IsEU(v.Market) {
		reasons = append(reasons, ReasonMINIOutsideEU)
	}
	return reasons
}

// NoServiceFor reports whether none of keys is available on the vehicle
// (capabilities c): the reason a consent to a container of those keys
// could never deliver anything, even when the vehicle is otherwise eligible.
func (c *Capabilities) NoServiceFor(keys []string) bool {
	for _, k := range c.Keys {
		if k.Available && slices.Contains(keys, k.Key) {
			return false
		}
	}
	return true
}

// CapabilitiesOf computes the capabilities from the facts: the vehicle,
// whether it has a primary holder, and its subscriptions (only those valid
// at `at` count). A key is available when the vehicle is eligible, the key
// exists for its drive train and an active service enables it; the most
// frequent of those services sets its frequency.
func CapabilitiesOf(cat *catalog.Catalog, v *Vehicle, mapped bool, subs []Subscription, at time.Time) *Capabilities {
	at = at.UTC()
	c := &Capabilities{VIN: v.VIN, AsOf: at, Brand: v.Brand, Market: v.Market, TelematicsCapable: v.TelematicsCapable,
		SIMActive: v.SIMActive, Reasons: Eligibility(v, mapped), DataDelivery: []string{}, Services: []ActiveService{}}
	c.Eligible = len(c.Reasons) == 0
	enabled := map[string]Frequency{}
	for i := range subs {
		sub := &subs[i]
		cs, ok := ServiceByCode(sub.Service)
		if !ok || !sub.ActiveAt(at) {
			continue
		}
		c.Services = append(c.Services, ActiveService{Code: cs.Code, Name: cs.Name, StartsAt: sub.StartsAt.UTC(), EndsAt: sub.EndsAt})
		for key, f := range ServiceKeys(cs.Code) {
			if cur, ok := enabled[key]; !ok || moreFrequent(f, cur) {
				enabled[key] = f
			}
		}
	}
	push := false
	c.Keys = make([]KeyCapability, 0, cat.Len())
	for _, k := range cat.Keys() {
		kc := KeyCapability{Key: k.Name}
		if f, ok := enabled[k.Name]; ok && c.Eligible && k.AppliesTo(v.Drivetrain) {
			kc.Available, kc.Frequency, kc.Push = true, f.Code, k.Pushable
			push = push || k.Pushable
		}
		c.Keys = append(c.Keys, kc)
	}
	if c.Eligible {
		c.DataDelivery = append(c.DataDelivery, "pull")
		if push {
			c.DataDelivery = append(c.DataDelivery, "push")
		}
	}
	return c
}

// Capabilities answers the capability service for a VIN as of `at`, from the
// registry as it is now: a service booked or expired changes the answer at
// once, since nothing is cached.
//
// It answers for any vehicle, simulated ones included (the consent
// module's eligibility check of a sandbox request uses it); the provider
// API asks CapabilitiesIn.
func (s *Service) Capabilities(ctx context.Context, vin string, at time.Time) (*Capabilities, error) {
	return s.capabilities(ctx, vin, at, nil)
}

// CapabilitiesIn is Capabilities for a caller of realm sandboxOf (the
// provider id of a sandbox client, 0 for production): a vehicle of another
// realm is answered exactly like an unknown VIN, so a sandbox client never
// learns about real vehicles and a production client never about simulated
// ones.
func (s *Service) CapabilitiesIn(ctx context.Context, vin string, at time.Time, sandboxOf int64) (*Capabilities, error) {
	return s.capabilities(ctx, vin, at, &sandboxOf)
}

// capabilities answers for vin; with realm set, a vehicle of another realm
// is an unknown VIN.
func (s *Service) capabilities(ctx context.Context, vin string, at time.Time, realm *int64) (*Capabilities, error) {
	db := s.DB.WithContext(ctx)
	v, err := s.findByVIN(db, vin, false)
	if err != nil {
		return nil, err
	}
	if realm != nil {
		var of int64
		if v.SandboxProviderID != nil {
			of = *v.SandboxProviderID
		}
		if of != *realm {
			return nil, s.unknownVIN(vin)
		}
	}
	var mapped bool
	err = db.Raw("SELECT EXISTS (SELECT 1 FROM vehicle_holders WHERE vehicle_id = ? AND role = 'primary')", v.ID).Scan(&mapped).Error
	if err != nil {
		return nil, errs.Wrap(err, "capabilities holder")
	}
	var subs []Subscription
	err = db.Where("vehicle_id = ? AND starts_at <= ? AND (ends_at IS NULL OR ends_at > ?)", v.ID, at.UTC(), at.UTC()).
		Order("starts_at").Find(&subs).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errs.Wrap(err, "capabilities subscriptions")
	}
	return CapabilitiesOf(s.cat(), v, mapped, subs, at), nil
}
