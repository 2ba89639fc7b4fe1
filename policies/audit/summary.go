package audit

import (
	"database/sql/driver"
	"fmt"
	"regexp"
	"strings"

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
	// Items marks a list (errs.List): its items, each an Arg, joined by
	// Sep; Text is empty, the list's English is its items' joined. An item
	// with a Format is a phrase (errs.Phrase): its stored format and Args.
	Items  Args   `json:"items,omitempty"`
	Sep    string `json:"sep,omitempty"`
	Format string `json:"f,omitempty"`
	Args   Args   `json:"args,omitempty"`
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
		out[i] = storedArg(a)
	}
	return plainVerb.ReplaceAllString(format, "%s"), out
}

// storedArg is one argument as stored (storedFormat).
func storedArg(a any) Arg {
	switch x := a.(type) {
	case errs.Term:
		return Arg{Text: string(x), Term: true}
	case errs.Day:
		return Arg{Text: x.String(), Day: true}
	case errs.List:
		items := make(Args, len(x.Items))
		for i, it := range x.Items {
			items[i] = storedArg(it)
		}
		return Arg{Items: items, Sep: x.Sep}
	case errs.Phrase:
		f, args := storedFormat(x.Format, x.Args)
		return Arg{Format: f, Args: args}
	case interface{ Amount() decimal.Decimal }:
		return Arg{Text: fmt.Sprint(a), Amount: x.Amount().String()}
	}
	return Arg{Text: fmt.Sprint(a)}
}

// english is the text a stored argument printed as: a list's items joined,
// a phrase's format filled in with its arguments' English.
func (a Arg) english() string {
	switch {
	case a.Items != nil:
		return a.Items.join(a.Sep, Arg.english)
	case a.Format != "":
		return fmt.Sprintf(a.Format, a.Args.each(Arg.english)...)
	}
	return a.Text
}

// in is the argument said in l: a word of the product translated, an
// amount and a day in l's format, a list item by item, a phrase with the
// translation of its format (its English when the catalogs lack it).
func (a Arg) in(l i18n.Lang) string {
	z := i18n.Locale{Lang: l}
	switch {
	case a.Items != nil:
		return a.Items.join(a.Sep, func(it Arg) string { return it.in(l) })
	case a.Format != "":
		if !i18n.Has(l, a.Format) {
			return a.english()
		}
		return i18n.Sprintf(l, a.Format, a.Args.each(func(it Arg) string { return it.in(l) })...)
	case a.Term:
		return i18n.T(l, a.Text)
	case a.Amount != "":
		if d, err := decimal.NewFromString(a.Amount); err == nil {
			return z.Money(d)
		}
	case a.Day:
		return z.Date(a.Text)
	}
	return a.Text
}

func (as Args) each(fn func(Arg) string) []any {
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = fn(a)
	}
	return out
}

func (as Args) join(sep string, fn func(Arg) string) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fn(a)
	}
	return strings.Join(parts, sep)
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
	en := e.SummaryArgs.each(Arg.english)
	if fmt.Sprintf(e.SummaryFormat, en...) != e.Summary || !i18n.Has(l, e.SummaryFormat) {
		return e.Summary
	}
	return i18n.Sprintf(l, e.SummaryFormat, e.SummaryArgs.each(func(a Arg) string { return a.in(l) })...)
}
