package sqlarray_test

import (
	"testing"
	"time"

	"cardata/app/db/dbtest"
	"cardata/policies/sqlarray"
)

// The literals round-trip through PostgreSQL element by element, quotes,
// backslashes, commas, braces, NULL-looking text and microseconds included.
func TestArraysRoundTrip(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	texts := sqlarray.Texts{`plain`, `with "quotes"`, `back\slash`, `a,b`, `{x}`, `NULL`, ``, `ü €`}
	var got []string
	if err := gdb.Raw("SELECT unnest(?::text[])", texts).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(texts) {
		t.Fatalf("got %q", got)
	}
	for i := range texts {
		if got[i] != texts[i] {
			t.Fatalf("element %d: %q, want %q", i, got[i], texts[i])
		}
	}
	var sum int64
	gdb.Raw("SELECT sum(x) FROM unnest(?::bigint[]) x", sqlarray.Int64s{1, -2, 9_000_000_000}).Scan(&sum)
	if sum != 8_999_999_999 {
		t.Fatalf("sum = %d", sum)
	}
	var trues int
	gdb.Raw("SELECT count(*) FROM unnest(?::bool[]) b WHERE b", sqlarray.Bools{true, false, true}).Scan(&trues)
	if trues != 2 {
		t.Fatalf("trues = %d", trues)
	}
	at := time.Date(2026, 3, 29, 1, 30, 0, 123456000, time.FixedZone("x", 3600))
	var back time.Time
	gdb.Raw("SELECT (?::timestamptz[])[1]", sqlarray.Times{at}).Row().Scan(&back)
	if !back.Equal(at) {
		t.Fatalf("time %s, want %s", back, at)
	}
	var n int
	gdb.Raw("SELECT cardinality(?::bigint[])", sqlarray.Int64s{}).Scan(&n)
	if n != 0 {
		t.Fatalf("empty array has %d elements", n)
	}
}
