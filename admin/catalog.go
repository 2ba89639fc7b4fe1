package admin

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding/catalog"
	"cardata/templates"
)

// CatalogHandlers show the telematics catalog to staff (read-only).
type CatalogHandlers struct {
	View    *templates.View
	Catalog *catalog.Catalog
}

// Routes mounts the page on r (the /admin group).
func (h *CatalogHandlers) Routes(r fiber.Router) {
	r.Get("/catalog", h.listCatalog)
}

// CatalogNav is the navigation entry.
func CatalogNav() templates.NavItem {
	return templates.NavItem{Label: "Telematics catalog", Path: "/admin/catalog"}
}

type catalogPage struct {
	Keys          []catalog.Key
	Total         int
	Categories    []string
	Sensitivities []string
}

func (h *CatalogHandlers) listCatalog(c *fiber.Ctx) error {
	q := strings.ToLower(strings.TrimSpace(c.Query("q")))
	category, sensitivity, push := c.Query("category"), c.Query("sensitivity"), c.Query("push")
	var keys []catalog.Key
	for _, k := range h.Catalog.Keys() {
		switch {
		case category != "" && k.Category != category,
			sensitivity == "sensitive" && !k.Sensitive(),
			sensitivity != "" && sensitivity != "sensitive" && k.Sensitivity != sensitivity,
			push == "yes" && !k.Pushable,
			q != "" && !strings.Contains(strings.ToLower(k.Name), q) &&
				!strings.Contains(strings.ToLower(k.DescriptionEN), q) && !strings.Contains(strings.ToLower(k.DescriptionDE), q):
			continue
		}
		keys = append(keys, k)
	}
	slices.SortStableFunc(keys, func(a, b catalog.Key) int {
		return slices.Index(catalog.Categories, a.Category) - slices.Index(catalog.Categories, b.Category)
	})
	return h.View.Render(c, fiber.StatusOK, "admin/catalog/index", &templates.Page{
		Form: map[string]string{"q": c.Query("q"), "category": category, "sensitivity": sensitivity, "push": push},
		Data: catalogPage{Keys: keys, Total: h.Catalog.Len(), Categories: catalog.Categories, Sensitivities: catalog.Sensitivities}})
}
