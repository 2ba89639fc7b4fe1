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
