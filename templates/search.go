package templates

import "unicode/utf8"

// The header search's results page, the same for the staff UI and the
// partner portal (partial "search-page"); each surface decides which kinds
// of things a role may find and fills the groups.

// SearchHit is one thing found.
type SearchHit struct {
	Label, Detail, Path string
}

// SearchGroup is the hits of one kind.
type SearchGroup struct {
	Kind  string // providers, tickets, invoices, vehicles (the section id)
	Title string
	Hits  []SearchHit
	More  string // the kind's list filtered by the query, when it found more
}

// SearchPage is what the partial shows.
type SearchPage struct {
	Action string // the form's path: /admin/search or /portal/search
	Query  string
	Groups []SearchGroup
	Kinds  []string // the titles of the kinds the role may search
	Empty  bool     // searched, nothing found
}

// Search bounds: a shorter query finds too much to be useful.
const (
	SearchMinLen = 2
	SearchMaxLen = 100
)

// SearchQueryProblem is the field error (a catalog id) of a query that is
// too short or too long, "" for one that may be searched.
func SearchQueryProblem(q string) string {
	switch n := utf8.RuneCountInString(q); {
	case n < SearchMinLen:
		return "Type at least 2 characters."
	case n > SearchMaxLen:
		return "Type at most 100 characters."
	}
	return ""
}
