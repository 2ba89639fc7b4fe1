package support

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"

	"cardata/policies/jsonb"
	"cardata/templates/i18n"
)

// Note is the text the desk writes to an event ("via portal", "to Sam",
// "30 min billable by Sam"): a message id of the catalogs
// (templates/i18n/messages.*.toml; the English text with go-i18n
// parameters) and its parameters, so the ticket page says it in its
// reader's language. What a person typed (a reason, a subject, a name) is
// a parameter and stays as typed. The event keeps the English text in
// note as well (the audit trail, old readers).
type Note struct {
	ID   string
	Args NoteArgs
}

// NoteArgs are a note's parameters by name, stored as a JSON object
// (support_events.note_args). A parameter that is itself a word of the
// product (a category, a kind of link) is {"term": "Invoice"} and is
// translated with the note; numbers print in the reader's format, except
// Count, which also picks the plural.
type NoteArgs map[string]any

// noteOf is the note id with its parameters as name/value pairs.
func noteOf(id string, kv ...any) Note {
	n := Note{ID: id}
	if len(kv) > 0 {
		n.Args = NoteArgs{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Args[fmt.Sprint(kv[i])] = kv[i+1]
		}
	}
	return n
}

// term marks a note parameter as a word of the product.
func term(word string) map[string]any { return map[string]any{"term": word} }

// In is the note in lang ("" without a note).
func (n Note) In(lang i18n.Lang) string {
	if n.ID == "" {
		return ""
	}
	z := i18n.Locale{Lang: lang}
	args := make([]any, 0, 2*len(n.Args))
	for k, v := range n.Args {
		args = append(args, k, noteArg(z, k, v))
	}
	return i18n.T(lang, n.ID, args...)
}

func noteArg(z i18n.Locale, name string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		if w, ok := x["term"].(string); ok {
			return z.T(w)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			if name == "Count" {
				return i
			}
			return z.Number(i)
		}
		return x.String()
	case int, int64:
		if name == "Count" {
			return x
		}
		return z.Number(x)
	}
	return v
}

// English is the note's English text (kept in support_events.note).
func (n Note) English() string { return n.In(i18n.EN) }

// Value stores the parameters as a JSON object.
func (a NoteArgs) Value() (driver.Value, error) {
	if a == nil {
		return "{}", nil
	}
	return jsonb.Value(map[string]any(a))
}

// Scan reads the JSON object back (numbers as json.Number).
func (a *NoteArgs) Scan(src any) error {
	m := map[string]any{}
	ok, err := jsonb.Scan(src, &m)
	if err != nil {
		return fmt.Errorf("note_args: %w", err)
	}
	if ok {
		*a = m
	} else {
		*a = nil
	}
	return nil
}

// NoteIn is the event's note in the language lang names ("de", "en"):
// the desk's note in that language, or the stored text of an event
// written before notes had ids.
func (e Event) NoteIn(lang string) string {
	if e.NoteID == "" {
		return e.Note
	}
	l, ok := i18n.Parse(lang)
	if !ok {
		l = i18n.EN
	}
	return Note{ID: e.NoteID, Args: e.NoteArgs}.In(l)
}

// englishNumber is n as an English note prints it (audit summaries keep
// the English text of their notes).
func englishNumber[N int | int64](n N) string { return i18n.Locale{Lang: i18n.EN}.Number(n) }
