package i18n

// CSVHeader translates a CSV export's column ids into l: the catalog entry
// "csv:<id>" where the id is also a word of the pages ("paid", "open"),
// else "<id>". The column order never changes; English keeps the ids
// (stable names for scripts), German has labels (docs/CONVENTIONS.md,
// "Lists: sorting and CSV exports").
func CSVHeader(l Lang, ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if s, ok := Lookup(l, "csv:"+id); ok {
			out[i] = s
		} else {
			out[i] = T(l, id)
		}
	}
	return out
}
