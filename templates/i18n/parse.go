package i18n

import (
	"errors"
	"strings"

	"github.com/shopspring/decimal"
)

// ErrAmount and ErrAmbiguous are ParseAmount's refusals; a form shows them
// as a field error (translated by the caller).
var (
	ErrAmount    = errors.New("not an amount: use digits with at most one decimal separator, e.g. 1000.00 or 1.000,00")
	ErrAmbiguous = errors.New("ambiguous amount: 1.000 or 1,000 may be a thousand or one; write 1000 or 1000.00 / 1000,00")
)

// ParseAmount reads an amount as a German or an English speaker types it:
// "1000.00", "1000,00", "1.000,00", "1,000.00", "1 000,00", "-5.50",
// "0.015", with or without "€" / "EUR". When both separators appear, the
// last one is the decimal separator and the other must group by threes.
// One separator that could be either (one to three digits, a separator,
// exactly three digits: "1.000", "10,000") is refused as ErrAmbiguous
// rather than guessed; a leading 0 ("0.015") or a longer first group
// ("1000.000") cannot be a thousands separator and reads as decimals.
func ParseAmount(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "€"), "€")
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "EUR"))
	s = strings.TrimPrefix(s, "€")
	s = strings.NewReplacer(" ", "", "\u00a0", "", "\u202f", "", "'", "").Replace(strings.TrimSpace(s))
	sign := ""
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		if s[0] == '-' {
			sign = "-"
		}
		s = s[1:]
	}
	if s == "" {
		return decimal.Zero, ErrAmount
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' && r != ',' {
			return decimal.Zero, ErrAmount
		}
	}
	lastDot, lastComma := strings.LastIndex(s, "."), strings.LastIndex(s, ",")
	var intPart, frac string
	switch {
	case lastDot >= 0 && lastComma >= 0:
		dec := max(lastDot, lastComma)
		grp := ","
		if dec == lastComma {
			grp = "."
		}
		intPart, frac = s[:dec], s[dec+1:]
		if strings.ContainsAny(frac, ".,") || frac == "" {
			return decimal.Zero, ErrAmount
		}
		var ok bool
		if intPart, ok = ungroup(intPart, grp); !ok {
			return decimal.Zero, ErrAmount
		}
	case lastDot >= 0 || lastComma >= 0:
		sep := "."
		if lastComma >= 0 {
			sep = ","
		}
		parts := strings.Split(s, sep)
		if len(parts) > 2 {
			// several: only thousands separators ("1.000.000")
			var ok bool
			if intPart, ok = ungroup(s, sep); !ok {
				return decimal.Zero, ErrAmount
			}
			break
		}
		intPart, frac = parts[0], parts[1]
		if frac == "" {
			return decimal.Zero, ErrAmount
		}
		if len(frac) == 3 && len(intPart) >= 1 && len(intPart) <= 3 && intPart[0] != '0' {
			return decimal.Zero, ErrAmbiguous
		}
	default:
		intPart = s
	}
	if intPart == "" {
		intPart = "0"
	}
	num := sign + intPart
	if frac != "" {
		num += "." + frac
	}
	d, err := decimal.NewFromString(num)
	if err != nil {
		return decimal.Zero, ErrAmount
	}
	return d, nil
}

// ungroup removes thousands separators sep from s, which must group by
// threes after a first group of one to three digits.
func ungroup(s, sep string) (string, bool) {
	if !strings.Contains(s, sep) {
		return s, s != ""
	}
	parts := strings.Split(s, sep)
	if len(parts[0]) < 1 || len(parts[0]) > 3 || parts[0][0] == '0' {
		return "", false
	}
	for _, p := range parts[1:] {
		if len(p) != 3 {
			return "", false
		}
	}
	return strings.Join(parts, ""), true
}
