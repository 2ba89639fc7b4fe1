package admin

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/policies/csvsafe"
	"cardata/templates"
	"cardata/templates/i18n"
)

// tilePositions places the 31 markets on a schematic grid of Europe
// (column, row), roughly where they lie.
var tilePositions = map[string][2]int{
	"NO": {5, 0}, "SE": {6, 0}, "FI": {7, 0},
	"DK": {5, 1}, "EE": {7, 1},
	"IE": {1, 2}, "GB": {2, 2}, "NL": {4, 2}, "DE": {5, 2}, "PL": {6, 2}, "LV": {7, 2},
	"FR": {2, 3}, "BE": {3, 3}, "LU": {4, 3}, "CZ": {5, 3}, "SK": {6, 3}, "LT": {7, 3},
	"PT": {1, 4}, "ES": {2, 4}, "CH": {4, 4}, "LI": {5, 4}, "AT": {6, 4}, "HU": {7, 4}, "RO": {8, 4},
	"IT": {5, 5}, "SI": {6, 5}, "HR": {7, 5}, "BG": {8, 5},
	"MT": {5, 6}, "GR": {8, 6}, "CY": {9, 6},
}

const tileSize, tileGap = 58, 6

// Tile is one market square of the coverage map.
type Tile struct {
	X, Y      int
	Code      string
	Name      string
	Providers int
	Pending   int
	Fill      string
	Ink       string
	Paused    bool
}

// CoverageMap is the SVG map's data.
type CoverageMap struct {
	Width, Height int
	Size          int
	Tiles         []Tile
	// PausedGround and PausedStripe draw the hatching of paused markets.
	PausedGround, PausedStripe string
}

// The paused tiles' hatching: light stripes on a light ground, so that the
// dark ink stays readable over both (WCAG AA, tested).
const (
	pausedGround = "#fdecea"
	pausedStripe = "#e8a39b"
)

// coverageFill shades a market by the number of active providers covering
// it. Every pair of fill and ink (and the paused hatching's two colours
// against its ink) has a contrast of at least 4.5:1 (WCAG AA for text).
func coverageFill(n int, paused bool) (fill, ink string) {
	switch {
	case paused:
		return "url(#paused)", "#1c2430"
	case n == 0:
		return "#eef1f5", "#5b6675"
	case n == 1:
		return "#bcd5f0", "#1c2430"
	case n <= 3:
		return "#2f6fae", "#ffffff"
	}
	return "#0a4a85", "#ffffff"
}

func buildMap(report []onboarding.CoverageRow) CoverageMap {
	m := CoverageMap{Size: tileSize, PausedGround: pausedGround, PausedStripe: pausedStripe}
	for _, r := range report {
		pos, ok := tilePositions[r.Market.Code]
		if !ok {
			continue
		}
		fill, ink := coverageFill(len(r.Active), !r.Market.Active)
		t := Tile{X: pos[0] * (tileSize + tileGap), Y: pos[1] * (tileSize + tileGap), Code: r.Market.Code, Name: r.Market.Name,
			Providers: len(r.Active), Pending: len(r.Pending), Fill: fill, Ink: ink, Paused: !r.Market.Active}
		m.Tiles = append(m.Tiles, t)
		m.Width = max(m.Width, t.X+tileSize)
		m.Height = max(m.Height, t.Y+tileSize)
	}
	return m
}

type coveragePage struct {
	Rows []onboarding.CoverageRow
	Map  CoverageMap
}

func (h *ProviderHandlers) coverage(c *fiber.Ctx) error {
	report, err := h.Onboarding.CoverageReport(c.UserContext())
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/coverage/index", &templates.Page{Title: "Market coverage",
		Data: coveragePage{Rows: report, Map: buildMap(report)}})
}

func names(refs []onboarding.ProviderRef) string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.LegalName
	}
	return strings.Join(out, "; ")
}

func (h *ProviderHandlers) coverageCSV(c *fiber.Ctx) error {
	report, err := h.Onboarding.CoverageReport(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="cardata-coverage.csv"`)
	w := csvsafe.NewWriter(c.Response().BodyWriter())
	_ = w.Write(i18n.CSVHeader(templates.LangOf(c), "market", "name", "market_status", "active_providers", "pending_requests", "eligible_vehicles", "providers", "pending"))
	for _, r := range report {
		status := "active"
		if !r.Market.Active {
			status = "paused"
		}
		vehicles := ""
		if r.Vehicles != nil {
			vehicles = strconv.FormatInt(*r.Vehicles, 10)
		}
		_ = w.Write([]string{r.Market.Code, r.Market.Name, status, strconv.Itoa(len(r.Active)), strconv.Itoa(len(r.Pending)),
			vehicles, names(r.Active), names(r.Pending)})
	}
	w.Flush()
	return w.Error()
}

type marketCoveragePage struct {
	Row      onboarding.CoverageRow
	Requests []onboarding.PendingMarketRequest
}

func (h *ProviderHandlers) coverageMarket(c *fiber.Ctx) error {
	code := strings.ToUpper(c.Params("code"))
	if !onboarding.IsSupportedMarket(code) {
		return fiber.ErrNotFound
	}
	report, err := h.Onboarding.CoverageReport(c.UserContext())
	if err != nil {
		return err
	}
	var row onboarding.CoverageRow
	for _, r := range report {
		if r.Market.Code == code {
			row = r
		}
	}
	reqs, err := h.Onboarding.FindPendingMarketRequests(c.UserContext(), code)
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/coverage/market", &templates.Page{Title: fmt.Sprintf("Coverage %s", row.Market.Name),
		Data: marketCoveragePage{Row: row, Requests: reqs}})
}
