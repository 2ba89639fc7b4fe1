package policies

import (
	"testing"
	"time"
)

func TestDecideEveryReason(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	ok := func() AccessFacts {
		return AccessFacts{Now: now, ProviderActive: true, ClientActive: true, ProviderCoversMarket: true,
			ContainerState: "approved", ConsentState: "granted",
			Vehicle:       VehicleFacts{Known: true, Brand: "BMW", Market: "AT", TelematicsCapable: true, Mapped: true, MarketSupported: true, MarketInEU: true},
			ContainerKeys: []string{"a", "b"}, RequestedKeys: []string{"a"}}
	}
	cases := []struct {
		name   string
		change func(*AccessFacts)
		want   string
	}{
		{"all good", func(*AccessFacts) {}, ReasonAllowed},
		{"deprecated container still flows", func(f *AccessFacts) { f.ContainerState = "deprecated" }, ReasonAllowed},
		{"consent with future end", func(f *AccessFacts) { f.ConsentEndsAt = &future }, ReasonAllowed},
		{"provider suspended", func(f *AccessFacts) { f.ProviderActive = false }, ReasonProviderNotActive},
		{"client revoked", func(f *AccessFacts) { f.ClientActive = false }, ReasonClientRevoked},
		{"container draft", func(f *AccessFacts) { f.ContainerState = "draft" }, ReasonContainerNotApproved},
		{"container rejected", func(f *AccessFacts) { f.ContainerState = "rejected" }, ReasonContainerNotApproved},
		{"container withdrawn", func(f *AccessFacts) { f.ContainerState = "withdrawn" }, ReasonContainerWithdrawn},
		{"no consent", func(f *AccessFacts) { f.ConsentState = "" }, ReasonNoConsent},
		{"consent only requested", func(f *AccessFacts) { f.ConsentState = "requested" }, ReasonNoConsent},
		{"consent denied", func(f *AccessFacts) { f.ConsentState = "denied" }, ReasonNoConsent},
		{"consent revoked", func(f *AccessFacts) { f.ConsentState = "revoked" }, ReasonConsentRevoked},
		{"consent expired", func(f *AccessFacts) { f.ConsentState = "expired" }, ReasonConsentExpired},
		{"consent end passed", func(f *AccessFacts) { f.ConsentEndsAt = &past }, ReasonConsentExpired},
		{"unknown vehicle", func(f *AccessFacts) { f.Vehicle = VehicleFacts{} }, ReasonNoConsent},
		{"not telematics capable", func(f *AccessFacts) { f.Vehicle.TelematicsCapable = false }, ReasonNotTelematicsCapable},
		{"not mapped", func(f *AccessFacts) { f.Vehicle.Mapped = false }, ReasonVehicleNotMapped},
		{"market not supported", func(f *AccessFacts) { f.Vehicle.MarketSupported = false }, ReasonMarketNotSupported},
		{"MINI in CH", func(f *AccessFacts) { f.Vehicle.Brand, f.Vehicle.Market, f.Vehicle.MarketInEU = "MINI", "CH", false }, ReasonMiniOutsideEU},
		{"BMW in CH is fine", func(f *AccessFacts) { f.Vehicle.Market, f.Vehicle.MarketInEU = "CH", false }, ReasonAllowed},
		{"market not covered", func(f *AccessFacts) { f.ProviderCoversMarket = false }, ReasonMarketNotCovered},
		{"key not in container", func(f *AccessFacts) { f.RequestedKeys = []string{"a", "z"} }, ReasonKeyNotInContainer},
		{"SIM inactive", func(f *AccessFacts) { f.Vehicle.SIMInactive = true }, ReasonSIMInactive},
		{"unknown vehicle with SIM off stays no_consent", func(f *AccessFacts) { f.Vehicle = VehicleFacts{SIMInactive: true} }, ReasonNoConsent},
		{"revoked consent before SIM", func(f *AccessFacts) { f.ConsentState = "revoked"; f.Vehicle.SIMInactive = true }, ReasonConsentRevoked},
	}
	for _, c := range cases {
		f := ok()
		c.change(&f)
		d := Decide(f)
		if d.Reason != c.want || d.Allowed != (c.want == ReasonAllowed) {
			t.Errorf("%s: got %+v, want %s", c.name, d, c.want)
		}
	}
}

// The sandbox's isolation is the decision's: a sandbox caller (a sandbox
// client, or a push to a sandbox endpoint) reads only its own provider's
// simulated vehicles through sandbox containers, a production caller only
// real vehicles through production containers, whatever the consent says.
func TestDecideSandboxIsolation(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	const provider, other = 7, 8
	base := func(sandbox bool, vehicleOf int64, containerSandbox bool) AccessFacts {
		return AccessFacts{Now: now, ProviderActive: true, ClientActive: true, ProviderCoversMarket: true,
			ContainerState: "approved", ConsentState: "granted", ProviderID: provider, Sandbox: sandbox, ContainerSandbox: containerSandbox,
			Vehicle: VehicleFacts{Known: true, Brand: "BMW", Market: "AT", TelematicsCapable: true, Mapped: true, MarketSupported: true,
				MarketInEU: true, SandboxOf: vehicleOf},
			ContainerKeys: []string{"a"}}
	}
	cases := []struct {
		name string
		f    AccessFacts
		want string
	}{
		{"production reads a real vehicle", base(false, 0, false), ReasonAllowed},
		{"sandbox reads its simulated vehicle", base(true, provider, true), ReasonAllowed},
		{"sandbox reads a real vehicle", base(true, 0, true), ReasonNoConsent},
		{"sandbox reads another provider's simulated vehicle", base(true, other, true), ReasonNoConsent},
		{"production reads a simulated vehicle", base(false, provider, false), ReasonNoConsent},
		{"sandbox through a production container", base(true, provider, false), ReasonContainerNotApproved},
		{"production through a sandbox container", base(false, 0, true), ReasonContainerNotApproved},
		{"sandbox, unknown vehicle", func() AccessFacts { f := base(true, provider, true); f.Vehicle = VehicleFacts{}; return f }(), ReasonNoConsent},
		{"sandbox before approval", func() AccessFacts {
			f := base(true, provider, true)
			f.ProviderActive, f.ProviderPending = false, true
			return f
		}(), ReasonAllowed},
		{"production before approval", func() AccessFacts {
			f := base(false, 0, false)
			f.ProviderActive, f.ProviderPending = false, true
			return f
		}(), ReasonProviderNotActive},
		{"sandbox needs no market access", func() AccessFacts {
			f := base(true, provider, true)
			f.ProviderCoversMarket = false
			return f
		}(), ReasonAllowed},
		{"sandbox keeps production's vehicle reasons", func() AccessFacts {
			f := base(true, provider, true)
			f.Vehicle.Brand, f.Vehicle.Market, f.Vehicle.MarketInEU = "MINI", "NO", false
			return f
		}(), ReasonMiniOutsideEU},
	}
	for _, c := range cases {
		d := Decide(c.f)
		if d.Reason != c.want || d.Allowed != (c.want == ReasonAllowed) {
			t.Errorf("%s: got %+v, want %s", c.name, d, c.want)
		}
	}
}
