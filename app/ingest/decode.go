package ingest

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"cardata/policies/errs"
)

// Signal is one decoded reading. Its strings point into the request body
// (no copy): they are valid only while the request is handled, and anything
// kept longer must be cloned.
type Signal struct {
	VIN, Key, Value, Unit, Timestamp string

	has     uint8  // fields present (bit per field)
	problem string // decode problem code for this signal alone ("" none)
	detail  string
}

const (
	hasVIN uint8 = 1 << iota
	hasKey
	hasValue
	hasUnit
	hasTimestamp
)

// Decode problems that reject one signal, and body errors that reject all.
const (
	CodeMalformedSignal = "malformed_signal" // NDJSON: the line is not a JSON object
	CodeFieldInvalid    = "field_invalid"    // a field has the wrong JSON type
	CodeMalformedBody   = "malformed_body"
	CodeSignalsMissing  = "signals_missing"
	CodeTooManySignals  = "too_many_signals"
)

const maxDepth = 64

type syntaxErr struct {
	off int
	msg string
}

// decoder scans a JSON document of the ingest's shape. It is hand-written
// because it runs for every signal (hundreds of thousands per second): it
// allocates only for strings with escape sequences.
type decoder struct {
	b   []byte
	i   int
	err *syntaxErr
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = &syntaxErr{off: d.i, msg: msg}
	}
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// str reads a JSON string at d.i (which must be '"') and returns its content.
func (d *decoder) str() string {
	d.i++ // opening quote
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if len(s) == 0 {
				return ""
			}
			return unsafe.String(&s[0], len(s))
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			d.fail("control character in string")
			return ""
		}
		d.i++
	}
	d.fail("unterminated string")
	return ""
}

// strEscaped continues a string that contains escape sequences, decoding it
// into a new buffer.
func (d *decoder) strEscaped(start int) string {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out)
		case c < 0x20:
			d.fail("control character in string")
			return ""
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				d.fail("invalid \\u escape")
				return ""
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if x, ok := d.hex4(); ok {
						r2 = x
					} else {
						d.i = save
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
				} else {
					if r2 >= 0 {
						d.i -= 6 // not a pair: reread the second escape on its own
					}
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			d.fail("invalid escape sequence")
			return ""
		}
	}
	d.fail("unterminated string")
	return ""
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
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
	d.i += 4
	return r, true
}

// number reads a JSON number and returns its literal text.
func (d *decoder) number() string {
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case digits() == 0:
		d.fail("invalid number")
		return ""
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			d.fail("invalid number")
			return ""
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			d.fail("invalid number")
			return ""
		}
	}
	s := d.b[start:d.i]
	return unsafe.String(&s[0], len(s))
}

func (d *decoder) literal(word string) bool {
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	d.fail("invalid literal")
	return false
}

// skip reads any JSON value without recursion; a small stack of open
// containers bounds the nesting.
func (d *decoder) skip() {
	var stack [maxDepth]byte
	depth := 0
	for d.err == nil {
		d.ws()
		if d.i >= len(d.b) {
			d.fail("unexpected end of input")
			return
		}
		closed := false // the value just read is complete
		switch c := d.b[d.i]; {
		case c == '{' || c == '[':
			if depth == maxDepth {
				d.fail("nesting too deep")
				return
			}
			stack[depth] = c
			depth++
			d.i++
			d.ws()
			if d.i < len(d.b) && d.b[d.i] == closer(c) {
				d.i++
				depth--
				closed = true
			} else if c == '{' && !d.objectKey() {
				return
			}
		case c == '"':
			d.str()
			closed = true
		case c == '-' || (c >= '0' && c <= '9'):
			d.number()
			closed = true
		case c == 't':
			d.literal("true")
			closed = true
		case c == 'f':
			d.literal("false")
			closed = true
		case c == 'n':
			d.literal("null")
			closed = true
		default:
			d.fail("unexpected character")
			return
		}
		if !closed {
			continue
		}
		// after a complete value: close containers, or go on to the next element
		for d.err == nil {
			if depth == 0 {
				return
			}
			d.ws()
			if d.i >= len(d.b) {
				d.fail("unexpected end of input")
				return
			}
			c := d.b[d.i]
			if c == closer(stack[depth-1]) {
				d.i++
				depth--
				continue
			}
			if c != ',' {
				d.fail("expected , or a closing bracket")
				return
			}
			d.i++
			if stack[depth-1] == '{' && !d.objectKey() {
				return
			}
			break
		}
	}
}

func closer(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// objectKey reads `"key" :` inside an object being skipped.
func (d *decoder) objectKey() bool {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.fail("expected object key")
		return false
	}
	d.str()
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		d.fail("expected :")
		return false
	}
	d.i++
	return d.err == nil
}

// value reads the "value" field: a string's content, or the literal text of
// a number, boolean, object or array (sensors send numbers either way).
// null counts as absent.
func (d *decoder) value() (string, bool) {
	if d.i >= len(d.b) {
		d.fail("unexpected end of input")
		return "", false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		return d.str(), true
	case c == 'n':
		d.literal("null")
		return "", false
	default:
		start := d.i
		d.skip()
		s := d.b[start:d.i]
		if d.err != nil || len(s) == 0 {
			return "", false
		}
		return unsafe.String(&s[0], len(s)), true
	}
}

// signal reads one signal object at d.i (which must be '{').
func (d *decoder) signal(s *Signal) {
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return
	}
	for d.err == nil {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			d.fail("expected a field name")
			return
		}
		name := d.str()
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			d.fail("expected :")
			return
		}
		d.i++
		d.ws()
		var dst *string
		var bit uint8
		switch name {
		case "vin":
			dst, bit = &s.VIN, hasVIN
		case "key":
			dst, bit = &s.Key, hasKey
		case "unit":
			dst, bit = &s.Unit, hasUnit
		case "timestamp":
			dst, bit = &s.Timestamp, hasTimestamp
		case "value":
			v, ok := d.value()
			if ok {
				s.Value, s.has = v, s.has|hasValue
			} else {
				s.Value, s.has = "", s.has&^hasValue
			}
		default:
			d.skip()
		}
		if dst != nil {
			switch {
			case d.i < len(d.b) && d.b[d.i] == '"':
				*dst = d.str()
				s.has |= bit
			case d.i < len(d.b) && d.b[d.i] == 'n':
				d.literal("null")
				*dst, s.has = "", s.has&^bit
			default:
				d.skip()
				if s.problem == "" {
					s.problem, s.detail = CodeFieldInvalid, name+" must be a string"
				}
			}
		}
		d.ws()
		if d.i >= len(d.b) {
			d.fail("unexpected end of input")
			return
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.fail("expected , or }")
			return
		}
	}
}

func tooMany(max int) error {
	return errs.New(errs.TooLarge, CodeTooManySignals, "a request carries at most %d signals", max)
}

func malformed(e *syntaxErr, line int) error {
	if line > 0 {
		return errs.New(errs.BadRequest, CodeMalformedBody, "line %d: %s", line, e.msg)
	}
	return errs.New(errs.BadRequest, CodeMalformedBody, "the body is not valid JSON: %s at byte %d", e.msg, e.off)
}

// DecodeJSON decodes {"signals":[{...},...]} into out (reset first). Other
// top-level members are ignored. A syntax error anywhere rejects the whole
// body (400); an element that is not an object, or a field of the wrong
// type, rejects only that signal. More than max signals is a 413.
func DecodeJSON(body []byte, max int, out []Signal) ([]Signal, error) {
	out = out[:0]
	d := &decoder{b: body}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return out, errs.New(errs.BadRequest, CodeMalformedBody, `the body must be a JSON object {"signals": [...]}`)
	}
	d.i++
	found := false
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
	} else {
		for d.err == nil {
			d.ws()
			if d.i >= len(d.b) || d.b[d.i] != '"' {
				d.fail("expected a member name")
				break
			}
			name := d.str()
			d.ws()
			if d.i >= len(d.b) || d.b[d.i] != ':' {
				d.fail("expected :")
				break
			}
			d.i++
			d.ws()
			if name == "signals" {
				if found {
					d.fail("signals given twice")
					break
				}
				found = true
				var err error
				if out, err = d.signals(max, out); err != nil {
					return out, err
				}
			} else {
				d.skip()
			}
			d.ws()
			if d.i >= len(d.b) {
				d.fail("unexpected end of input")
				break
			}
			if d.b[d.i] == '}' {
				d.i++
				break
			}
			if d.b[d.i] != ',' {
				d.fail("expected , or }")
				break
			}
			d.i++
		}
	}
	if d.err == nil {
		d.ws()
		if d.i != len(d.b) {
			d.fail("unexpected data after the object")
		}
	}
	if d.err != nil {
		return out, malformed(d.err, 0)
	}
	if !found {
		return out, errs.New(errs.BadRequest, CodeSignalsMissing, `the body has no "signals" array`)
	}
	return out, nil
}

func (d *decoder) signals(max int, out []Signal) ([]Signal, error) {
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		d.fail(`"signals" must be an array`)
		return out, nil
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return out, nil
	}
	for d.err == nil {
		if len(out) == max {
			return out, tooMany(max)
		}
		out = append(out, Signal{})
		s := &out[len(out)-1]
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == '{' {
			d.signal(s)
		} else {
			d.skip()
			s.problem, s.detail = CodeFieldInvalid, "a signal must be a JSON object"
		}
		d.ws()
		if d.i >= len(d.b) {
			d.fail("unexpected end of input")
			break
		}
		if d.b[d.i] == ']' {
			d.i++
			break
		}
		if d.b[d.i] != ',' {
			d.fail("expected , or ]")
			break
		}
		d.i++
	}
	return out, nil
}

// DecodeNDJSON decodes one signal object per line. Blank lines are skipped;
// a line that is not a JSON object rejects that signal only.
func DecodeNDJSON(body []byte, max int, out []Signal) ([]Signal, error) {
	out = out[:0]
	for start := 0; start < len(body); {
		end := start
		for end < len(body) && body[end] != '\n' {
			end++
		}
		line := body[start:end]
		start = end + 1
		d := &decoder{b: line}
		d.ws()
		if d.i == len(line) {
			continue
		}
		if len(out) == max {
			return out, tooMany(max)
		}
		out = append(out, Signal{})
		s := &out[len(out)-1]
		if line[d.i] != '{' {
			s.problem, s.detail = CodeMalformedSignal, "the line is not a JSON object"
			continue
		}
		d.signal(s)
		d.ws()
		if d.err == nil && d.i != len(line) {
			d.fail("unexpected data after the object")
		}
		if d.err != nil {
			*s = Signal{problem: CodeMalformedSignal, detail: "the line is not valid JSON: " + d.err.msg + " at column " + strconv.Itoa(d.err.off+1)}
		}
	}
	return out, nil
}
