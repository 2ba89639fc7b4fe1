package admin

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/templates"
	"cardata/templates/i18n"
)

type marketsPage struct {
	Markets []onboarding.Market
	Rows    map[string]onboarding.CoverageRow
}

func (h *ProviderHandlers) listMarkets(c *fiber.Ctx) error {
	order := onboarding.MarketSort.Parse(c.Query("sort"), c.Query("dir"))
	markets, err := h.Onboarding.FindMarketsSorted(c.UserContext(), order)
	if err != nil {
		return err
	}
	report, err := h.Onboarding.CoverageReport(c.UserContext())
	if err != nil {
		return err
	}
	byCode := map[string]onboarding.CoverageRow{}
	for _, r := range report {
		byCode[r.Market.Code] = r
	}
	return h.View.Render(c, fiber.StatusOK, "admin/markets/index", &templates.Page{Title: "Markets",
		Sort: templates.NewSort(c, order.Key, order.Desc),
		Data: marketsPage{Markets: markets, Rows: byCode}})
}

func (h *ProviderHandlers) setMarketActive(c *fiber.Ctx) error {
	active := c.FormValue("active") == "true"
	m, err := h.Onboarding.SetMarketActive(c.UserContext(), strings.ToUpper(c.Params("code")), active)
	if err != nil {
		return err
	}
	msg := "{{.Market}} is paused: it takes no requests and serves no provider."
	if m.Active {
		msg = "{{.Market}} is active."
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), msg, "Market", m.Name))
	return c.Redirect("/admin/markets", fiber.StatusSeeOther)
}
