package vehicles

import (
	"cardata/policies/errs"
)

// vinAllowed is the ISO 3779 alphabet: digits and capital letters except
// I, O and Q (too easily read as 1 and 0).
func vinAllowed(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z' && c != 'I' && c != 'O' && c != 'Q')
}

// IsVIN reports whether s is a well-formed VIN (already normalized).
func IsVIN(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !vinAllowed(s[i]) {
			return false
		}
	}
	return true
}

// ValidateVIN checks a normalized VIN and explains what is wrong, as a field
// error on field. The check digit (position 9) is NOT enforced: ISO 3779 does
// not require one and European VINs may use that position freely; only North
// American VINs must carry it (see CheckDigit).
func ValidateVIN(v *errs.Validation, field, vin string) {
	switch {
	case vin == "":
		v.Add(field, "vin_required", "enter the 17-character vehicle identification number")
	case len(vin) != 17:
		v.Add(field, "vin_length", "a VIN has exactly 17 characters; this one has %d", len(vin))
	default:
		for i := 0; i < len(vin); i++ {
			c := vin[i]
			if vinAllowed(c) {
				continue
			}
			switch c {
			case 'I', 'O', 'Q':
				v.Add(field, "vin_characters", "a VIN never contains I, O or Q (position %d is %q; did you mean 1 or 0?)", i+1, c)
			default:
				v.Add(field, "vin_characters", "a VIN uses only digits and capital letters; position %d is not one", i+1)
			}
			return
		}
	}
}

var translit = map[byte]int{
	'A': 1, 'B': 2, 'C': 3, 'D': 4, 'E': 5, 'F': 6, 'G': 7, 'H': 8,
	'J': 1, 'K': 2, 'L': 3, 'M': 4, 'N': 5, 'P': 7, 'R': 9,
	'S': 2, 'T': 3, 'U': 4, 'V': 5, 'W': 6, 'X': 7, 'Y': 8, 'Z': 9,
}

var weights = [17]int{8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2}

// CheckDigit computes the North American (49 CFR 565) check digit of a
// well-formed VIN: '0'-'9' or 'X'.
func CheckDigit(vin string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		c := vin[i]
		n := int(c - '0')
		if c >= 'A' {
			n = translit[c]
		}
		sum += n * weights[i]
	}
	if r := sum % 11; r < 10 {
		return byte('0' + r)
	}
	return 'X'
}

// HasValidCheckDigit reports whether position 9 holds the check digit;
// informational only (shown to staff), never required.
func HasValidCheckDigit(vin string) bool { return IsVIN(vin) && vin[8] == CheckDigit(vin) }
