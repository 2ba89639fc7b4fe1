package portal

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/onboarding"
	"cardata/policies/errs"
	"cardata/templates"
)

// RegisterRoutes mounts the public registration form on r (the /register group).
func (h *Handlers) RegisterRoutes(r fiber.Router) {
	r.Get("", h.registerForm)
	r.Post("", h.register)
	r.Get("/terms", h.terms)
}

// terms shows the full text of the current partner terms, linked from the form.
func (h *Handlers) terms(c *fiber.Ctx) error {
	t, err := h.Onboarding.FindCurrentTerms(c.UserContext())
	if err != nil {
		return err
	}
	body := t.BodyEN
	if templates.LangOf(c) == "de" && t.BodyDE != "" {
		body = t.BodyDE
	}
	return h.View.Render(c, fiber.StatusOK, "register/terms", &templates.Page{Title: t.Title,
		Data: struct {
			Terms      *onboarding.Terms
			Paragraphs []string
		}{t, onboarding.Paragraphs(body)}})
}

type registerPage struct {
	Terms *onboarding.Terms
	// Seats are the only countries offered: the EEA. Switzerland and the
	// United Kingdom are markets but not seats; the form says so up front
	// instead of offering them and refusing after submission.
	Seats     []onboarding.Country
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
		Data: registerPage{Terms: terms, Seats: seats, MaxUpload: onboarding.MaxDocumentSize >> 20}})
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
	r := onboarding.Registration{Lang: templates.LangOf(c), LegalName: form["legal_name"], LegalForm: form["legal_form"], Street: form["street"],
		PostalCode: form["postal_code"], City: form["city"], Country: form["country"], VATID: form["vat_id"],
		RegisterNumber: form["register_number"], ContactName: form["contact_name"], ContactEmail: form["contact_email"],
		ContactPhone: form["contact_phone"], BillingEmail: form["billing_email"], IntendedServices: form["intended_services"],
		TermsVersion: c.FormValue("terms_version"), AcceptTerms: form["accept_terms"] == "yes",
		AdminPassword: c.FormValue("password"), Documents: ups, ClientAddr: web.ClientAddr(c)}
	fieldErrs := map[string]string{}
	if r.AdminPassword != c.FormValue("password_confirm") {
		fieldErrs["password_confirm"] = "the two passwords differ"
	}
	if len(fieldErrs) == 0 {
		_, err = h.Onboarding.Apply(c.UserContext(), r)
	}
	var limited *onboarding.LimitError
	if errors.As(err, &limited) {
		setRetryAfter(c, limited)
		fieldErrs = templates.FieldErrors(c, err)
		if len(fieldErrs) == 0 {
			fieldErrs["form"] = templates.ErrorText(c, limited.Err)
		}
		return h.renderRegister(c, fiber.StatusTooManyRequests, fieldErrs, form)
	}
	if invalid(err) || len(fieldErrs) > 0 {
		for k, v := range templates.FieldErrors(c, err) {
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
	// The same answer whether the application is new or its e-mail or VAT ID
	// was already known (then the known address got a notice instead), so
	// nobody is signed in here: the applicant signs in with the password
	// just chosen.
	templates.SetFlash(c, "success", "Thank you, we have received your application. Sign in with your e-mail and password to follow it.")
	return c.Redirect("/portal/login", fiber.StatusSeeOther)
}

// setRetryAfter tells a refused client when it may try again.
func setRetryAfter(c *fiber.Ctx, e *onboarding.LimitError) {
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds())))))
}

// registrationRequest is the JSON body of POST /api/v1/registrations.
type registrationRequest struct {
	onboarding.Registration
	Documents []struct {
		Filename      string `json:"filename"`
		Kind          string `json:"kind"`
		ContentBase64 string `json:"contentBase64"`
	} `json:"documents"`
}

// RegistrationResponse is the answer of POST /api/v1/registrations. It
// repeats the application and carries no id: it is the same whether the
// registration was new or its e-mail or VAT ID was already known.
type RegistrationResponse struct {
	Status        string `json:"status"`
	LegalName     string `json:"legalName"`
	Country       string `json:"country"`
	VATID         string `json:"vatId"`
	TermsVersion  string `json:"termsVersion"`
	AdminEmail    string `json:"adminEmail"`
	PasswordSetup string `json:"passwordSetup"` // "set" or "link_sent"
	PortalURL     string `json:"portalUrl"`
}

// RegistrationAPI handles POST /api/v1/registrations: the same registration
// as the form, as JSON, for partners who automate. Documents come base64
// encoded; without adminPassword the admin receives a set-password link.
// An accepted application answers 202 (also when its e-mail or VAT ID is
// already known: the known address is told by e-mail), too many from one
// address 429 with Retry-After.
func (h *Handlers) RegistrationAPI(c *fiber.Ctx) error {
	var req registrationRequest
	if err := web.DecodeJSON(c, &req); err != nil {
		return err
	}
	var v errs.Validation
	for _, d := range req.Documents {
		data, err := base64.StdEncoding.DecodeString(d.ContentBase64)
		if err != nil {
			v.Add("documents", "document_encoding", "%s: contentBase64 is not valid base64", d.Filename)
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
	out, err := h.Onboarding.Apply(c.UserContext(), r)
	var limited *onboarding.LimitError
	if errors.As(err, &limited) {
		setRetryAfter(c, limited)
	}
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(RegistrationResponse{Status: out.Status, LegalName: out.LegalName,
		Country: out.Country, VATID: out.VATID, TermsVersion: out.TermsVersion, AdminEmail: out.AdminEmail,
		PasswordSetup: out.PasswordSetup, PortalURL: strings.TrimRight(h.Onboarding.PublicURL, "/") + "/portal"})
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
