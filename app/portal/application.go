package portal

import (
	"io"
	"mime/multipart"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/policies/errs"
	"cardata/templates"
)

type homePage struct {
	Provider  *onboarding.Provider
	Events    []onboarding.Event
	Documents []onboarding.Document
	IsAdmin   bool
	// Dash are the provider's own figures, on the portal home (/portal).
	Dash *homeDash
}

func (h *Handlers) home(c *fiber.Ctx) error { return h.renderHome(c, fiber.StatusOK, nil, nil) }

func (h *Handlers) renderHome(c *fiber.Ctx, status int, fieldErrs, form map[string]string) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	p, err := h.Onboarding.FindProviderByID(ctx, me.ProviderID)
	if err != nil {
		return err
	}
	page := homePage{Provider: p, IsAdmin: me.HasRole(onboarding.RoleProviderAdmin)}
	if page.Events, err = h.Onboarding.FindEvents(ctx, p.ID); err != nil {
		return err
	}
	if page.Documents, err = h.Onboarding.FindDocuments(ctx, p.ID); err != nil {
		return err
	}
	if c.Path() == "/portal" && dashboardStatus(p.Status) {
		if page.Dash, err = h.homeDash(ctx, me, h.View.Can(me, fiber.MethodGet, "/portal/invoices")); err != nil {
			return err
		}
	}
	return h.View.Render(c, status, "portal/home", &templates.Page{Title: p.LegalName, Errors: fieldErrs, Form: form, Data: page})
}

func (h *Handlers) answer(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	answer := c.FormValue("answer")
	_, err = h.Onboarding.AnswerQuestion(c.UserContext(), me.ProviderID, answer)
	if invalid(err) {
		return h.renderHome(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err), map[string]string{"answer": answer})
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Thank you. Your answer is with the reviewer.")
	return c.Redirect("/portal/application", fiber.StatusSeeOther)
}

func (h *Handlers) uploadDocuments(c *fiber.Ctx) error {
	me, err := me(c)
	if err != nil {
		return err
	}
	ups, err := readUploads(c, "documents")
	if err != nil {
		return err
	}
	err = h.Onboarding.AddDocuments(c.UserContext(), me.ProviderID, ups)
	if invalid(err) {
		return h.renderHome(c, fiber.StatusUnprocessableEntity, templates.FieldErrors(c, err), nil)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", "Document uploaded.")
	return c.Redirect("/portal/application", fiber.StatusSeeOther)
}

// readUploads reads the files of a multipart field; the domain validates them.
func readUploads(c *fiber.Ctx, field string) ([]onboarding.Upload, error) {
	form, err := c.MultipartForm()
	if err != nil {
		return nil, nil // not multipart or no files: validation reports the missing document
	}
	var out []onboarding.Upload
	for i, fh := range form.File[field] {
		if i >= onboarding.MaxDocumentsPerRegistration+1 {
			break
		}
		data, err := readFile(fh)
		if err != nil {
			return nil, err
		}
		kind := "register_extract"
		if kinds := form.Value[field+"_kind"]; i < len(kinds) && kinds[i] == "other" {
			kind = "other"
		}
		out = append(out, onboarding.Upload{Filename: fh.Filename, Kind: kind, Data: data})
	}
	return out, nil
}

func readFile(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, errs.New(errs.BadRequest, "upload_unreadable", "the upload could not be read")
	}
	defer f.Close()
	// One byte over the limit is enough for the domain to say "too large".
	data, err := io.ReadAll(io.LimitReader(f, onboarding.MaxDocumentSize+1))
	if err != nil {
		return nil, errs.New(errs.BadRequest, "upload_unreadable", "the upload could not be read")
	}
	return data, nil
}
