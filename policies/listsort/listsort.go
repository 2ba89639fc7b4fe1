// Package listsort turns a list page's ?sort= and ?dir= into an SQL ORDER
// BY clause through a whitelist: each list names its sortable columns and
// the SQL expression behind each key, so what a person types into the URL
// never reaches SQL. An unknown key (a typo, an old bookmark, an injection
// attempt such as "name;drop") falls back to the list's default order, as
// an HTML list would rather show its rows than an error. Every clause ends
// with a stable tiebreak (the row id), so paging never repeats or skips a
// row between equal values.
package listsort

import "strings"

// Order is a list's sort choice: a whitelisted key and a direction. The
// zero Order is the list's default order.
type Order struct {
	Key  string
	Desc bool
}

// Spec is one list's whitelist.
type Spec struct {
	// Columns maps a sort key (as in ?sort=key) to its SQL expression.
	Columns map[string]string
	// Tiebreak is the unique column that orders equal values (e.g.
	// "providers.id"); it follows the chosen direction.
	Tiebreak string
	// Default is the order shown when the URL names none (or an unknown
	// key); with an empty Key, DefaultSQL is used instead.
	Default    Order
	DefaultSQL string
}

// Parse reads the sort parameters: sort=name (ascending), sort=-name or
// sort=name&dir=desc (descending). An unknown key gives the default order.
func (s Spec) Parse(sort, dir string) Order {
	sort = strings.TrimSpace(sort)
	desc := strings.EqualFold(strings.TrimSpace(dir), "desc")
	if strings.HasPrefix(sort, "-") {
		sort, desc = sort[1:], true
	}
	if _, ok := s.Columns[sort]; !ok || sort == "" {
		return s.Default
	}
	return Order{Key: sort, Desc: desc}
}

// SQL is the ORDER BY clause for o (without the keywords): the column's
// expression, NULLs last in either direction, then the tiebreak. An order
// whose key is not in the whitelist gives the default clause.
func (s Spec) SQL(o Order) string {
	expr, ok := s.Columns[o.Key]
	if !ok || o.Key == "" {
		if s.Default.Key != "" {
			if _, known := s.Columns[s.Default.Key]; known {
				return s.SQL(s.Default)
			}
		}
		if s.DefaultSQL != "" {
			return s.DefaultSQL
		}
		return s.Tiebreak
	}
	dir := " ASC"
	if o.Desc {
		dir = " DESC"
	}
	clause := expr + dir + " NULLS LAST"
	if s.Tiebreak != "" {
		clause += ", " + s.Tiebreak + dir
	}
	return clause
}

// Keys lists the whitelisted keys (for documentation and tests).
func (s Spec) Keys() []string {
	out := make([]string, 0, len(s.Columns))
	for k := range s.Columns {
		out = append(out, k)
	}
	return out
}
