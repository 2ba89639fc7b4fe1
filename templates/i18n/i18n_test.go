package i18n

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func TestNegotiate(t *testing.T) {
	for in, want := range map[string]Lang{
		"": EN, "de-AT,de;q=0.9,en;q=0.8": DE, "de-CH": DE, "de": DE, "en-GB,en;q=0.9": EN,
		"fr-FR,fr;q=0.9": EN, "fr-FR,de;q=0.5": DE, "garbage;;;": EN, "en;q=0.9,de;q=1": DE,
	} {
		if got := Negotiate(in); got != want {
			t.Errorf("Negotiate(%q) = %s, want %s", in, got, want)
		}
	}
	if got := Choose("", "de", "en"); got != DE {
		t.Errorf("cookie before header: %s", got)
	}
	if got := Choose("en", "de", "de"); got != EN {
		t.Errorf("remembered setting first: %s", got)
	}
	if got := Choose("xx", "yy", "de-DE"); got != DE {
		t.Errorf("unknown values fall through: %s", got)
	}
}

func TestMoneyAndNumbers(t *testing.T) {
	de, en := Locale{Lang: DE}, Locale{Lang: EN}
	for _, c := range []struct {
		in     string
		de, en string
	}{
		{"1234.56", "1.234,56\u00a0€", "€1,234.56"},
		{"224.96", "224,96\u00a0€", "€224.96"},
		{"-5.5", "-5,50\u00a0€", "-€5.50"},
		{"0", "0,00\u00a0€", "€0.00"},
		{"1000000", "1.000.000,00\u00a0€", "€1,000,000.00"},
		{"0.005", "0,01\u00a0€", "€0.01"},
	} {
		d := decimal.RequireFromString(c.in)
		if got := de.Money(d); got != c.de {
			t.Errorf("de Money(%s) = %q, want %q", c.in, got, c.de)
		}
		if got := en.Money(&d); got != c.en {
			t.Errorf("en Money(%s) = %q, want %q", c.in, got, c.en)
		}
	}
	if got := de.Price(decimal.RequireFromString("0.015")); got != "0,0150\u00a0€" {
		t.Errorf("de Price = %q", got)
	}
	if got := de.Number(10000); got != "10.000" {
		t.Errorf("de Number = %q", got)
	}
	if got := en.Number(int64(10000)); got != "10,000" {
		t.Errorf("en Number = %q", got)
	}
	if got := de.Number(decimal.RequireFromString("0.0150")); got != "0,015" {
		t.Errorf("de Number(decimal) = %q", got)
	}
}

func TestDates(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	de, en := Locale{Lang: DE, Loc: berlin}, Locale{Lang: EN, Loc: berlin}
	at := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC) // 1 January in Berlin
	if got := de.DateTime(at); got != "01.01.2027 00:30" {
		t.Errorf("de DateTime = %q", got)
	}
	if got := en.DateTime(&at); got != "2027-01-01 00:30" {
		t.Errorf("en DateTime = %q", got)
	}
	if got := de.Date(at); got != "01.01.2027" {
		t.Errorf("de Date = %q", got)
	}
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) // a DATE column: not shifted
	if got := en.Date(day); got != "2026-11-30" {
		t.Errorf("en Date(day) = %q", got)
	}
	var never *time.Time
	if got := de.DateTime(never); got != "nie" {
		t.Errorf("de DateTime(nil) = %q", got)
	}
	if got := de.Month("2026-03"); got != "März 2026" {
		t.Errorf("de Month = %q", got)
	}
	if got := en.Month(day); got != "November 2026" {
		t.Errorf("en Month = %q", got)
	}
}

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]string{
		"1000.00": "1000", "1000,00": "1000", "1.000,00": "1000", "1,000.00": "1000",
		"1 000,50": "1000.5", "-5.50": "-5.5", "+7": "7", "0.015": "0.015", "0,0150": "0.015",
		"1000.000": "1000", "1.000.000": "1000000", "1,000,000.25": "1000000.25", "12.5": "12.5",
		"224,96 €": "224.96", "€1,234.56": "1234.56", "99 EUR": "99", ",5": "0.5",
	} {
		got, err := ParseAmount(in)
		if err != nil || !got.Equal(decimal.RequireFromString(want)) {
			t.Errorf("ParseAmount(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]error{
		"1.000": ErrAmbiguous, "10,000": ErrAmbiguous, "-100.000": ErrAmbiguous,
		"": ErrAmount, "abc": ErrAmount, "1.2.3": ErrAmount, "1,00,000.00": ErrAmount, "1.000,00.5": ErrAmount,
		"5.": ErrAmount, "1e5": ErrAmount, "--5": ErrAmount, "1,0000.00": ErrAmount,
	} {
		if _, err := ParseAmount(in); err != want {
			t.Errorf("ParseAmount(%q) error = %v, want %v", in, err, want)
		}
	}
}

func TestTranslate(t *testing.T) {
	if err := Load(); err != nil {
		t.Fatal(err)
	}
	if got := T(DE, "never"); got != "nie" {
		t.Errorf("T(de, never) = %q", got)
	}
	if got := T(DE, "not in any catalog {{.N}}", "N", 3); got != "not in any catalog 3" {
		t.Errorf("a missing id falls back to itself: %q", got)
	}
}

func TestCountry(t *testing.T) {
	if got := (Locale{Lang: DE}).Country("AT", "Austria"); got != "Österreich" {
		t.Errorf("de AT = %q", got)
	}
	if got := (Locale{Lang: EN}).Country("GB", "UK"); got != "United Kingdom" {
		t.Errorf("en GB = %q", got)
	}
	if got := (Locale{Lang: DE}).Country("??", "nowhere"); got != "nowhere" {
		t.Errorf("unknown = %q", got)
	}
}
