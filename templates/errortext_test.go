package templates

import (
	"strings"
	"testing"
	"time"

	"cardata/policies/errs"
	"cardata/templates/i18n"

	"github.com/shopspring/decimal"
)

type amount decimal.Decimal

func (a amount) String() string          { return decimal.Decimal(a).StringFixed(2) + " EUR" }
func (a amount) Amount() decimal.Decimal { return decimal.Decimal(a) }

// The translator writes a day and an amount as the page does, translates a
// Term, and leaves the API's English message as it was.
func TestTranslatorFormatsDaysAmountsAndTerms(t *testing.T) {
	day := errs.Day{T: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	e := errs.New(errs.Conflict, "x", "%s: %s on %s", errs.Term("Invoice"), amount(decimal.RequireFromString("1234.5")), day)
	if e.Message != "Invoice: 1234.50 EUR on 2026-12-05" {
		t.Errorf("English message: %q", e.Message)
	}
	if got := e.Text(Translator(i18n.DE)); got != "Rechnung: 1.234,50\u00a0€ on 05.12.2026" {
		t.Errorf("German: %q", got)
	}
	if got := e.Text(Translator(i18n.EN)); got != "Invoice: €1,234.50 on 2026-12-05" {
		t.Errorf("English page: %q", got)
	}
}

// A list in a message (errs.Terms) is its English join in the API's
// message and reads word by word on a German page.
func TestTranslatorSaysAListWordByWord(t *testing.T) {
	e := errs.New(errs.Conflict, "transition_not_allowed", "cannot %s a provider that is %s (only from: %s)",
		errs.Term("approve"), errs.Term("active"), errs.Terms(", ", "submitted", "in review"))
	if e.Message != "cannot approve a provider that is active (only from: submitted, in review)" {
		t.Errorf("English message: %q", e.Message)
	}
	if got := e.Text(Translator(i18n.DE)); !strings.HasSuffix(got, "(nur aus: eingereicht, in Prüfung)") {
		t.Errorf("German: %q", got)
	}
}
