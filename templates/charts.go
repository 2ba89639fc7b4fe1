package templates

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"cardata/templates/chart"
	"cardata/templates/i18n"
)

// ChartData is a chart as a handler describes it, in no language: catalog
// ids for the texts, raw labels, decimal values. The template function
// chart draws it in the page's language ({{chart .Data.Revenue}}): the SVG
// (package chart), its legend, and behind it a "Show as table" with the
// same figures, each label a link to the list that explains it.
type ChartData struct {
	Title string // catalog id, the chart's accessible name and the table's caption
	Desc  string // catalog id (optional)
	// Kind is "bars" (one series; grouped bars for several), "hbars" (one
	// series, a row per label: long category names) or "sparkline".
	Kind string
	// LabelKind says how Labels read: "month" ("2026-11"), "week" (the
	// week's Monday, "2026-11-30"), "text" (catalog ids) or "" (as they are).
	LabelKind   string
	LabelHeader string // catalog id of the table's first column ("Month")
	Labels      []string
	// Links are the labels' links (a filtered list), one per label or none.
	Links  []string
	Series []ChartSeries
	Money  bool // values are euros
}

// ChartSeries is one row of values.
type ChartSeries struct {
	Name   string // catalog id
	Values []decimal.Decimal
}

var monthsShortDE = [...]string{"Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"}

// chartLabels are the labels for the chart (short) and for the table (long).
func chartLabels(z i18n.Locale, d ChartData) (short, long []string) {
	for _, l := range d.Labels {
		s, lg := l, l
		switch d.LabelKind {
		case "month":
			if t, err := time.Parse("2006-01", l); err == nil {
				lg = z.Month(l)
				if z.Lang == i18n.DE {
					s = fmt.Sprintf("%s %02d", monthsShortDE[t.Month()-1], t.Year()%100)
				} else {
					s = t.Format("Jan 06")
				}
			}
		case "week":
			if t, err := time.Parse("2006-01-02", l); err == nil {
				lg = z.T("Week of {{.Date}}", "Date", z.Date(l))
				if z.Lang == i18n.DE {
					s = t.Format("02.01.")
				} else {
					s = t.Format("Jan 2")
				}
			}
		case "text":
			s = z.T(l)
			lg = s
		}
		short, long = append(short, s), append(long, lg)
	}
	return short, long
}

// drawChart is the template function chart.
func drawChart(z i18n.Locale, d ChartData) template.HTML {
	format := func(v decimal.Decimal) string { return z.Number(v) }
	if d.Money {
		format = func(v decimal.Decimal) string { return z.Money(v) }
	}
	short, long := chartLabels(z, d)
	c := chart.Chart{Title: z.T(d.Title), Labels: short, Format: format}
	if d.Desc != "" {
		c.Desc = z.T(d.Desc)
	}
	for _, s := range d.Series {
		c.Series = append(c.Series, chart.Series{Name: z.T(s.Name), Values: s.Values})
	}
	var b strings.Builder
	b.WriteString(`<figure class="chart-figure">`)
	switch d.Kind {
	case "sparkline":
		b.WriteString(string(c.Sparkline()))
	case "hbars":
		b.WriteString(string(c.HBars()))
	default:
		b.WriteString(string(c.Bars()))
	}
	b.WriteString(string(c.Legend()))
	fmt.Fprintf(&b, `<details class="chart-data"><summary>%s</summary><table class="compact"><caption>%s</caption><thead><tr><th scope="col">%s</th>`,
		html.EscapeString(z.T("Show as table")), html.EscapeString(c.Title), html.EscapeString(z.T(d.LabelHeader)))
	for _, s := range c.Series {
		fmt.Fprintf(&b, `<th scope="col" class="num">%s</th>`, html.EscapeString(s.Name))
	}
	b.WriteString(`</tr></thead><tbody>`)
	for i, l := range long {
		label := html.EscapeString(l)
		if i < len(d.Links) && d.Links[i] != "" {
			label = fmt.Sprintf(`<a href="%s">%s</a>`, html.EscapeString(d.Links[i]), label)
		}
		fmt.Fprintf(&b, `<tr><th scope="row">%s</th>`, label)
		for _, s := range c.Series {
			v := decimal.Zero
			if i < len(s.Values) {
				v = s.Values[i]
			}
			fmt.Fprintf(&b, `<td class="num">%s</td>`, html.EscapeString(format(v)))
		}
		b.WriteString(`</tr>`)
	}
	if len(long) == 0 {
		fmt.Fprintf(&b, `<tr><td colspan="%d" class="empty">%s</td></tr>`, len(c.Series)+1, html.EscapeString(z.T("No figures yet.")))
	}
	b.WriteString(`</tbody></table></details></figure>`)
	return template.HTML(b.String())
}

// Figure kinds: how Figure's value is written.
const (
	FigureCount = ""      // N, a number
	FigureMoney = "money" // Amount, in euros
	FigureText  = "text"  // Text, a catalog id ("verified")
	FigureDays  = "days"  // N days ("3 days")
	FigureTime  = "time"  // At, a moment
)

// Figure is one number of a dashboard card (the staff dashboard, the
// portal home) with the link to the list that explains it; the partial
// dash-figure (partials/dashboard.html) writes it in the page's language.
type Figure struct {
	Label  string // catalog id
	Kind   string
	N      int64
	Amount decimal.Decimal
	Text   string
	At     *time.Time
	Link   string
	// Tone colours the figure: "bad" and "warn" when it asks for action
	// (set only when it does), "ok" for a good state.
	Tone string
	// Detail is a line under the figure (a name), shown as is;
	// DetailMonth ("2026-11") and DetailAt follow it in the page's language.
	Detail      string
	DetailMonth string
	DetailAt    *time.Time
}
