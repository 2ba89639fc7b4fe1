package admin

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies/errs"
	"cardata/templates"
)

// VehicleHandlers are the staff's vehicle lookup pages (read-only: the
// registry is fed by the manufacturer's systems).
type VehicleHandlers struct {
	View     *templates.View
	Vehicles *vehicles.Service
	Now      func() time.Time
}

// Routes mounts the pages on r (the /admin group).
func (h *VehicleHandlers) Routes(r fiber.Router) {
	r.Get("/vehicles", h.listVehicles)
	r.Get("/vehicles/:vin", h.showVehicle)
}

// VehicleNav is the navigation entry.
func VehicleNav() templates.NavItem {
	return templates.NavItem{Label: "Vehicles", Path: "/admin/vehicles"}
}

type vehicleListPage struct {
	Vehicles []vehicles.Vehicle
	Brands   []string
	Markets  []onboarding.Country
}

func (h *VehicleHandlers) listVehicles(c *fiber.Ctx) error {
	q := c.Query("q")
	// A complete VIN goes straight to its page.
	if vin := vehicles.NormalizeVIN(q); vehicles.IsVIN(vin) {
		if v, err := h.Vehicles.FindByVIN(c.UserContext(), vin); err == nil {
			return c.Redirect("/admin/vehicles/"+v.VIN, fiber.StatusSeeOther)
		}
	}
	pager := templates.NewPager(c, 25)
	f := vehicles.Filter{Query: q, Brand: c.Query("brand"), Market: c.Query("market"), Offset: pager.Offset(), Limit: pager.PerPage}
	list, total, err := h.Vehicles.Search(c.UserContext(), f)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "admin/vehicles/index", &templates.Page{Pager: pager,
		Form: map[string]string{"q": q, "brand": f.Brand, "market": f.Market},
		Data: vehicleListPage{Vehicles: list, Brands: vehicles.Brands, Markets: onboarding.SupportedMarkets}})
}

// latestRow is one latest value as staff see it: sensitive values (location,
// driving behaviour) are never shown, only that and when they were received.
type latestRow struct {
	Key        *catalog.Key
	Value      string
	Hidden     bool
	ReadAt     time.Time
	ReceivedAt time.Time
}

type capRow struct {
	Key       *catalog.Key
	Frequency string
	Push      bool
}

type subRow struct {
	vehicles.Subscription
	State string
}

type vehiclePage struct {
	Vehicle       *vehicles.Vehicle
	MarketName    string
	CheckDigitOK  bool
	Holders       []vehicles.Holder
	Subscriptions []subRow
	Caps          *vehicles.Capabilities
	Reasons       []string
	CapKeys       []capRow
	AsOf          time.Time
	AsOfInput     string
	Latest        []latestRow
	Services      []vehicles.ConnectedService
}

func (h *VehicleHandlers) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *VehicleHandlers) showVehicle(c *fiber.Ctx) error {
	ctx := c.UserContext()
	v, err := h.Vehicles.FindByVIN(ctx, c.Params("vin"))
	if errs.KindOf(err) == errs.Invalid {
		return errs.New(errs.NotFound, "vehicle_not_found", "no vehicle with that VIN")
	}
	if err != nil {
		return err
	}
	loc := h.View.Location
	at := h.now()
	if s := c.Query("at"); s != "" {
		t, perr := time.ParseInLocation("2006-01-02T15:04", s, loc)
		if perr != nil {
			return errs.New(errs.BadRequest, "at_invalid", "the time must look like 2025-05-01T12:00")
		}
		at = t
	}
	p := vehiclePage{Vehicle: v, MarketName: onboarding.CountryName(v.Market), CheckDigitOK: vehicles.HasValidCheckDigit(v.VIN),
		AsOf: at, AsOfInput: at.In(loc).Format("2006-01-02T15:04"), Services: vehicles.Services}
	if p.Holders, err = h.Vehicles.Holders(ctx, v.ID); err != nil {
		return err
	}
	subs, err := h.Vehicles.Subscriptions(ctx, v.ID)
	if err != nil {
		return err
	}
	for _, s := range subs {
		p.Subscriptions = append(p.Subscriptions, subRow{Subscription: s, State: s.State(at)})
	}
	if p.Caps, err = h.Vehicles.Capabilities(ctx, v.VIN, at); err != nil {
		return err
	}
	for _, r := range p.Caps.Reasons {
		p.Reasons = append(p.Reasons, vehicles.ReasonText(r))
	}
	cat := catalog.Default()
	for _, kc := range p.Caps.Keys {
		if !kc.Available {
			continue
		}
		k, _ := cat.Lookup(kc.Key)
		p.CapKeys = append(p.CapKeys, capRow{Key: k, Frequency: vehicles.FrequencyLabel(kc.Frequency), Push: kc.Push})
	}
	latest, err := h.Vehicles.LatestValues(ctx, v.ID)
	if err != nil {
		return err
	}
	for _, lv := range latest {
		r := latestRow{Key: lv.Key, ReadAt: lv.ReadAt, ReceivedAt: lv.ReceivedAt, Value: lv.Value, Hidden: lv.Key.Sensitive()}
		if r.Hidden {
			r.Value = ""
		}
		p.Latest = append(p.Latest, r)
	}
	return h.View.Render(c, fiber.StatusOK, "admin/vehicles/show", &templates.Page{Title: v.VIN, Data: p})
}
