// Package sqlarray passes Go slices to PostgreSQL as one array parameter
// (`?::bigint[]`, `unnest(?::text[], ...)`). gorm would otherwise expand a
// slice into a list of placeholders; these types are driver.Valuers that
// render PostgreSQL's array literal.
package sqlarray

import (
	"database/sql/driver"
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
