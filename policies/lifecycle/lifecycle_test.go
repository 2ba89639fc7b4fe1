package lifecycle

import (
	"slices"
	"testing"
)

type row struct {
	name string
	by   []string
}

func (r row) clone() row {
	r.by = slices.Clone(r.by)
	return r
}

var table = []row{{"a", []string{"x"}}, {"b", []string{"y"}}, {"c", []string{"x", "y"}}}

func TestAllCopiesTheTable(t *testing.T) {
	got := All(table, row.clone)
	if len(got) != 3 || got[0].name != "a" || got[2].name != "c" {
		t.Fatalf("All = %v", got)
	}
	got[0].by[0] = "changed"
	got[1].name = "changed"
	if table[0].by[0] != "x" || table[1].name != "b" {
		t.Fatalf("All handed out the table itself: %v", table)
	}
}

func TestFindReturnsACopyOfTheFirstMatch(t *testing.T) {
	got, ok := Find(table, func(r row) bool { return slices.Contains(r.by, "y") }, row.clone)
	if !ok || got.name != "b" {
		t.Fatalf("Find = %v, %v; want b", got, ok)
	}
	got.by[0] = "changed"
	if table[1].by[0] != "y" {
		t.Fatal("Find handed out the table's slice")
	}
	if got, ok := Find(table, func(r row) bool { return r.name == "z" }, row.clone); ok || got.name != "" || got.by != nil {
		t.Fatalf("Find of nothing = %v, %v; want the zero row, false", got, ok)
	}
}

func TestFilterKeepsOrderAndCopies(t *testing.T) {
	got := Filter(table, func(r row) bool { return slices.Contains(r.by, "x") }, row.clone)
	if len(got) != 2 || got[0].name != "a" || got[1].name != "c" {
		t.Fatalf("Filter = %v; want a, c", got)
	}
	got[1].by[1] = "changed"
	if table[2].by[1] != "y" {
		t.Fatal("Filter handed out the table's slice")
	}
	if got := Filter(table, func(row) bool { return false }, row.clone); got != nil {
		t.Fatalf("Filter of nothing = %v; want nil", got)
	}
}
