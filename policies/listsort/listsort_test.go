package listsort

import (
	"strings"
	"testing"
)

var providers = Spec{
	Columns: map[string]string{
		"name":       "lower(providers.legal_name)",
		"registered": "providers.submitted_at",
	},
	Tiebreak: "providers.id",
	Default:  Order{Key: "name"},
}

func TestParseAndSQL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sort, dir string
		want      Order
		sql       string
	}{
		{"", "", Order{Key: "name"}, "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC"},
		{"name", "desc", Order{Key: "name", Desc: true}, "lower(providers.legal_name) DESC NULLS LAST, providers.id DESC"},
		{"-registered", "", Order{Key: "registered", Desc: true}, "providers.submitted_at DESC NULLS LAST, providers.id DESC"},
		{"registered", "ASC", Order{Key: "registered"}, "providers.submitted_at ASC NULLS LAST, providers.id ASC"},
		{"registered", "sideways", Order{Key: "registered"}, "providers.submitted_at ASC NULLS LAST, providers.id ASC"},
		// Unknown keys and injection attempts fall back to the default.
		{"nope", "desc", Order{Key: "name"}, "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC"},
		{"name;drop table providers", "", Order{Key: "name"}, "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC"},
		{"name;drop", "desc", Order{Key: "name"}, "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC"},
		{"-", "", Order{Key: "name"}, "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC"},
		{"legal_name", "", Order{Key: "name"}, "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC"},
	}
	for _, c := range cases {
		got := providers.Parse(c.sort, c.dir)
		if got != c.want {
			t.Errorf("Parse(%q, %q) = %+v, want %+v", c.sort, c.dir, got, c.want)
		}
		if sql := providers.SQL(got); sql != c.sql {
			t.Errorf("SQL(%+v) = %q, want %q", got, sql, c.sql)
		}
		if strings.Contains(providers.SQL(got), ";") {
			t.Errorf("user input reached SQL: %q", providers.SQL(got))
		}
	}
	// An Order built by hand with an unknown key never reaches SQL either.
	if sql := providers.SQL(Order{Key: "1;drop table x", Desc: true}); sql != "lower(providers.legal_name) ASC NULLS LAST, providers.id ASC" {
		t.Errorf("hand-made unknown order = %q", sql)
	}
}

func TestDefaultSQL(t *testing.T) {
	t.Parallel()
	s := Spec{Columns: map[string]string{"at": "at"}, Tiebreak: "id", DefaultSQL: "id DESC"}
	if o := s.Parse("bogus", "asc"); o != (Order{}) {
		t.Fatalf("unknown key gave %+v", o)
	}
	if got := s.SQL(Order{}); got != "id DESC" {
		t.Fatalf("default = %q", got)
	}
	if got := s.SQL(s.Parse("at", "")); got != "at ASC NULLS LAST, id ASC" {
		t.Fatalf("at = %q", got)
	}
}
