package onboarding

import "slices"

// Country is an ISO 3166-1 alpha-2 code with its English name.
type Country struct {
	Code string
	Name string
}

// EU27 lists the member states of the European Union.
var EU27 = []Country{
	{"AT", "Austria"}, {"BE", "Belgium"}, {"BG", "Bulgaria"}, {"HR", "Croatia"}, {"CY", "Cyprus"},
	{"CZ", "Czechia"}, {"DK", "Denmark"}, {"EE", "Estonia"}, {"FI", "Finland"}, {"FR", "France"},
	{"DE", "Germany"}, {"GR", "Greece"}, {"HU", "Hungary"}, {"IE", "Ireland"}, {"IT", "Italy"},
	{"LV", "Latvia"}, {"LT", "Lithuania"}, {"LU", "Luxembourg"}, {"MT", "Malta"}, {"NL", "Netherlands"},
	{"PL", "Poland"}, {"PT", "Portugal"}, {"RO", "Romania"}, {"SK", "Slovakia"}, {"SI", "Slovenia"},
	{"ES", "Spain"}, {"SE", "Sweden"},
}

// EEAOnly are the EEA members outside the EU.
var EEAOnly = []Country{{"IS", "Iceland"}, {"LI", "Liechtenstein"}, {"NO", "Norway"}}

// SupportedMarkets are the 31 markets where CarData is offered (MISSION.md
// rule 10). They differ from the EEA: CH and GB are markets but not EEA
// seats; IS is an EEA seat but not a market.
var SupportedMarkets = []Country{
	{"BE", "Belgium"}, {"BG", "Bulgaria"}, {"DK", "Denmark"}, {"DE", "Germany"}, {"EE", "Estonia"},
	{"FI", "Finland"}, {"FR", "France"}, {"GR", "Greece"}, {"IE", "Ireland"}, {"IT", "Italy"},
	{"HR", "Croatia"}, {"LV", "Latvia"}, {"LI", "Liechtenstein"}, {"LT", "Lithuania"}, {"LU", "Luxembourg"},
	{"MT", "Malta"}, {"NL", "Netherlands"}, {"NO", "Norway"}, {"AT", "Austria"}, {"PL", "Poland"},
	{"PT", "Portugal"}, {"RO", "Romania"}, {"SE", "Sweden"}, {"CH", "Switzerland"}, {"SK", "Slovakia"},
	{"SI", "Slovenia"}, {"ES", "Spain"}, {"CZ", "Czechia"}, {"HU", "Hungary"}, {"GB", "United Kingdom"},
	{"CY", "Cyprus"},
}

func has(list []Country, code string) bool {
	return slices.ContainsFunc(list, func(c Country) bool { return c.Code == code })
}

// IsEU reports whether code is an EU member state.
func IsEU(code string) bool { return has(EU27, code) }

// IsEEA reports whether code is in the European Economic Area (EU + IS, LI, NO).
func IsEEA(code string) bool { return IsEU(code) || has(EEAOnly, code) }

// IsSupportedMarket reports whether code is one of the 31 markets.
func IsSupportedMarket(code string) bool { return has(SupportedMarkets, code) }

// CountryName returns the English name of an EEA country or market, or the code.
func CountryName(code string) string {
	for _, l := range [][]Country{EU27, EEAOnly, SupportedMarkets} {
		for _, c := range l {
			if c.Code == code {
				return c.Name
			}
		}
	}
	return code
}
