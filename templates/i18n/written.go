package i18n

import "regexp"

// Written is a text CarData writes into a history in English (a cascade's
// or a job's note), recognised by its pattern: the pattern's named groups
// are the parameters of the catalog message ID, so a page can say old and
// new rows in its reader's language.
type Written struct {
	Re *regexp.Regexp
	ID string
}

// WrittenIn says text in l: by the first of ws whose pattern matches it,
// else as a fixed text of the catalogs, else as it stands (what a person
// typed stays as typed).
func WrittenIn(l Lang, text string, ws []Written) string {
	for _, w := range ws {
		m := w.Re.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		args := make([]any, 0, 2*len(m))
		for i, name := range w.Re.SubexpNames() {
			if name != "" {
				args = append(args, name, m[i])
			}
		}
		return T(l, w.ID, args...)
	}
	return T(l, text)
}
