package templates

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"cardata/templates/i18n"
)

// A chart is drawn in the page's language: its name, labels and figures,
// and the table behind it links each label to its list.
func TestChartInThePagesLanguage(t *testing.T) {
	t.Parallel()
	if err := i18n.Load(); err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Europe/Berlin")
	d := ChartData{Title: "Revenue by month", Kind: "bars", LabelKind: "month", LabelHeader: "Billing period", Money: true,
		Labels: []string{"2026-03", "2026-04"}, Links: []string{"/admin/billing/invoices?period=2026-03", ""},
		Series: []ChartSeries{{Name: "Invoiced", Values: []decimal.Decimal{decimal.RequireFromString("1234.5"), decimal.Zero}},
			{Name: "Paid", Values: []decimal.Decimal{decimal.RequireFromString("1000"), decimal.Zero}}}}
	de := string(drawChart(i18n.Locale{Lang: i18n.DE, Loc: loc}, d))
	for _, want := range []string{`aria-label="Umsatz nach Monat"`, `>Mär 26<`, `<a href="/admin/billing/invoices?period=2026-03">März 2026</a>`,
		"1.234,50\u00a0€", "Als Tabelle anzeigen", "Abgerechnet", ">April 2026<"} {
		if !strings.Contains(de, want) {
			t.Errorf("German chart lacks %q:\n%s", want, de)
		}
	}
	en := string(drawChart(i18n.Locale{Lang: i18n.EN, Loc: loc}, d))
	for _, want := range []string{`aria-label="Revenue by month"`, `>Mar 26<`, "€1,234.50", "Show as table", "March 2026"} {
		if !strings.Contains(en, want) {
			t.Errorf("English chart lacks %q", want)
		}
	}
	w := ChartData{Title: "Tickets opened per week", Kind: "bars", LabelKind: "week", LabelHeader: "Week",
		Labels: []string{"2026-11-30"}, Series: []ChartSeries{{Name: "Tickets opened", Values: []decimal.Decimal{decimal.NewFromInt(3)}}}}
	if s := string(drawChart(i18n.Locale{Lang: i18n.DE, Loc: loc}, w)); !strings.Contains(s, "Woche ab 30.11.2026") || !strings.Contains(s, ">30.11.<") {
		t.Errorf("German week labels:\n%s", s)
	}
	empty := string(drawChart(i18n.Locale{Lang: i18n.EN, Loc: loc}, ChartData{Title: "Revenue by month", LabelHeader: "Month", Series: []ChartSeries{{Name: "Paid"}}}))
	if !strings.Contains(empty, "No figures yet.") {
		t.Errorf("an empty chart says so: %s", empty)
	}
}
