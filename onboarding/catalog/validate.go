package catalog

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"cardata/policies/errs"
)

// Value limits. PostgreSQL text cannot hold NUL bytes or invalid UTF-8, so
// those are refused here rather than failing a whole batch in the database.
const (
	MaxStringLen = 1024      // bytes, string values
	MaxJSONLen   = 16 * 1024 // bytes, json values
	// MaxNumberLen bounds a number's literal (also inside JSON values):
	// pushes carry numbers as JSON numbers, and PostgreSQL's numeric (what
	// jsonb stores them as) refuses more than 16383 fractional digits.
	MaxNumberLen = 64
	maxJSONDepth = 64
)

// Bounds of timestamp values: readings of connected vehicles (built from
// 2000 on) and due dates within the life of one.
var (
	MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Stable codes of value errors (also used by the ingest's rejection list).
const (
	CodeValueEmpty      = "value_empty"
	CodeValueType       = "value_type_mismatch"
	CodeValueRange      = "value_out_of_range"
	CodeValueNotInEnum  = "value_not_in_enum"
	CodeValueTooLong    = "value_too_long"
	CodeValueNotUTF8    = "value_not_utf8"
	CodeValueNotAllowed = "value_not_allowed" // control characters
)

func valueErr(code, format string, args ...any) *errs.Error {
	return errs.New(errs.Invalid, code, format, args...)
}

// Validate checks that value (a string as read from the vehicle) matches the
// key's type and bounds. It returns nil or an *errs.Error with a stable code.
// It is on the ingest's hot path: no allocation unless the value is bad.
func (k *Key) Validate(value string) error {
	if value == "" && k.Type != String {
		return valueErr(CodeValueEmpty, "%s needs a value", k.Name)
	}
	switch k.Type {
	case Integer:
		if len(value) > MaxNumberLen || !isNumber(value, false) {
			return valueErr(CodeValueType, "%s is an integer such as 42; %q is not", k.Name, clip(value))
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return valueErr(CodeValueType, "%s is an integer; %q is not", k.Name, clip(value))
		}
		return k.checkRange(float64(n), value)
	case Decimal:
		if len(value) > MaxNumberLen || !isNumber(value, true) {
			return valueErr(CodeValueType, "%s is a decimal number such as 12.5; %q is not", k.Name, clip(value))
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return valueErr(CodeValueRange, "%s: %q is out of range", k.Name, clip(value))
		}
		return k.checkRange(f, value)
	case Boolean:
		if value != "true" && value != "false" {
			return valueErr(CodeValueType, "%s is true or false; %q is not", k.Name, clip(value))
		}
	case Enum:
		if !slices.Contains(k.Values, value) {
			return valueErr(CodeValueNotInEnum, "%s is one of %s; %q is not", k.Name, strings.Join(k.Values, ", "), clip(value))
		}
	case Timestamp:
		t, err := time.Parse(time.RFC3339, value)
		if err != nil {
			return valueErr(CodeValueType, "%s is an RFC 3339 timestamp such as 2024-05-01T12:00:00Z; %q is not", k.Name, clip(value))
		}
		if t.Before(MinTime) || !t.Before(MaxTime) {
			return valueErr(CodeValueRange, "%s lies between 2000 and 2100; %q does not", k.Name, clip(value))
		}
	case String:
		if len(value) > MaxStringLen {
			return valueErr(CodeValueTooLong, "%s takes at most %d bytes", k.Name, MaxStringLen)
		}
		return checkText(k, value)
	case JSON:
		if len(value) > MaxJSONLen {
			return valueErr(CodeValueTooLong, "%s takes at most %d bytes of JSON", k.Name, MaxJSONLen)
		}
		if err := checkText(k, value); err != nil {
			return err
		}
		if code, why := checkJSON(value); code != "" {
			return valueErr(code, "%s is a JSON document: %s", k.Name, why)
		}
	}
	return nil
}

func (k *Key) checkRange(f float64, value string) error {
	if (k.Min != nil && f < *k.Min) || (k.Max != nil && f > *k.Max) {
		return valueErr(CodeValueRange, "%s must be between %s and %s; %s is not", k.Name, bound(k.Min), bound(k.Max), clip(value))
	}
	return nil
}

func bound(b *float64) string {
	if b == nil {
		return "any"
	}
	return strconv.FormatFloat(*b, 'f', -1, 64)
}

// checkText refuses invalid UTF-8 and control characters other than tab,
// newline and carriage return (NUL in particular cannot be stored).
func checkText(k *Key, value string) error {
	if !utf8.ValidString(value) {
		return valueErr(CodeValueNotUTF8, "%s must be valid UTF-8", k.Name)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return valueErr(CodeValueNotAllowed, "%s must not contain control characters", k.Name)
		}
	}
	return nil
}

// isNumber accepts the JSON notation of an integer, -?(0|[1-9][0-9]*), and
// with frac a fraction too: no exponent, leading plus or zeros, NaN or Inf.
// Values are pushed as JSON numbers verbatim, so anything JSON refuses
// ("007", "+5") would break every push that carries it.
func isNumber(s string, frac bool) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start || (s[start] == '0' && i-start > 1) {
		return false
	}
	if i == len(s) {
		return true
	}
	if !frac || s[i] != '.' {
		return false
	}
	i++
	f := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > f && i == len(s)
}

// clip shortens a bad value for an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	for i := 40; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
