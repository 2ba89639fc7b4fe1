// Package sqlarray passes Go slices to PostgreSQL as one array parameter
// (`?::bigint[]`, `unnest(?::text[], ...)`). gorm would otherwise expand a
// slice into a list of placeholders; these types are driver.Valuers that
// render PostgreSQL's array literal.
package sqlarray

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Texts is a text[] parameter; elements are quoted and escaped.
type Texts []string

var quote = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func (a Texts) Value() (driver.Value, error) {
	return literal(len(a), func(b *strings.Builder, i int) {
		b.WriteByte('"')
		quote.WriteString(b, a[i])
		b.WriteByte('"')
	}), nil
}

// Int64s is a bigint[] (or smallint[], int[]) parameter.
type Int64s []int64

func (a Int64s) Value() (driver.Value, error) {
	return literal(len(a), func(b *strings.Builder, i int) { b.WriteString(strconv.FormatInt(a[i], 10)) }), nil
}

// Int16s is a smallint[] column or parameter (catalog key ids). Unlike the
// other types it also scans: a NULL array scans as nil, an empty one as an
// empty non-nil slice, and a nil Int16s is written as NULL.
type Int16s []int16

func (a Int16s) Value() (driver.Value, error) {
	if a == nil {
		return nil, nil
	}
	return a.Literal(), nil
}

// GormDataType tells gorm the column type of a struct field.
func (Int16s) GormDataType() string { return "smallint[]" }

// Literal renders the array literal ("{150,151}").
func (a Int16s) Literal() string {
	return literal(len(a), func(b *strings.Builder, i int) { b.WriteString(strconv.FormatInt(int64(a[i]), 10)) })
}

// Scan reads PostgreSQL's text form of a one-dimensional smallint[].
func (a *Int16s) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("sqlarray: cannot scan %T into Int16s", src)
	}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return fmt.Errorf("sqlarray: not an array literal: %q", s)
	}
	out := Int16s{}
	if body := s[1 : len(s)-1]; body != "" {
		for _, f := range strings.Split(body, ",") {
			n, err := strconv.ParseInt(f, 10, 16)
			if err != nil {
				return fmt.Errorf("sqlarray: smallint element %q: %w", f, err)
			}
			out = append(out, int16(n))
		}
	}
	*a = out
	return nil
}

// Bools is a boolean[] parameter.
type Bools []bool

func (a Bools) Value() (driver.Value, error) {
	return literal(len(a), func(b *strings.Builder, i int) {
		if a[i] {
			b.WriteByte('t')
		} else {
			b.WriteByte('f')
		}
	}), nil
}

// Times is a timestamptz[] parameter, exact to the microsecond.
type Times []time.Time

func (a Times) Value() (driver.Value, error) {
	return literal(len(a), func(b *strings.Builder, i int) {
		b.WriteByte('"')
		b.WriteString(a[i].UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
		b.WriteByte('"')
	}), nil
}

func literal(n int, elem func(*strings.Builder, int)) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		elem(&b, i)
	}
	b.WriteByte('}')
	return b.String()
}
