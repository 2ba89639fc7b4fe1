package audit

import (
	"database/sql/driver"
	"fmt"
	"regexp"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
	"cardata/policies/jsonb"
	"cardata/templates/i18n"
)

// Arg is one argument of a summary as stored: the text it printed as, and
// whether it is a word of the product (errs.Term) to translate.
type Arg struct {
	Text string `json:"s"`
	Term bool   `json:"term,omitempty"`
	// Amount is an amount of money (a value with Amount() decimal.Decimal,
	// billing.Money; Text is its English) and Day marks Text as a calendar
	// day (errs.Day, YYYY-MM-DD): both written in the reader's format.
	Amount string `json:"amount,omitempty"`
	Day    bool   `json:"day,omitempty"`
}

// Args are a summary's arguments (audit_entries.summary_args, JSON).
type Args []Arg

func (a Args) Value() (driver.Value, error) {
	if a == nil {
		a = Args{}
	}
	return jsonb.Value(a)
}

func (a *Args) Scan(src any) error {
	*a = nil
	_, err := jsonb.Scan(src, a)
	return err
}

// plainVerb is a verb without flags that prints a value as fmt.Sprint does.
var plainVerb = regexp.MustCompile(`%[dvs]`)

// storedFormat turns format and args into what is stored: each argument as
// the text it prints as, and %d and %v as %s (which prints that text the
// same way). A format with other verbs (%q, widths, floats) keeps them and
// its arguments' texts are only used when they give back the summary.
func storedFormat(format string, args []any) (string, Args) {
	out := make(Args, len(args))
	for i, a := range args {
		switch x := a.(type) {
		case errs.Term:
			out[i] = Arg{Text: string(x), Term: true}
		case errs.Day:
			out[i] = Arg{Text: x.String(), Day: true}
		case interface{ Amount() decimal.Decimal }:
			out[i] = Arg{Text: fmt.Sprint(a), Amount: x.Amount().String()}
		default:
			out[i] = Arg{Text: fmt.Sprint(a)}
		}
	}
	return plainVerb.ReplaceAllString(format, "%s"), out
}

// SummaryIn is the entry's summary in lang: the translation of its format
// with its arguments (words of the product translated too) when the
// catalogs have it and the format and arguments give back the recorded
// summary exactly; otherwise the summary as recorded (entries written
// before, or a format without a translation).
func (e Entry) SummaryIn(lang string) string {
	l, _ := i18n.Parse(lang)
	if e.SummaryFormat == "" {
		if l == i18n.DE {
			return i18n.T(l, e.Summary)
		}
		return e.Summary
	}
	en := make([]any, len(e.SummaryArgs))
	said := make([]any, len(e.SummaryArgs))
	z := i18n.Locale{Lang: l}
	for i, a := range e.SummaryArgs {
		en[i], said[i] = a.Text, a.Text
		switch {
		case a.Term:
			said[i] = i18n.T(l, a.Text)
		case a.Amount != "":
			if d, err := decimal.NewFromString(a.Amount); err == nil {
				said[i] = z.Money(d)
			}
		case a.Day:
			said[i] = z.Date(a.Text)
		}
	}
	if fmt.Sprintf(e.SummaryFormat, en...) != e.Summary || !i18n.Has(l, e.SummaryFormat) {
		return e.Summary
	}
	return i18n.Sprintf(l, e.SummaryFormat, said...)
}
