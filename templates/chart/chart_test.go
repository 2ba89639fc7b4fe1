package chart

import (
	"encoding/xml"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func dec(vs ...string) []decimal.Decimal {
	out := make([]decimal.Decimal, len(vs))
	for i, v := range vs {
		out[i] = decimal.RequireFromString(v)
	}
	return out
}

// wellFormed parses s as XML to the end.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, s)
		}
	}
}

var rectRe = regexp.MustCompile(`<rect x="[^"]*" y="([^"]*)" width="[^"]*" height="([^"]*)" fill="([^"]*)"/>`)

func heights(t *testing.T, s string) []float64 {
	t.Helper()
	var out []float64
	for _, m := range rectRe.FindAllStringSubmatch(s, -1) {
		h, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

func TestBarsAreWellFormedNamedAndProportional(t *testing.T) {
	t.Parallel()
	c := Chart{Title: `Revenue <by> "month" & more`, Desc: "Invoiced and paid", Labels: []string{"Oct", "Nov", "Dec"},
		Series: []Series{{Name: "Invoiced", Values: dec("100", "50", "25")}, {Name: "Paid", Values: dec("100", "0", "12.5")}},
		Format: func(d decimal.Decimal) string { return "€" + d.StringFixed(2) }}
	s := string(c.Bars())
	wellFormed(t, s)
	for _, want := range []string{`role="img"`, `aria-label="Revenue &lt;by&gt; &#34;month&#34; &amp; more"`,
		`<title>Revenue &lt;by&gt; &#34;month&#34; &amp; more</title>`, `<desc>Invoiced and paid</desc>`, `€100.00`, `€0.00`, `>Nov<`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	if strings.Contains(s, "<a ") {
		t.Error("a role=img chart must not hold links")
	}
	h := heights(t, s)
	if len(h) != 6 {
		t.Fatalf("want 6 bars, got %d: %v", len(h), h)
	}
	// order: Oct invoiced, Oct paid, Nov invoiced, Nov paid, Dec invoiced, Dec paid
	full := h[0]
	if full <= 0 || h[1] != full {
		t.Fatalf("the largest values draw the full height: %v", h)
	}
	for i, want := range []float64{1, 1, 0.5, 0, 0.25, 0.125} {
		if got := h[i] / full; got < want-0.01 || got > want+0.01 {
			t.Errorf("bar %d: %.3f of the full height, want %.3f", i, got, want)
		}
	}
	// two series: two colours and a legend
	cols := map[string]bool{}
	for _, m := range rectRe.FindAllStringSubmatch(s, -1) {
		cols[m[3]] = true
	}
	if len(cols) != 2 {
		t.Errorf("want 2 colours, got %v", cols)
	}
	leg := string(c.Legend())
	wellFormed(t, leg)
	if !strings.Contains(leg, "Invoiced") || !strings.Contains(leg, "Paid") || strings.Contains(leg, "style=") {
		t.Errorf("legend: %s", leg)
	}
}

func TestBarsOfNothingDrawTheAxisOnly(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]Chart{
		"no labels": {Title: "Empty"},
		"no series": {Title: "Empty", Labels: []string{"a", "b"}},
		"all zero":  {Title: "Zero", Labels: []string{"a", "b"}, Series: []Series{{Name: "n", Values: dec("0", "0")}}},
		"short":     {Title: "Short", Labels: []string{"a", "b"}, Series: []Series{{Name: "n"}}},
	} {
		s := string(c.Bars())
		wellFormed(t, s)
		for _, h := range heights(t, s) {
			if h != 0 {
				t.Errorf("%s: a bar of height %v", name, h)
			}
		}
		if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Errorf("%s: %s", name, s)
		}
		if c.Legend() != "" {
			t.Errorf("%s: a legend for fewer than two series", name)
		}
	}
}

func TestNegativeBarsHangBelowTheZeroLine(t *testing.T) {
	t.Parallel()
	c := Chart{Title: "Net", Labels: []string{"a", "b"}, Series: []Series{{Name: "n", Values: dec("30", "-10")}}}
	s := string(c.Bars())
	wellFormed(t, s)
	m := rectRe.FindAllStringSubmatch(s, -1)
	if len(m) != 2 {
		t.Fatalf("bars: %v", m)
	}
	y0, _ := strconv.ParseFloat(m[0][1], 64)
	h0, _ := strconv.ParseFloat(m[0][2], 64)
	y1, _ := strconv.ParseFloat(m[1][1], 64)
	h1, _ := strconv.ParseFloat(m[1][2], 64)
	zero := y0 + h0
	if y1 < zero-0.01 || y1 > zero+0.01 {
		t.Errorf("the negative bar starts at the zero line %.2f, not %.2f", zero, y1)
	}
	if r := h0 / h1; r < 2.9 || r > 3.1 {
		t.Errorf("30 against -10 is 3:1, got %.2f", r)
	}
	if !strings.Contains(s, ">-10<") {
		t.Errorf("the bottom of the scale is written: %s", s)
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	c := Chart{Title: "Coverage", Labels: []string{"1", "2", "3"}, Series: []Series{{Name: "markets", Values: dec("0", "5", "10")}}}
	s := string(c.Sparkline())
	wellFormed(t, s)
	if !strings.Contains(s, `role="img"`) || !strings.Contains(s, "<title>Coverage</title>") {
		t.Fatal(s)
	}
	pts := regexp.MustCompile(`points="([^"]*)"`).FindStringSubmatch(s)
	if pts == nil {
		t.Fatalf("no line: %s", s)
	}
	var ys []float64
	for _, p := range strings.Fields(pts[1]) {
		_, y, _ := strings.Cut(p, ",")
		f, _ := strconv.ParseFloat(y, 64)
		ys = append(ys, f)
	}
	if len(ys) != 3 || !(ys[0] > ys[1] && ys[1] > ys[2]) || (ys[0]-ys[1])-(ys[1]-ys[2]) > 0.02 {
		t.Errorf("a rising line in equal steps: %v", ys)
	}
	for _, c := range []Chart{{Title: "none"}, {Title: "one", Series: []Series{{Values: dec("3")}}}, {Title: "flat", Series: []Series{{Values: dec("0", "0")}}}} {
		s := string(c.Sparkline())
		wellFormed(t, s)
		if strings.Contains(s, "NaN") {
			t.Error(s)
		}
	}
}

func TestHBarsAreProportionalAndWriteTheirFigures(t *testing.T) {
	t.Parallel()
	c := Chart{Title: "Providers by status", Labels: []string{"active", "in review", "gone"},
		Series: []Series{{Name: "n", Values: dec("20", "5", "-1")}}}
	s := string(c.HBars())
	wellFormed(t, s)
	re := regexp.MustCompile(`<rect x="[^"]*" y="[^"]*" width="([^"]*)"`)
	var ws []float64
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		f, _ := strconv.ParseFloat(m[1], 64)
		ws = append(ws, f)
	}
	if len(ws) != 3 || ws[0] <= 0 || ws[2] != 0 {
		t.Fatalf("widths %v", ws)
	}
	if r := ws[1] / ws[0]; r < 0.24 || r > 0.26 {
		t.Errorf("5 of 20 is a quarter, got %.3f", r)
	}
	for _, want := range []string{">active<", ">in review<", ">20<", ">5<", ">-1<", `role="img"`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s", want)
		}
	}
	wellFormed(t, string(Chart{Title: "none"}.HBars()))
}
