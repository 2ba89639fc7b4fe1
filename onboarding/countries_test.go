package onboarding

import "testing"

func TestCountryLists(t *testing.T) {
	if len(EU27) != 27 || len(SupportedMarkets) != 31 {
		t.Fatalf("EU27=%d markets=%d", len(EU27), len(SupportedMarkets))
	}
	cases := []struct {
		code        string
		eea, market bool
	}{
		{"DE", true, true}, {"AT", true, true}, {"CH", false, true}, {"GB", false, true},
		{"IS", true, false}, {"NO", true, true}, {"LI", true, true}, {"US", false, false}, {"TR", false, false},
	}
	for _, c := range cases {
		if IsEEA(c.code) != c.eea || IsSupportedMarket(c.code) != c.market {
			t.Errorf("%s: eea=%v market=%v", c.code, IsEEA(c.code), IsSupportedMarket(c.code))
		}
	}
	if IsEU("NO") || !IsEU("MT") {
		t.Error("EU membership wrong")
	}
}
