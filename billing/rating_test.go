package billing_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"cardata/billing"
)

func tiers(t *testing.T) []billing.PriceItem {
	t.Helper()
	p := decimal.RequireFromString
	ten, hundred := int64(10_000), int64(100_000)
	return []billing.PriceItem{
		{Item: billing.ItemTelematics, TierFrom: 1, TierTo: &ten, UnitPrice: p("0.0200")},
		{Item: billing.ItemTelematics, TierFrom: 10_001, TierTo: &hundred, UnitPrice: p("0.0150")},
		{Item: billing.ItemTelematics, TierFrom: 100_001, UnitPrice: p("0.0100")},
	}
}

// Graduated: each unit is priced in its own tier, and a run of units that
// starts after earlier invoices of the same month continues the count.
func TestGraduate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		base, count int64
		want        []string // "from-to@price=amount"
	}{
		{"within first tier", 0, 7, []string{"1-7@0.02=0.14"}},
		{"exactly the first tier", 0, 10_000, []string{"1-10000@0.02=200"}},
		{"crosses into the second", 0, 10_050, []string{"1-10000@0.02=200", "10001-10050@0.015=0.75"}},
		{"spans all three", 0, 100_002, []string{"1-10000@0.02=200", "10001-100000@0.015=1350", "100001-100002@0.01=0.02"}},
		{"late units continue the month", 9_998, 5, []string{"9999-10000@0.02=0.04", "10001-10003@0.015=0.05"}},
		{"nothing", 0, 0, nil},
	}
	for _, c := range cases {
		got, ok := billing.Graduate(tiers(t), c.base, c.count)
		if !ok {
			t.Fatalf("%s: not ok", c.name)
		}
		var s []string
		for _, sl := range got {
			s = append(s, decimal.NewFromInt(sl.From).String()+"-"+decimal.NewFromInt(sl.To).String()+"@"+sl.UnitPrice.String()+"="+sl.Amount().String())
		}
		if len(s) != len(c.want) {
			t.Fatalf("%s: got %v want %v", c.name, s, c.want)
		}
		for i := range s {
			if s[i] != c.want[i] {
				t.Fatalf("%s: got %v want %v", c.name, s, c.want)
			}
		}
	}
	// A gap in the tiers is reported, never priced at zero.
	gap := tiers(t)[1:]
	if _, ok := billing.Graduate(gap, 0, 5); ok {
		t.Fatal("tiers starting at 10,001 must not price unit 1")
	}
}

// Amounts round half-up to the cent once per line: 3 × 0.0150 = 0.045 -> 0.05.
func TestRoundingHalfUp(t *testing.T) {
	t.Parallel()
	sl := billing.Slice{Quantity: 3, UnitPrice: decimal.RequireFromString("0.0150")}
	if got := sl.Amount().String(); got != "0.05" {
		t.Fatalf("3 x 0.015 = %s, want 0.05", got)
	}
	sl = billing.Slice{Quantity: 1, UnitPrice: decimal.RequireFromString("0.0050")}
	if got := sl.Amount().String(); got != "0.01" {
		t.Fatalf("0.005 rounds to %s, want 0.01", got)
	}
	// VAT: 10.05 * 19 % = 1.9095 -> 1.91
	if got := billing.TaxAmount(decimal.RequireFromString("10.05"), billing.GermanVATRate).String(); got != "1.91" {
		t.Fatalf("VAT = %s", got)
	}
	if got := billing.SupportBlocks(31); got != 3 {
		t.Fatalf("31 min = %d blocks, want 3 started 15-minute blocks", got)
	}
	if got := billing.SupportBlocks(30); got != 2 {
		t.Fatalf("30 min = %d blocks", got)
	}
}

// Periods are half-open months in Europe/Berlin; the DST nights belong to
// the month they fall in.
func TestPeriodBoundaries(t *testing.T) {
	t.Parallel()
	loc, _ := time.LoadLocation("Europe/Berlin")
	for _, c := range []struct{ period, start, end string }{
		{"2026-03", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z"}, // CET -> CEST on 29 March
		{"2026-10", "2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z"}, // CEST -> CET on 25 October
		{"2026-12", "2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z"},
	} {
		p, err := billing.ParsePeriod(c.period, loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Start.UTC().Format(time.RFC3339); got != c.start {
			t.Errorf("%s start %s, want %s", c.period, got, c.start)
		}
		if got := p.End.UTC().Format(time.RFC3339); got != c.end {
			t.Errorf("%s end %s, want %s", c.period, got, c.end)
		}
	}
	for _, bad := range []string{"2026-13", "26-10", "2026-1", "", "2026-10-01"} {
		if _, err := billing.ParsePeriod(bad, loc); err == nil {
			t.Errorf("period %q accepted", bad)
		}
	}
}

func TestTaxCases(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		country, vat, cat string
		rate              int64
		fails             bool
	}{
		{"DE", "DE123456788", "S", 19, false},
		{"DE", "", "S", 19, false},
		{"AT", "ATU12345675", "AE", 0, false},
		{"FR", "", "", 0, true}, // reverse charge needs the VAT ID
		{"NO", "NO123456785MVA", "O", 0, false},
		{"IS", "", "O", 0, false},
		{"LI", "", "O", 0, false},
		{"CH", "", "", 0, true},
	} {
		tc, err := billing.TaxFor(billing.Party{Country: c.country, VATID: c.vat})
		if (err != nil) != c.fails {
			t.Fatalf("%s: err %v", c.country, err)
		}
		if err == nil && (tc.Category != c.cat || !tc.Rate.Equal(decimal.NewFromInt(c.rate))) {
			t.Fatalf("%s: %s %s", c.country, tc.Category, tc.Rate)
		}
	}
	if tc, _ := billing.TaxFor(billing.Party{Country: "AT", VATID: "ATU12345675"}); tc.Note != billing.ReverseChargeNote {
		t.Fatalf("reverse charge note: %q", tc.Note)
	}
}
