package portal

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/onboarding"
	"cardata/policies/errs"
	"cardata/templates"
)

// RegisterRoutes mounts the public registration form on r (the /register group).
func (h *Handlers) RegisterRoutes(r fiber.Router) {
	r.Get("/", h.registerForm)
	r.Post("/", h.register)
}

type registerPage struct {
	Terms     *onboarding.Terms
	Seats     []onboarding.Country
	NotSeats  []onboarding.Country
	MaxUpload int
}

var registerFields = []string{"legal_name", "legal_form", "street", "postal_code", "city", "country", "vat_id", "register_number",
	"contact_name", "contact_email", "contact_phone", "billing_email", "intended_services", "accept_terms"}

func (h *Handlers) registerForm(c *fiber.Ctx) error {
	return h.renderRegister(c, fiber.StatusOK, nil, nil)
}

func (h *Handlers) renderRegister(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	terms, err := h.Onboarding.FindCurrentTerms(c.UserContext())
	if err != nil {
		return err
	}
	seats := append(append([]onboarding.Country{}, onboarding.EU27...), onboarding.EEAOnly...)
	return h.View.Render(c, status, "register/form", &templates.Page{Title: "Register as a CarData provider", Errors: fieldErrs, Form: form,
		Data: registerPage{Terms: terms, Seats: seats, MaxUpload: onboarding.MaxDocumentSize >> 20,
			NotSeats: []onboarding.Country{{Code: "CH", Name: "Switzerland"}, {Code: "GB", Name: "United Kingdom"}, {Code: "US", Name: "United States"}}}})
}

func (h *Handlers) register(c *fiber.Ctx) error {
	form := map[string]string{}
	for _, f := range registerFields {
		form[f] = c.FormValue(f)
	}
	ups, err := readUploads(c, "documents")
	if err != nil {
		return err
	}
	r := onboarding.Registration{LegalName: form["legal_name"], LegalForm: form["legal_form"], Street: form["street"],
		PostalCode: form["postal_code"], City: form["city"], Country: form["country"], VATID: form["vat_id"],
		RegisterNumber: form["register_number"], ContactName: form["contact_name"], ContactEmail: form["contact_email"],
		ContactPhone: form["contact_phone"], BillingEmail: form["billing_email"], IntendedServices: form["intended_services"],
		TermsVersion: c.FormValue("terms_version"), AcceptTerms: form["accept_terms"] == "yes",
		AdminPassword: c.FormValue("password"), Documents: ups, ClientAddr: web.ClientAddr(c)}
	fieldErrs := map[string]string{}
	if r.AdminPassword != c.FormValue("password_confirm") {
		fieldErrs["password_confirm"] = "the two passwords differ"
	}
	var out *onboarding.Registered
	if len(fieldErrs) == 0 {
		out, err = h.Onboarding.Register(c.UserContext(), r)
	}
	if invalid(err) || len(fieldErrs) > 0 {
		for k, v := range errs.FieldMap(err) {
			fieldErrs[k] = v
		}
		if _, ok := fieldErrs["documents"]; !ok && len(fieldErrs) > 0 && len(ups) > 0 {
			fieldErrs["documents"] = "for your safety, choose the file(s) again"
		}
		return h.renderRegister(c, fiber.StatusUnprocessableEntity, fieldErrs, form)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Thank you. Your application is submitted; a partner manager will review it. You can follow it here.")
	return h.startSession(c, out.Admin, "/portal")
}

// registrationRequest is the JSON body of POST /api/v1/registrations.
type registrationRequest struct {
	onboarding.Registration
	Documents []struct {
		Filename      string `json:"filename"`
		Kind          string `json:"kind"`
		ContentBase64 string `json:"content_base64"`
	} `json:"documents"`
}

// RegistrationResponse is the answer of POST /api/v1/registrations.
type RegistrationResponse struct {
	ID            int64  `json:"id"`
	Status        string `json:"status"`
	LegalName     string `json:"legal_name"`
	Country       string `json:"country"`
	VATID         string `json:"vat_id"`
	TermsVersion  string `json:"terms_version"`
	AdminEmail    string `json:"admin_email"`
	PasswordSetup string `json:"password_setup"` // "set" or "link_sent"
	PortalURL     string `json:"portal_url"`
}

// RegistrationAPI handles POST /api/v1/registrations: the same registration
// as the form, as JSON, for partners who automate. Documents come base64
// encoded; without admin_password the admin receives a set-password link.
func (h *Handlers) RegistrationAPI(c *fiber.Ctx) error {
	var req registrationRequest
	dec := json.NewDecoder(strings.NewReader(string(c.Body())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errs.New(errs.BadRequest, "invalid_json", "the body must be a JSON registration object: %s", jsonProblem(err))
	}
	var v errs.Validation
	for _, d := range req.Documents {
		data, err := base64.StdEncoding.DecodeString(d.ContentBase64)
		if err != nil {
			v.Add("documents", "document_encoding", "%s: content_base64 is not valid base64", d.Filename)
			continue
		}
		req.Registration.Documents = append(req.Registration.Documents, onboarding.Upload{Filename: d.Filename, Kind: d.Kind, Data: data})
	}
	if err := v.Err(); err != nil {
		return err
	}
	r := req.Registration
	r.PasswordByMail = r.AdminPassword == ""
	r.ClientAddr = web.ClientAddr(c)
	out, err := h.Onboarding.Register(c.UserContext(), r)
	if err != nil {
		return err
	}
	setup := "set"
	if out.SetPasswordLink != "" {
		setup = "link_sent"
	}
	p := out.Provider
	return c.Status(fiber.StatusCreated).JSON(RegistrationResponse{ID: p.ID, Status: string(p.Status), LegalName: p.LegalName,
		Country: p.Country, VATID: p.VATID, TermsVersion: p.TermsVersion, AdminEmail: out.Admin.Email, PasswordSetup: setup,
		PortalURL: strings.TrimRight(h.Onboarding.PublicURL, "/") + "/portal"})
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.As(err, &se):
		return "syntax error"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return err.Error()[len("json: "):]
	}
	return "unreadable"
}

// MarketJSON is one entry of GET /api/v1/markets.
type MarketJSON struct {
	Code   string `json:"code"`
	Name   string `json:"name"`
	Status string `json:"status"` // active or paused
}

// MarketsAPI handles GET /api/v1/markets: the supported markets, public.
func (h *Handlers) MarketsAPI(c *fiber.Ctx) error {
	markets, err := h.Onboarding.FindMarkets(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]MarketJSON, len(markets))
	for i, m := range markets {
		out[i] = MarketJSON{Code: m.Code, Name: m.Name, Status: "active"}
		if !m.Active {
			out[i].Status = "paused"
		}
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.JSON(fiber.Map{"markets": out, "count": len(out)})
}
