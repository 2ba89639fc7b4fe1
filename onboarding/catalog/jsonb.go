package catalog

import (
	"math"
	"strconv"
)

// checkJSON reports whether s is one JSON document that PostgreSQL's jsonb
// also accepts: returns "" or a value error code and the reason. json.Valid
// is not enough: jsonb refuses \u0000 and unpaired surrogates in strings,
// and numbers outside numeric's range (1e999999), and a value it refuses
// fails the push that carries it. It scans without allocating; s is
// already known to be valid UTF-8 without raw control characters.
func checkJSON(s string) (code, reason string) {
	p := jsonScan{s: s}
	p.value(0)
	if p.code == "" {
		p.ws()
		if p.i != len(s) {
			p.fail(CodeValueType, "data after the JSON value")
		}
	}
	return p.code, p.why
}

type jsonScan struct {
	s         string
	i         int
	code, why string
}

func (p *jsonScan) fail(code, why string) bool {
	if p.code == "" {
		p.code, p.why = code, why
	}
	return false
}

func (p *jsonScan) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScan) peek(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonScan) value(depth int) bool {
	p.ws()
	if p.i >= len(p.s) {
		return p.fail(CodeValueType, "the value does not parse as JSON")
	}
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		if depth == maxJSONDepth {
			return p.fail(CodeValueType, "nested too deep")
		}
		p.i++
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		if p.peek(end) {
			return true
		}
		for {
			if c == '{' {
				p.ws()
				if p.i >= len(p.s) || p.s[p.i] != '"' || !p.str() || !p.peek(':') {
					return p.fail(CodeValueType, "the value does not parse as JSON")
				}
			}
			if !p.value(depth + 1) {
				return false
			}
			if p.peek(',') {
				continue
			}
			if p.peek(end) {
				return true
			}
			return p.fail(CodeValueType, "the value does not parse as JSON")
		}
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		for _, w := range [...]string{"true", "false", "null"} {
			if len(p.s)-p.i >= len(w) && p.s[p.i:p.i+len(w)] == w {
				p.i += len(w)
				return true
			}
		}
		return p.fail(CodeValueType, "the value does not parse as JSON")
	}
}

// str reads a string at p.i ('"').
func (p *jsonScan) str() bool {
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return p.fail(CodeValueNotAllowed, "control character in a string")
		case c != '\\':
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			break
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			r, ok := p.hex4()
			switch {
			case !ok:
				return p.fail(CodeValueType, "invalid \\u escape")
			case r == 0:
				return p.fail(CodeValueNotAllowed, "\\u0000 cannot be stored")
			case r >= 0xDC00 && r <= 0xDFFF:
				return p.fail(CodeValueNotAllowed, "unpaired UTF-16 surrogate")
			case r >= 0xD800 && r <= 0xDBFF:
				if p.i+1 >= len(p.s) || p.s[p.i] != '\\' || p.s[p.i+1] != 'u' {
					return p.fail(CodeValueNotAllowed, "unpaired UTF-16 surrogate")
				}
				p.i += 2
				if r2, ok := p.hex4(); !ok || r2 < 0xDC00 || r2 > 0xDFFF {
					return p.fail(CodeValueNotAllowed, "unpaired UTF-16 surrogate")
				}
			}
		default:
			return p.fail(CodeValueType, "invalid escape sequence")
		}
	}
	return p.fail(CodeValueType, "unterminated string")
}

func (p *jsonScan) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for j := p.i; j < p.i+4; j++ {
		c := p.s[j]
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// number reads a JSON number and requires a finite float64 that is not a
// non-zero literal rounded to zero (1e-999999): jsonb's numeric refuses
// both ends far beyond float64, and nobody's sensor means them.
func (p *jsonScan) number() bool {
	start := p.i
	nonzero := false
	digits := func(mantissa bool) int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			if mantissa && p.s[p.i] != '0' {
				nonzero = true
			}
			p.i++
			n++
		}
		return n
	}
	if p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case digits(true) == 0:
		return p.fail(CodeValueType, "invalid number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits(true) == 0 {
			return p.fail(CodeValueType, "invalid number")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits(false) == 0 {
			return p.fail(CodeValueType, "invalid number")
		}
	}
	lit := p.s[start:p.i]
	if len(lit) > MaxNumberLen {
		return p.fail(CodeValueRange, "a number has more than 64 characters")
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) || (f == 0 && nonzero) {
		return p.fail(CodeValueRange, "a number is out of range")
	}
	return true
}
