package admin

import (
	"context"
	"sort"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/templates"
)

// Widget is one card of the dashboard, shown to the roles it names, under
// its section's heading (a person with several roles sees each of their
// sections). Modules register theirs in app/mount_*.go; the builders are
// in dashboard_widgets.go.
type Widget struct {
	Roles []string
	// Section is the catalog id of the heading the card stands under
	// ("Partner management", "Finance", "Support", "System").
	Section string
	Load    func(ctx context.Context) (WidgetValue, error)
}

// WidgetValue is what a widget shows: a title, figures (each a link to
// the list that explains it) and an optional chart. Texts are catalog ids;
// figures are formatted in the page's language.
type WidgetValue struct {
	Title   string
	Figures []Figure
	Chart   *templates.ChartData
	// Wide cards span two columns (the charts).
	Wide bool
	// Note is a catalog id shown under the figures (optional).
	Note string
}

// Figure is one number of a card with the link behind it (shared with
// the portal home: templates.Figure, drawn by partials/dashboard.html).
type Figure = templates.Figure

// Figure kinds: how a Figure's value is written.
const (
	FigureCount = templates.FigureCount
	FigureMoney = templates.FigureMoney
	FigureText  = templates.FigureText
	FigureDays  = templates.FigureDays
	FigureTime  = templates.FigureTime
)

// memo makes load run once per dashboard request, however many cards use
// its figures (the handler puts the cache in the request's context);
// outside a dashboard request it just loads.
func memo[T any](load func(context.Context) (T, error)) func(context.Context) (T, error) {
	key := new(int)
	type result struct {
		v   T
		err error
	}
	return func(ctx context.Context) (T, error) {
		cache, _ := ctx.Value(memoKey{}).(map[*int]any)
		if cache == nil {
			return load(ctx)
		}
		if r, ok := cache[key].(result); ok {
			return r.v, r.err
		}
		v, err := load(ctx)
		cache[key] = result{v, err}
		return v, err
	}
}

type memoKey struct{}

// sectionOrder is the order of the dashboard's sections (others follow).
var sectionOrder = []string{"Partner management", "Finance", "Support", "System"}

func sectionRank(title string) int {
	for i, s := range sectionOrder {
		if s == title {
			return i
		}
	}
	return len(sectionOrder)
}

// DashboardSection is one heading with its cards.
type DashboardSection struct {
	Title   string
	Widgets []WidgetValue
}

func (h *Handlers) dashboard(c *fiber.Ctx) error {
	p := policies.PrincipalFrom(c.UserContext())
	ctx := context.WithValue(c.UserContext(), memoKey{}, map[*int]any{})
	var sections []DashboardSection
	at := map[string]int{}
	for _, w := range h.Widgets {
		show := false
		for _, r := range w.Roles {
			if p.HasRole(r) {
				show = true
			}
		}
		if !show {
			continue
		}
		v, err := w.Load(ctx)
		if err != nil {
			return err
		}
		i, ok := at[w.Section]
		if !ok {
			i = len(sections)
			at[w.Section] = i
			sections = append(sections, DashboardSection{Title: w.Section})
		}
		sections[i].Widgets = append(sections[i].Widgets, v)
	}
	sort.SliceStable(sections, func(i, j int) bool { return sectionRank(sections[i].Title) < sectionRank(sections[j].Title) })
	return h.View.Render(c, fiber.StatusOK, "admin/dashboard", &templates.Page{Title: "Overview",
		Data: struct{ Sections []DashboardSection }{sections}})
}
