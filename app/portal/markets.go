package portal

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/templates"
	"cardata/templates/i18n"
)

type marketRow struct {
	onboarding.Market
	Access *onboarding.MarketAccess
}

type marketsPage struct {
	Provider *onboarding.Provider
	Rows     []marketRow
	IsAdmin  bool
}

func (h *Handlers) markets(c *fiber.Ctx) error { return h.renderMarkets(c, fiber.StatusOK, nil) }

func (h *Handlers) renderMarkets(c *fiber.Ctx, status int, fieldErrs map[string]string) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := h.Onboarding.FindProviderByID(ctx, me.ProviderID)
	if err != nil {
		return err
	}
	markets, err := h.Onboarding.FindMarkets(ctx)
	if err != nil {
		return err
	}
	access, err := h.Onboarding.FindMarketAccess(ctx, me.ProviderID)
	if err != nil {
		return err
	}
	byCode := map[string]*onboarding.MarketAccess{}
	for i := range access {
		byCode[access[i].Market] = &access[i]
	}
	rows := make([]marketRow, len(markets))
	for i, m := range markets {
		rows[i] = marketRow{Market: m, Access: byCode[m.Code]}
	}
	return h.View.Render(c, status, "portal/markets", &templates.Page{Title: "Markets", Errors: fieldErrs,
		Data: marketsPage{Provider: p, Rows: rows, IsAdmin: me.HasRole(onboarding.RoleProviderAdmin)}})
}

func (h *Handlers) requestMarkets(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	var codes []string
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		if string(k) == "markets" {
			codes = append(codes, string(v))
		}
	})
	requested, err := h.Onboarding.RequestMarkets(c.UserContext(), me.ProviderID, codes)
	if invalid(err) {
		return h.renderMarkets(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err))
	}
	if err != nil {
		return err
	}
	msg := "Nothing new to request."
	if len(requested) > 0 {
		msg = i18n.T(templates.LangOf(c), "Requested {{.Markets}}. A partner manager decides each market.", "Markets", strings.Join(requested, ", "))
	}
	templates.SetFlash(c, "success", msg)
	return c.Redirect("/portal/markets", fiber.StatusSeeOther)
}
