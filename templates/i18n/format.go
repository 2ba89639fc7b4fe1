package i18n

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/text/collate"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// Country names a country by its ISO code in the locale's language
// ("AT": "Österreich" / "Austria"), from x/text's CLDR data; fallback
// when the code is unknown.
func (z Locale) Country(code, fallback string) string {
	r, err := language.ParseRegion(code)
	if err != nil {
		return fallback
	}
	namer := display.English.Regions()
	if z.Lang == DE {
		namer = display.German.Regions()
	}
	if n := namer.Name(r); n != "" {
		return n
	}
	return fallback
}

// Locale formats for one language in one time zone (Europe/Berlin for
// people): the template functions money, number, date, datetime and month
// are its methods.
type Locale struct {
	Lang Lang
	Loc  *time.Location
}

// T translates id (see the package function T).
func (z Locale) T(id string, args ...any) string { return T(z.Lang, id, args...) }

func (z Locale) seps() (group, decimalSep string) {
	if z.Lang == DE {
		return ".", ","
	}
	return ",", "."
}

// group writes the digits of an integer with a thousands separator.
func group(digits, sep string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	head := len(digits) % 3
	if head > 0 {
		b.WriteString(digits[:head])
	}
	for i := head; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// Decimal writes d with places decimals (rounded half away from zero), grouped:
// 1.234,56 in German, 1,234.56 in English. places < 0 keeps d's own
// decimals (at least two are not forced).
func (z Locale) Decimal(d decimal.Decimal, places int32) string {
	g, sep := z.seps()
	s := d.String()
	if places >= 0 {
		s = d.StringFixed(places)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	out := group(intPart, g)
	if frac != "" {
		out += sep + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// Money is an amount in euros for people: "1.234,56 €" in German,
// "€1,234.56" in English; a negative amount keeps its minus in front
// ("-5,50 €", "-€5.50"). It takes a decimal, a *decimal or a string of one.
func (z Locale) Money(v any) string { return z.money(v, 2) }

// Price is a unit price in euros with four decimals, as the price list
// publishes them: "0,0150 €" / "€0.0150".
func (z Locale) Price(v any) string { return z.money(v, 4) }

func (z Locale) money(v any, places int32) string {
	d, ok := toDecimal(v)
	if !ok {
		return fmt.Sprint(v)
	}
	s := z.Decimal(d.Abs(), places)
	sign := ""
	if d.IsNegative() && !d.Round(places).IsZero() {
		sign = "-"
	}
	if z.Lang == DE {
		return sign + s + "\u00a0€"
	}
	return sign + "€" + s
}

// Number writes an integer or decimal grouped by the locale (10.000 /
// 10,000); a decimal keeps its own places.
func (z Locale) Number(v any) string {
	switch x := v.(type) {
	case int:
		return z.Decimal(decimal.NewFromInt(int64(x)), 0)
	case int32:
		return z.Decimal(decimal.NewFromInt(int64(x)), 0)
	case int64:
		return z.Decimal(decimal.NewFromInt(x), 0)
	case uint64:
		return z.Decimal(decimal.NewFromUint64(x), 0)
	case float64:
		return z.Decimal(decimal.NewFromFloat(x), -1)
	case *int64:
		if x == nil {
			return ""
		}
		return z.Number(*x)
	case *int:
		if x == nil {
			return ""
		}
		return z.Number(*x)
	}
	if d, ok := toDecimal(v); ok {
		return z.Decimal(d, -1)
	}
	return fmt.Sprint(v)
}

func toDecimal(v any) (decimal.Decimal, bool) {
	switch x := v.(type) {
	case decimal.Decimal:
		return x, true
	case *decimal.Decimal:
		if x == nil {
			return decimal.Zero, false
		}
		return *x, true
	case decimal.NullDecimal:
		return x.Decimal, x.Valid
	case string:
		d, err := decimal.NewFromString(x)
		return d, err == nil
	case int:
		return decimal.NewFromInt(int64(x)), true
	case int64:
		return decimal.NewFromInt(x), true
	}
	return decimal.Zero, false
}

func (z Locale) in(t time.Time) time.Time {
	if z.Loc != nil {
		return t.In(z.Loc)
	}
	return t
}

func asTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, !x.IsZero()
	case *time.Time:
		if x == nil {
			return time.Time{}, false
		}
		return *x, !x.IsZero()
	}
	return time.Time{}, false
}

// DateTime is a moment in Europe/Berlin: "05.12.2026 14:03" in German,
// "2026-12-05 14:03" in English; "" for a zero time, and "never" / "nie"
// for a nil pointer.
func (z Locale) DateTime(v any) string {
	t, ok := asTime(v)
	if !ok {
		if p, isPtr := v.(*time.Time); isPtr && p == nil {
			return z.T("never")
		}
		if _, isTime := v.(time.Time); isTime || v == nil {
			return ""
		}
		return fmt.Sprint(v)
	}
	if z.Lang == DE {
		return z.in(t).Format("02.01.2006 15:04")
	}
	return z.in(t).Format("2006-01-02 15:04")
}

// Date is the calendar day in Europe/Berlin ("05.12.2026" / "2026-12-05").
// It also takes a "2026-12-05" string. A date without a time of day (a time at midnight UTC, as a DATE column
// reads) is not shifted into another zone.
func (z Locale) Date(v any) string {
	t, ok := asTime(v)
	if s, isStr := v.(string); isStr {
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			return s
		}
		t, ok = d, true
	}
	if !ok {
		return ""
	}
	if !(t.Location() == time.UTC && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0) {
		t = z.in(t)
	}
	if z.Lang == DE {
		return t.Format("02.01.2006")
	}
	return t.Format("2006-01-02")
}

var monthsDE = [...]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}

// Month names a month: "November 2026" in both languages' words
// ("März 2026"). It takes a time or a "2026-11" string.
func (z Locale) Month(v any) string {
	var t time.Time
	switch x := v.(type) {
	case string:
		p, err := time.Parse("2006-01", x)
		if err != nil {
			return x
		}
		t = p
	default:
		tt, ok := asTime(v)
		if !ok {
			return ""
		}
		t = tt
	}
	if z.Lang == DE {
		return fmt.Sprintf("%s %d", monthsDE[t.Month()-1], t.Year())
	}
	return t.Format("January 2006")
}

// CountryOption is a country of a list shown to people: its code and its
// name in the locale's language.
type CountryOption struct {
	Code, Name string
}

// Countries names the countries in the locale's language and sorts them by
// that name with the language's collation (German: "Österreich" between
// "Norwegen" and "Polen"), so that a list reads alphabetically under the
// labels it shows. fallback gives a name for a code CLDR does not know.
func (z Locale) Countries(codes []string, fallback func(code string) string) []CountryOption {
	out := make([]CountryOption, len(codes))
	for i, c := range codes {
		fb := c
		if fallback != nil {
			fb = fallback(c)
		}
		out[i] = CountryOption{Code: c, Name: z.Country(c, fb)}
	}
	tag := language.English
	if z.Lang == DE {
		tag = language.German
	}
	col := collate.New(tag)
	sort.SliceStable(out, func(i, j int) bool { return col.CompareString(out[i].Name, out[j].Name) < 0 })
	return out
}
