package portal

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/policies/errs"
	"cardata/templates"
)

// PriceListHandlers publish the price list, one for every provider: the
// page GET /price-list and GET /api/v1/price-list, both public.
type PriceListHandlers struct {
	View     *templates.View
	Billing  *billing.Service
	Location *time.Location // the billing time zone the page shows validity in
}

// PriceListRoutes are the price list's routes (method, path), all public.
var PriceListRoutes = [][2]string{
	{fiber.MethodGet, "/price-list"},
	{fiber.MethodGet, "/api/v1/price-list"},
}

// Routes mounts the page and the API on r (the app).
func (h *PriceListHandlers) Routes(r fiber.Router) {
	r.Get("/price-list", h.page)
	r.Get("/api/v1/price-list", h.api)
}

// PublishedPriceList is the public JSON form of the price list.
type PublishedPriceList struct {
	Currency string             `json:"currency"`
	Note     string             `json:"note"`
	Versions []PublishedVersion `json:"versions"`
}

// PublishedVersion is one version: valid from validFrom (inclusive) until
// validTo (exclusive; null while no later version is announced).
type PublishedVersion struct {
	ID        int64           `json:"id"`
	ValidFrom time.Time       `json:"validFrom"`
	ValidTo   *time.Time      `json:"validTo"`
	Current   bool            `json:"current"`
	Items     []PublishedItem `json:"items"`
}

// PublishedItem is one price. Telematics and push prices are graduated:
// each unit of a provider's monthly count is priced in the tier it falls in.
type PublishedItem struct {
	Item      string  `json:"item"`
	Label     string  `json:"label"`
	Priority  string  `json:"priority,omitempty"`
	TierFrom  *int64  `json:"tierFrom,omitempty"`
	TierTo    *int64  `json:"tierTo,omitempty"`
	UnitPrice string  `json:"unitPrice"`
	Unit      string  `json:"unit"`
	VATNote   *string `json:"vatNote,omitempty"`
}

func (h *PriceListHandlers) published(ctx context.Context) (*PublishedPriceList, error) {
	vs, err := h.Billing.Published(ctx)
	if err != nil {
		return nil, err
	}
	out := &PublishedPriceList{Currency: "EUR", Versions: []PublishedVersion{},
		Note: "One published price list for every registered provider. Prices are net; German VAT applies to providers seated in Germany, reverse charge to other EU providers. Telematics and push deliveries are graduated by the provider's monthly count; only deliveries that carried data, and only accepted pushes, are billed."}
	now := time.Now()
	for _, v := range vs {
		pv := PublishedVersion{ID: v.ID, ValidFrom: v.ValidFrom.UTC(), ValidTo: v.ValidTo, Current: v.Current(now), Items: []PublishedItem{}}
		for _, it := range v.Items {
			pi := PublishedItem{Item: string(it.Item), Label: it.Item.ShortLabel(), Priority: it.Priority, UnitPrice: it.PriceString()}
			switch it.Item {
			case billing.ItemTelematics, billing.ItemPush:
				from := it.TierFrom
				pi.TierFrom, pi.TierTo = &from, it.TierTo
				pi.Unit = "delivery"
				if it.Item == billing.ItemPush {
					pi.Unit = "accepted push"
				}
			case billing.ItemSupportCase:
				pi.Unit = "billable case"
			case billing.ItemSupportTime:
				pi.Unit = "started 15 minutes"
			}
			pv.Items = append(pv.Items, pi)
		}
		out.Versions = append(out.Versions, pv)
	}
	return out, nil
}

func (h *PriceListHandlers) api(c *fiber.Ctx) error {
	pl, err := h.published(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(pl)
}

func (h *PriceListHandlers) page(c *fiber.Ctx) error {
	vs, err := h.Billing.Published(c.UserContext())
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return errs.New(errs.NotFound, "price_list_not_published", "no price list is published yet")
	}
	for i := range vs {
		vs[i] = vs[i].InZone(h.Location)
	}
	return h.View.Render(c, fiber.StatusOK, "public/price-list", &templates.Page{Data: struct {
		Versions []billing.Version
		Now      time.Time
	}{vs, time.Now()}})
}
