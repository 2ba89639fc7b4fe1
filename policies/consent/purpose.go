package consent

// PurposeListVersion is the version of the closed list of purpose codes.
// Every container version records the list version its code comes from, so
// a later list (codes added, labels sharpened) never changes what a
// customer consented to. Codes are never removed or reused.
const PurposeListVersion = "2025-01"

// Purpose is one code of the closed list: what a container's data may be
// used for, and which catalog categories such a service typically needs
// (keys outside them are flagged to the reviewer as a data-minimisation hint).
type Purpose struct {
	Code       string
	Label      string // what the customer reads
	Typical    []string
	Definition string
}

// Purposes is the closed list, in display order.
var Purposes = []Purpose{
	{Code: "insurance_usage", Label: "Insurance by usage (pay as you drive)",
		Typical:    []string{"basic", "status", "usage"},
		Definition: "Motor insurance priced or adjusted by how much or how the vehicle is driven."},
	{Code: "maintenance_repair", Label: "Maintenance and repair",
		Typical:    []string{"basic", "status", "service", "event"},
		Definition: "Service reminders, appointment booking, diagnosis and repair by a workshop."},
	{Code: "fleet_management", Label: "Fleet management",
		Typical:    []string{"basic", "status", "usage", "service", "position", "electric"},
		Definition: "Operating company or rental fleets: mileage records, service planning, vehicle location."},
	{Code: "ev_charging_energy", Label: "EV charging and energy",
		Typical:    []string{"basic", "status", "electric"},
		Definition: "Smart charging, charging cost and energy tariffs for electrified vehicles."},
	{Code: "smart_home", Label: "Smart home",
		Typical:    []string{"basic", "status", "electric"},
		Definition: "Home automation reacting to the vehicle, e.g. charging with solar power."},
	{Code: "leasing_remarketing", Label: "Leasing and remarketing",
		Typical:    []string{"basic", "status", "usage", "service"},
		Definition: "Lease contract management, end-of-lease valuation and resale."},
	{Code: "roadside_assistance", Label: "Roadside assistance",
		Typical:    []string{"basic", "status", "event", "position"},
		Definition: "Help after a breakdown or accident: where the vehicle is and what is wrong."},
	{Code: "mileage_logbook", Label: "Mileage logbook",
		Typical:    []string{"basic", "status", "usage"},
		Definition: "Trip and mileage records, e.g. for tax purposes."},
}

// PurposeByCode looks a code up.
func PurposeByCode(code string) (Purpose, bool) {
	for _, p := range Purposes {
		if p.Code == code {
			return p, true
		}
	}
	return Purpose{}, false
}

// PurposeLabel is the label of a code (the code itself when unknown).
func PurposeLabel(code string) string {
	if p, ok := PurposeByCode(code); ok {
		return p.Label
	}
	return code
}

// IsTypical reports whether a key category is typical for the purpose.
func (p Purpose) IsTypical(category string) bool {
	for _, c := range p.Typical {
		if c == category {
			return true
		}
	}
	return false
}
