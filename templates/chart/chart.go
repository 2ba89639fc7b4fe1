// Package chart draws the small charts of the dashboards as SVG on the
// server: bars (one series, or grouped bars for several) and a sparkline.
// It takes figures already named in the page's language (title, labels,
// series) and a function that writes a value for people (money, number),
// and returns markup ready for a page: an <svg role="img"> with <title>
// and <desc>, never interactive (a role="img" has presentational
// children, so the links live in the table the page puts beside it).
//
// Values are decimals (money is never a float); only the geometry is
// computed in floating point. A chart of no or only zero values draws its
// axis and no bars; negative values hang below the zero line.
package chart

import (
	"fmt"
	"html"
	"html/template"
	"strings"

	"github.com/shopspring/decimal"
)

// Palette are the series colours, each at least 4.5:1 against white
// (WCAG AA asks 3:1 for graphics), distinguishable from each other.
var Palette = []string{"#0f5fa8", "#1d7a46", "#a15c00", "#6b3fa0", "#b42318"}

// Series is one row of values, one per label.
type Series struct {
	Name   string
	Values []decimal.Decimal
	// Color overrides the palette colour (a #rrggbb).
	Color string
}

// Chart is what a chart shows.
type Chart struct {
	Title  string // the accessible name
	Desc   string // a sentence summing it up (optional)
	Labels []string
	Series []Series
	// Format writes a value for people (axis ticks); nil: the decimal as is.
	Format func(decimal.Decimal) string
	// Width and Height are the viewBox (the SVG scales to its box);
	// zero: 560 x 220 for bars, 240 x 48 for a sparkline.
	Width, Height int
	// Class is added to the svg element's class.
	Class string
}

func (c Chart) format(d decimal.Decimal) string {
	if c.Format != nil {
		return c.Format(d)
	}
	return d.String()
}

func (c Chart) color(i int) string {
	if i < len(c.Series) && c.Series[i].Color != "" {
		return c.Series[i].Color
	}
	return Palette[i%len(Palette)]
}

func (c Chart) value(s, i int) decimal.Decimal {
	if s < len(c.Series) && i < len(c.Series[s].Values) {
		return c.Series[s].Values[i]
	}
	return decimal.Zero
}

// span is the range the axis covers: it always includes zero.
func (c Chart) span() (lo, hi decimal.Decimal) {
	for _, s := range c.Series {
		for _, v := range s.Values {
			lo, hi = decimal.Min(lo, v), decimal.Max(hi, v)
		}
	}
	return lo, hi
}

// ratio is (v-lo)/(hi-lo) as a float for the geometry, 0 when the span is empty.
func ratio(v, lo, hi decimal.Decimal) float64 {
	whole := hi.Sub(lo)
	if !whole.IsPositive() {
		return 0
	}
	return v.Sub(lo).Div(whole).InexactFloat64()
}

func esc(s string) string { return html.EscapeString(s) }

func num(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

func (c Chart) open(b *strings.Builder, kind string, w, h int) {
	// width and height are the natural size (a unit a CSS pixel); the
	// page's style may scale the chart to its box
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-%s%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" focusable="false">`,
		kind, classSuffix(c.Class), w, h, w, h, esc(c.Title))
	fmt.Fprintf(b, `<title>%s</title>`, esc(c.Title))
	if c.Desc != "" {
		fmt.Fprintf(b, `<desc>%s</desc>`, esc(c.Desc))
	}
}

func classSuffix(c string) string {
	if c == "" {
		return ""
	}
	return " " + c
}

// Bars draws a bar chart: one bar per label and series, the series of a
// label side by side, a zero line, the top and bottom of the scale written
// at the left and the labels below.
func (c Chart) Bars() template.HTML {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 560
	}
	if h <= 0 {
		h = 220
	}
	const left, right, top, bottom = 84.0, 8.0, 12.0, 30.0
	plotW, plotH := float64(w)-left-right, float64(h)-top-bottom
	lo, hi := c.span()
	zeroY := top + plotH*(1-ratio(decimal.Zero, lo, hi))
	if !hi.Sub(lo).IsPositive() {
		zeroY = top + plotH
	}
	var b strings.Builder
	c.open(&b, "bars", w, h)
	// scale: the top, the zero line and (when below zero) the bottom
	fmt.Fprintf(&b, `<g class="axis" font-size="13" fill="#1c2430">`)
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#5b6675" stroke-width="1"/>`, num(left), num(zeroY), num(float64(w)-right), num(zeroY))
	if hi.IsPositive() {
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#d9dee5" stroke-width="1"/>`, num(left), num(top), num(float64(w)-right), num(top))
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`, num(left-6), num(top), esc(c.format(hi)))
	}
	fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`, num(left-6), num(zeroY), esc(c.format(decimal.Zero)))
	if lo.IsNegative() {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`, num(left-6), num(top+plotH), esc(c.format(lo)))
	}
	b.WriteString(`</g>`)
	n := len(c.Labels)
	if n > 0 && len(c.Series) > 0 {
		group := plotW / float64(n)
		gap := group * 0.2
		barW := (group - gap) / float64(len(c.Series))
		// every label when they fit, else every second, third, ...
		step := 1
		for float64(step)*group < 46 {
			step++
		}
		for i := 0; i < n; i++ {
			x0 := left + float64(i)*group + gap/2
			for s := range c.Series {
				v := c.value(s, i)
				y := top + plotH*(1-ratio(v, lo, hi))
				if !hi.Sub(lo).IsPositive() {
					y = zeroY
				}
				y1, y2 := min(y, zeroY), max(y, zeroY)
				fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`,
					num(x0+float64(s)*barW), num(y1), num(max(barW-1, 1)), num(y2-y1), c.color(s))
			}
			if i%step == 0 {
				fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="13" fill="#1c2430">%s</text>`,
					num(left+float64(i)*group+group/2), num(float64(h)-10), esc(c.Labels[i]))
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// HBars draws one series as horizontal bars, one row per label: the label
// at the left, the bar, and its value written after it (for categories
// whose names are too long to stand under a bar: statuses, roles).
// Negative values are drawn as empty bars (their figure is still written).
func (c Chart) HBars() template.HTML {
	// the columns fit the longest label and figure (about 8 units a
	// character at the 14-unit font), the bars get 140 units
	const rowH, top = 26.0, 4.0
	labelW, valueW := 24.0, 24.0
	for i, l := range c.Labels {
		labelW = max(labelW, 8*float64(len([]rune(l))))
		valueW = max(valueW, 8*float64(len([]rune(c.format(c.value(0, i)))))+10)
	}
	labelW = min(labelW, 220)
	w := c.Width
	if w <= 0 {
		w = int(labelW + 8 + 140 + valueW)
	}
	n := len(c.Labels)
	h := int(top*2 + rowH*float64(max(n, 1)))
	_, hi := c.span()
	var b strings.Builder
	c.open(&b, "hbars", w, h)
	barX := labelW + 8
	plotW := float64(w) - barX - valueW
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#5b6675" stroke-width="1"/>`, num(barX), num(top), num(barX), num(top+rowH*float64(max(n, 1))))
	for i := 0; i < n; i++ {
		v := c.value(0, i)
		y := top + rowH*float64(i)
		bw := 0.0
		if v.IsPositive() {
			bw = plotW * ratio(v, decimal.Zero, hi)
		}
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle" font-size="14" fill="#1c2430">%s</text>`,
			num(labelW), num(y+rowH/2), esc(c.Labels[i]))
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`, num(barX), num(y+4), num(bw), num(rowH-8), c.color(0))
		fmt.Fprintf(&b, `<text x="%s" y="%s" dominant-baseline="middle" font-size="14" fill="#1c2430">%s</text>`,
			num(barX+bw+6), num(y+rowH/2), esc(c.format(v)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Sparkline draws the first series as a line without axes (the trend;
// the figures are in the table beside it), its last point marked.
func (c Chart) Sparkline() template.HTML {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 240
	}
	if h <= 0 {
		h = 48
	}
	const pad = 4.0
	lo, hi := c.span()
	var b strings.Builder
	c.open(&b, "sparkline", w, h)
	var vals []decimal.Decimal
	if len(c.Series) > 0 {
		vals = c.Series[0].Values
	}
	plotW, plotH := float64(w)-2*pad, float64(h)-2*pad
	pts := make([]string, len(vals))
	var lastX, lastY float64
	for i, v := range vals {
		x := pad + plotW/2
		if len(vals) > 1 {
			x = pad + plotW*float64(i)/float64(len(vals)-1)
		}
		y := pad + plotH*(1-ratio(v, lo, hi))
		if !hi.Sub(lo).IsPositive() {
			y = pad + plotH
		}
		pts[i] = num(x) + "," + num(y)
		lastX, lastY = x, y
	}
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#d9dee5" stroke-width="1"/>`, num(pad), num(pad+plotH), num(pad+plotW), num(pad+plotH))
	if len(pts) > 1 {
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>`,
			strings.Join(pts, " "), c.color(0))
	}
	if len(pts) > 0 {
		fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, num(lastX), num(lastY), c.color(0))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Legend names the series with their colours (HTML, for beside the chart;
// the colours are SVG fills, as the content security policy refuses inline
// styles);
// empty for a single series (the title names it).
func (c Chart) Legend() template.HTML {
	if len(c.Series) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<ul class="chart-legend">`)
	for i, s := range c.Series {
		fmt.Fprintf(&b, `<li><svg class="chart-key" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" focusable="false"><rect width="12" height="12" fill="%s"/></svg>%s</li>`, c.color(i), esc(s.Name))
	}
	b.WriteString(`</ul>`)
	return template.HTML(b.String())
}
