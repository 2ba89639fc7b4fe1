package admin

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"cardata/policies"
	"cardata/templates"
)

// Widget is one figure on the dashboard, shown to the roles it names.
type Widget struct {
	Roles []string
	Load  func(ctx context.Context) (WidgetValue, error)
}

// WidgetValue is what a widget shows.
type WidgetValue struct {
	Title, Value, Hint, Link string
}

func (h *Handlers) dashboard(c *fiber.Ctx) error {
	p := policies.PrincipalFrom(c.UserContext())
	var values []WidgetValue
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
		v, err := w.Load(c.UserContext())
		if err != nil {
			return err
		}
		values = append(values, v)
	}
	return h.View.Render(c, fiber.StatusOK, "admin/dashboard", &templates.Page{Title: "Overview",
		Data: struct{ Widgets []WidgetValue }{values}})
}
