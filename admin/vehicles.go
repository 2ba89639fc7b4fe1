package admin

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// VehicleHandlers are the staff's vehicle pages. The registry is fed by
// the manufacturer's systems (the master-data API); staff who see a vehicle
// read its master-data history, and administrators may correct the master
// data by hand (audited, and recorded in the history as theirs).
type VehicleHandlers struct {
	View     *templates.View
	Vehicles *vehicles.Service
	Now      func() time.Time
}

// Routes mounts the pages on r (the /admin group).
func (h *VehicleHandlers) Routes(r fiber.Router) {
	r.Get("/vehicles", h.listVehicles)
	r.Get("/vehicles/:vin", h.showVehicle)
	r.Post("/vehicles/:vin/master-data", h.updateMasterData)
	r.Post("/vehicles/:vin/holders", h.updateHolders)
	r.Post("/vehicles/:vin/subscriptions", h.bookSubscription)
	r.Post("/vehicles/:vin/subscriptions/:id/end", h.View.Confirm(h.confirmEndSubscription), h.endSubscription)
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
	if vin := policies.NormalizeVIN(q); vehicles.IsVIN(vin) {
		if v, err := h.Vehicles.FindByVIN(c.UserContext(), vin); err == nil {
			return c.Redirect("/admin/vehicles/"+v.VIN, fiber.StatusSeeOther)
		}
	}
	pager := templates.NewPager(c, 25)
	f := vehicles.Filter{Query: q, Brand: c.Query("brand"), Market: c.Query("market"), Offset: pager.Offset(), Limit: pager.PerPage,
		Order: vehicles.Sort.Parse(c.Query("sort"), c.Query("dir"))}
	list, total, err := h.Vehicles.Search(c.UserContext(), f)
	if err != nil {
		return err
	}
	pager.Total = total
	return h.View.Render(c, fiber.StatusOK, "admin/vehicles/index", &templates.Page{Pager: pager, Sort: templates.NewSort(c, f.Order.Key, f.Order.Desc),
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
	History       []vehicles.Change
	Drivetrains   []string
	Brands        []string
	// FormError is a form's error that names no field (a conflict).
	FormError string
}

func (h *VehicleHandlers) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *VehicleHandlers) findVehicle(c *fiber.Ctx) (*vehicles.Vehicle, error) {
	v, err := h.Vehicles.FindByVIN(c.UserContext(), c.Params("vin"))
	if errs.KindOf(err) == errs.Invalid {
		return nil, errs.New(errs.NotFound, "vehicle_not_found", "no vehicle with that VIN")
	}
	return v, err
}

func (h *VehicleHandlers) showVehicle(c *fiber.Ctx) error {
	v, err := h.findVehicle(c)
	if err != nil {
		return err
	}
	at := h.now()
	if s := c.Query("at"); s != "" {
		t, perr := time.ParseInLocation("2006-01-02T15:04", s, h.View.Location)
		if perr != nil {
			return errs.New(errs.BadRequest, "at_invalid", "the time must look like 2025-05-01T12:00")
		}
		at = t
	}
	return h.renderVehicle(c, fiber.StatusOK, v, at, nil, nil, "")
}

// vehicleForm is the master-data form filled from the vehicle.
func (h *VehicleHandlers) vehicleForm(ctx context.Context, v *vehicles.Vehicle) (map[string]string, error) {
	f := map[string]string{"brand": v.Brand, "model": v.Model, "drivetrain": v.Drivetrain, "market": v.Market,
		"telematics_capable": strconv.FormatBool(v.TelematicsCapable), "sim_active": strconv.FormatBool(v.SIMActive),
		"starts_at": h.now().In(h.View.Location).Format("2006-01-02T15:04")}
	holders, err := h.Vehicles.Holders(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	var sec []string
	for _, ho := range holders {
		if ho.Role == vehicles.RolePrimary {
			f["primary_email"], f["primary_name"] = ho.Email, ho.Name
		} else {
			sec = append(sec, ho.Email+", "+ho.Name)
		}
	}
	f["secondary"] = strings.Join(sec, "\n")
	return f, nil
}

// renderVehicle renders the vehicle page; form and fieldErrs re-fill a
// submitted form (nil: the forms show the vehicle as it is).
func (h *VehicleHandlers) renderVehicle(c *fiber.Ctx, status int, v *vehicles.Vehicle, at time.Time, form, fieldErrs map[string]string, formError string) error {
	ctx := c.UserContext()
	loc := h.View.Location
	base, err := h.vehicleForm(ctx, v)
	if err != nil {
		return err
	}
	for k, val := range form {
		base[k] = val
	}
	form = base
	p := vehiclePage{Vehicle: v, MarketName: onboarding.CountryName(v.Market), CheckDigitOK: vehicles.HasValidCheckDigit(v.VIN),
		AsOf: at, AsOfInput: at.In(loc).Format("2006-01-02T15:04"), Services: vehicles.Services,
		Drivetrains: catalog.Drivetrains, Brands: vehicles.Brands, FormError: formError}
	if p.History, err = h.Vehicles.History(ctx, v.ID, 200); err != nil {
		return err
	}
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
	return h.View.Render(c, status, "admin/vehicles/show", &templates.Page{Title: v.VIN, Data: p, Form: form, Errors: fieldErrs})
}

// formError turns a domain error into the form's errors: field errors by
// field, a conflict or a missing record as the form's own message. Any
// other error is returned.
func formError(c *fiber.Ctx, err error, fieldOf func(string) string) (map[string]string, string, error) {
	e := errs.As(err)
	tr := templates.Translator(templates.LangOf(c))
	switch e.Kind {
	case errs.Invalid:
		m := map[string]string{}
		msg := ""
		for _, f := range e.Fields {
			name := fieldOf(f.Field)
			if name == "" {
				msg = f.Text(tr)
				continue
			}
			if _, ok := m[name]; !ok {
				m[name] = f.Text(tr)
			}
		}
		return m, msg, nil
	case errs.Conflict, errs.NotFound:
		return nil, e.Text(tr), nil
	}
	return nil, "", err
}

func (h *VehicleHandlers) updateMasterData(c *fiber.Ctx) error {
	v, err := h.findVehicle(c)
	if err != nil {
		return err
	}
	form := formValues(c, "brand", "model", "drivetrain", "market")
	form["telematics_capable"] = strconv.FormatBool(c.FormValue("telematics_capable") == "true")
	form["sim_active"] = strconv.FormatBool(c.FormValue("sim_active") == "true")
	in := vehicles.NewVehicle{VIN: v.VIN, Brand: form["brand"], Model: form["model"], Drivetrain: form["drivetrain"], Market: form["market"],
		TelematicsCapable: form["telematics_capable"] == "true", SIMActive: form["sim_active"] == "true"}
	_, result, err := h.Vehicles.UpsertVehicle(c.UserContext(), in)
	if err != nil {
		fe, msg, ferr := formError(c, err, func(f string) string {
			if f == "vin" {
				return ""
			}
			return f
		})
		if ferr != nil {
			return ferr
		}
		return h.renderVehicle(c, fiber.StatusUnprocessableEntity, v, h.now(), form, fe, msg)
	}
	if result == vehicles.Unchanged {
		templates.SetFlash(c, "info", "Nothing changed.")
	} else {
		templates.SetFlash(c, "success", "Master data saved; the capability service answers from it at once.")
	}
	return c.Redirect("/admin/vehicles/"+v.VIN+"#master-data", fiber.StatusSeeOther)
}

// parseHolderLines reads "e-mail" or "e-mail, name" per line.
func parseHolderLines(text string) []vehicles.HolderInput {
	var out []vehicles.HolderInput
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		email, name, _ := strings.Cut(line, ",")
		out = append(out, vehicles.HolderInput{Email: strings.TrimSpace(email), Name: strings.TrimSpace(name)})
	}
	return out
}

func (h *VehicleHandlers) updateHolders(c *fiber.Ctx) error {
	v, err := h.findVehicle(c)
	if err != nil {
		return err
	}
	form := formValues(c, "primary_email", "primary_name", "secondary")
	var primary *vehicles.HolderInput
	if strings.TrimSpace(form["primary_email"]) != "" {
		primary = &vehicles.HolderInput{Email: form["primary_email"], Name: form["primary_name"]}
	}
	ctx := c.UserContext()
	res, err := h.Vehicles.SetHolders(ctx, v.VIN, primary, parseHolderLines(form["secondary"]))
	if err != nil {
		fe, msg, ferr := formError(c, err, func(f string) string {
			switch {
			case strings.HasPrefix(f, "primary.email"):
				return "primary_email"
			case strings.HasPrefix(f, "primary.name"):
				return "primary_name"
			case strings.HasPrefix(f, "secondary"):
				return "secondary"
			}
			return ""
		})
		if ferr != nil {
			return ferr
		}
		return h.renderVehicle(c, fiber.StatusUnprocessableEntity, v, h.now(), form, fe, msg)
	}
	msg := "Nothing changed."
	if res.Result != vehicles.Unchanged {
		msg = "Customer accounts saved."
	}
	if res.OwnerChanged {
		n, err := h.Vehicles.EndFormerOwnersConsents(ctx)
		if err != nil {
			return err
		}
		msg = i18n.T(templates.LangOf(c), "Change of owner recorded: {{.Count}} consent(s) of {{.Owner}} ended.", "Count", n, "Owner", res.FormerPrimary)
	}
	templates.SetFlash(c, "success", msg)
	return c.Redirect("/admin/vehicles/"+v.VIN+"#holders", fiber.StatusSeeOther)
}

func (h *VehicleHandlers) parseLocal(s string) (*time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, true
	}
	t, err := time.ParseInLocation("2006-01-02T15:04", s, h.View.Location)
	if err != nil {
		return nil, false
	}
	return &t, true
}

func (h *VehicleHandlers) bookSubscription(c *fiber.Ctx) error {
	v, err := h.findVehicle(c)
	if err != nil {
		return err
	}
	form := formValues(c, "service", "starts_at", "ends_at")
	fe := map[string]string{}
	start, ok := h.parseLocal(form["starts_at"])
	if !ok || start == nil {
		fe["starts_at"] = "enter when the subscription starts, such as 2026-05-01T08:00"
	}
	end, ok := h.parseLocal(form["ends_at"])
	if !ok {
		fe["ends_at"] = "enter when the subscription ends, such as 2027-05-01T08:00, or leave it empty"
	}
	if len(fe) > 0 {
		return h.renderVehicle(c, fiber.StatusUnprocessableEntity, v, h.now(), form, fe, "")
	}
	_, _, err = h.Vehicles.BookSubscription(c.UserContext(), v.VIN, "", vehicles.NewSubscription{Service: form["service"], StartsAt: *start, EndsAt: end})
	if err != nil {
		fe, msg, ferr := formError(c, err, func(f string) string { return f })
		if ferr != nil {
			return ferr
		}
		return h.renderVehicle(c, fiber.StatusUnprocessableEntity, v, h.now(), form, fe, msg)
	}
	templates.SetFlash(c, "success", "Subscription booked.")
	return c.Redirect("/admin/vehicles/"+v.VIN+"#subscriptions", fiber.StatusSeeOther)
}

func (h *VehicleHandlers) endSubscription(c *fiber.Ctx) error {
	v, err := h.findVehicle(c)
	if err != nil {
		return err
	}
	id, err := templates.PathID(c)
	if err != nil {
		return err
	}
	_, result, err := h.Vehicles.EndBooking(c.UserContext(), v.VIN, strconv.FormatInt(id, 10), h.now())
	if k := errs.KindOf(err); k == errs.Conflict || k == errs.NotFound {
		templates.SetFlash(c, "error", templates.ErrorText(c, err))
		return c.Redirect("/admin/vehicles/"+v.VIN+"#subscriptions", fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	if result == vehicles.Unchanged {
		templates.SetFlash(c, "info", "The subscription had already ended.")
	} else {
		templates.SetFlash(c, "success", "Subscription ended.")
	}
	return c.Redirect("/admin/vehicles/"+v.VIN+"#subscriptions", fiber.StatusSeeOther)
}
