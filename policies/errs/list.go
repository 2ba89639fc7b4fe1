package errs

import (
	"fmt"
	"strings"
)

// List is an argument of a message that is a list, its items joined by
// Sep: it prints as the items' English joined (the API's text, the audit
// summary the hash chain covers), and a page says each item in its
// reader's language (a Term translated, a Phrase with its own format, any
// other item as it prints). Terms and ListOf make one.
type List struct {
	Items []any
	Sep   string
}

// Terms is a list of words of the product ("partner_manager, finance"),
// each translated on a page as an errs.Term is.
func Terms(sep string, words ...string) List {
	items := make([]any, len(words))
	for i, w := range words {
		items[i] = Term(w)
	}
	return List{Items: items, Sep: sep}
}

// ListOf is a list of items of any kind (Phrases, Terms, plain values).
func ListOf[T any](sep string, items []T) List {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it
	}
	return List{Items: out, Sep: sep}
}

func (l List) String() string {
	parts := make([]string, len(l.Items))
	for i, it := range l.Items {
		parts[i] = fmt.Sprint(it)
	}
	return strings.Join(parts, l.Sep)
}

// Text is the list as tr says each item (its English when tr is nil).
func (l List) Text(tr Translator) string {
	if tr == nil {
		return l.String()
	}
	parts := make([]string, len(l.Items))
	for i, it := range l.Items {
		switch x := it.(type) {
		case Term:
			parts[i] = tr(string(x), nil)
		case interface{ Text(Translator) string }:
			parts[i] = x.Text(tr)
		default:
			parts[i] = fmt.Sprint(it)
		}
	}
	return strings.Join(parts, l.Sep)
}

// Phrase is a part of a message with a printf format and arguments of its
// own (an item of a List: "roles [%s] -> [%s]"): it prints as its English,
// and a page says it with the translation of its format, as it says a
// message. Phrasef makes one.
type Phrase struct {
	Format string
	Args   []any
}

// Phrasef is the Phrase of format and args.
func Phrasef(format string, args ...any) Phrase { return Phrase{Format: format, Args: args} }

func (p Phrase) String() string { return fmt.Sprintf(p.Format, p.Args...) }

// Text is the phrase as tr says it (its English when tr is nil).
func (p Phrase) Text(tr Translator) string {
	if tr == nil {
		return p.String()
	}
	return tr(p.Format, p.Args)
}
