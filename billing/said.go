package billing

import (
	"strings"

	"cardata/policies/errs"
)

// said is one or more error messages passed on inside another message
// ("the seller identity is incomplete (%s)"), joined with "; ". As a printf
// argument it prints their English messages, so the API's text is what it
// was; a page says them in its reader's language (Text, which
// templates.Translator calls for such an argument).
type said []errs.FieldError

// saidOf is err's message as an argument of another message.
func saidOf(err error) said {
	e := errs.As(err)
	return said{{Message: e.Message, Format: e.Format, Args: e.Args}}
}

func (s said) String() string { return s.Text(nil) }

// Text is the messages as tr says them (English when tr is nil).
func (s said) Text(tr errs.Translator) string {
	m := make([]string, len(s))
	for i, f := range s {
		m[i] = f.Text(tr)
	}
	return strings.Join(m, "; ")
}
