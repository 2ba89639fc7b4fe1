package policies

import (
	"slices"
	"time"
)

// Reason codes of the data-access decision. They are part of the provider
// API (problem+json `code`) and must stay stable.
const (
	ReasonAllowed              = "allowed"
	ReasonProviderNotActive    = "provider_not_active"
	ReasonClientRevoked        = "client_revoked"
	ReasonContainerNotApproved = "container_not_approved"
	ReasonContainerWithdrawn   = "container_withdrawn"
	ReasonNoConsent            = "no_consent"
	ReasonConsentRevoked       = "consent_revoked"
	ReasonConsentExpired       = "consent_expired"
	ReasonNotTelematicsCapable = "vehicle_not_telematics_capable"
	ReasonVehicleNotMapped     = "vehicle_not_mapped"
	ReasonMiniOutsideEU        = "vehicle_mini_outside_eu"
	ReasonMarketNotSupported   = "vehicle_market_not_supported"
	ReasonMarketNotCovered     = "market_not_covered"
	ReasonKeyNotInContainer    = "key_not_in_container"
	ReasonSIMInactive          = "vehicle_sim_inactive"
)

// VehicleFacts are what the decision needs to know about a vehicle.
type VehicleFacts struct {
	Known             bool
	Brand             string // BMW or MINI
	Market            string // ISO 3166 code of registration
	TelematicsCapable bool
	Mapped            bool // assigned to a customer account
	MarketSupported   bool // one of the 31 markets
	MarketInEU        bool
	// SIMInactive: the built-in SIM is switched off, so nothing reaches the
	// backend. Negative so that facts gathered without it keep deciding as
	// before.
	SIMInactive bool
	// SandboxOf is the provider whose sandbox fleet the vehicle belongs to
	// (a simulated vehicle); 0 for every real vehicle.
	SandboxOf int64
}

// AccessFacts are gathered fresh for every request (no cache may outlive a
// revocation) and handed to Decide.
type AccessFacts struct {
	Now                  time.Time
	ProviderActive       bool
	ClientActive         bool
	ProviderCoversMarket bool
	ContainerState       string // draft, submitted, approved, rejected, deprecated, withdrawn
	ConsentState         string // "" when none; requested, granted, denied, revoked, expired
	ConsentEndsAt        *time.Time
	Vehicle              VehicleFacts
	ContainerKeys        []string
	RequestedKeys        []string // empty means "all of the container's keys"

	// The sandbox. Sandbox: the caller is a sandbox API client (or the push
	// goes to a sandbox webhook endpoint) of provider ProviderID; it may
	// read only that provider's simulated vehicles through sandbox
	// containers, and a production caller never either of them.
	// ProviderPending: the provider is registered but not yet approved
	// (submitted, in review, information requested), which is enough for
	// the sandbox. ContainerSandbox: the container is a sandbox container.
	Sandbox          bool
	ProviderID       int64
	ProviderPending  bool
	ContainerSandbox bool
}

// Realm is the sandbox a caller or a vehicle belongs to: the provider id
// of a sandbox, 0 for production.
func (f AccessFacts) Realm() int64 {
	if f.Sandbox {
		return f.ProviderID
	}
	return 0
}

// Decision is the outcome: allowed, or the first reason it is not.
type Decision struct {
	Allowed bool
	Reason  string
}

func deny(reason string) Decision { return Decision{Reason: reason} }

// Decide is the one data-access decision (MISSION rules 2, 6, 10-12). The
// order of checks is fixed so the reason is predictable; a vehicle the
// provider has no consent for is reported as no_consent before anything
// about the vehicle is revealed, so a provider learns nothing about vehicles
// of others.
//
// Sandbox isolation is decided here too, before anything about the
// container's state or a consent is revealed: a container of the other
// realm reads as none (container_not_approved), a vehicle of another realm
// (a real one for a sandbox client, a simulated one for a production
// client, another provider's simulated one) as unknown (no_consent). In the
// sandbox a registered provider not yet approved may read, and every
// supported market counts as covered (there is no market access to ask
// for); everything else is decided as in production, so the simulated
// fleet's ineligible vehicles are refused with production's reasons.
func Decide(f AccessFacts) Decision {
	switch {
	case !f.ProviderActive && !(f.Sandbox && f.ProviderPending):
		return deny(ReasonProviderNotActive)
	case !f.ClientActive:
		return deny(ReasonClientRevoked)
	case f.ContainerSandbox != f.Sandbox:
		return deny(ReasonContainerNotApproved)
	case f.Vehicle.Known && f.Vehicle.SandboxOf != f.Realm():
		return deny(ReasonNoConsent)
	}
	switch f.ContainerState {
	case "approved", "deprecated": // deprecated: no new consents, existing ones still flow
	case "withdrawn":
		return deny(ReasonContainerWithdrawn)
	default:
		return deny(ReasonContainerNotApproved)
	}
	switch f.ConsentState {
	case "granted":
		if f.ConsentEndsAt != nil && !f.Now.Before(*f.ConsentEndsAt) {
			return deny(ReasonConsentExpired)
		}
	case "revoked":
		return deny(ReasonConsentRevoked)
	case "expired":
		return deny(ReasonConsentExpired)
	default: // none, requested, denied
		return deny(ReasonNoConsent)
	}
	v := f.Vehicle
	switch {
	case !v.Known:
		return deny(ReasonNoConsent)
	case !v.TelematicsCapable:
		return deny(ReasonNotTelematicsCapable)
	case !v.Mapped:
		return deny(ReasonVehicleNotMapped)
	case v.SIMInactive:
		return deny(ReasonSIMInactive)
	case !v.MarketSupported:
		return deny(ReasonMarketNotSupported)
	case v.Brand == "MINI" && !v.MarketInEU:
		return deny(ReasonMiniOutsideEU)
	case !f.ProviderCoversMarket && !f.Sandbox:
		return deny(ReasonMarketNotCovered)
	}
	for _, k := range f.RequestedKeys {
		if !slices.Contains(f.ContainerKeys, k) {
			return deny(ReasonKeyNotInContainer)
		}
	}
	return Decision{Allowed: true, Reason: ReasonAllowed}
}
