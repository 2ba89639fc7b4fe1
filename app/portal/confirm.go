package portal

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/onboarding"
	"cardata/templates"
)

// The portal's destructive actions and what their confirmation page says
// (templates.View.Confirm asks before the handler runs).

// ownThing is the signed-in provider user's provider and the id in the
// path: the thing a confirmation is about, looked up within that provider.
func ownThing(c *fiber.Ctx) (providerID, id int64, err error) {
	p, err := me(c)
	if err != nil {
		return 0, 0, err
	}
	id, err = templates.PathID(c)
	return p.ProviderID, id, err
}

// clientOf is the provider's API client named in the path.
func (h *Handlers) clientOf(c *fiber.Ctx) (*onboarding.APIClient, error) {
	providerID, id, err := ownThing(c)
	if err != nil {
		return nil, err
	}
	return h.Onboarding.FindAPIClient(c.UserContext(), providerID, id)
}

func (h *Handlers) confirmRevokeClient(c *fiber.Ctx) (templates.Confirmation, error) {
	cl, err := h.clientOf(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	return templates.Confirmation{
		Title:  "Revoke the API client “{{.Name}}”?",
		Effect: "Client ID {{.ClientID}} and its secrets stop working at once: every system using them is refused from its next request on. A revoked client cannot be restored; you would create a new one.",
		Yes:    "Revoke the client", Back: "/portal/clients", Args: []any{"Name", cl.Name, "ClientID", cl.ClientID}}, nil
}

func (h *Handlers) confirmRotateClient(c *fiber.Ctx) (templates.Confirmation, error) {
	cl, err := h.clientOf(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	hours := c.FormValue("overlap_hours", "24")
	return templates.Confirmation{
		Title:  "Rotate the secret of “{{.Name}}”?",
		Effect: "A new secret is shown once. The current secret of {{.ClientID}} keeps working for {{.Hours}} more hours, then it is refused.",
		Yes:    "Rotate the secret", Back: "/portal/clients", Args: []any{"Name", cl.Name, "ClientID", cl.ClientID, "Hours", hours}}, nil
}

func (h *Handlers) confirmUserActive(c *fiber.Ctx) (templates.Confirmation, error) {
	if c.FormValue("active") == "true" {
		return templates.Confirmation{Safe: true}, nil
	}
	providerID, id, err := ownThing(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	users, err := h.Onboarding.FindProviderUsers(c.UserContext(), providerID)
	if err != nil {
		return templates.Confirmation{}, err
	}
	name := ""
	for _, u := range users {
		if u.ID == id {
			name = fmt.Sprintf("%s (%s)", u.Name, u.Email)
		}
	}
	return templates.Confirmation{Args: []any{"Name", name},
		Title:  "Deactivate {{.Name}}?",
		Effect: "They are signed out everywhere at once and can no longer sign in to the portal until an administrator reactivates them.",
		Yes:    "Deactivate", Back: "/portal/users"}, nil
}

func (h *APIPages) confirmDeleteWebhook(c *fiber.Ctx) (templates.Confirmation, error) {
	providerID, id, err := ownThing(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	ep, err := h.Webhooks.FindEndpoint(c.UserContext(), providerID, id)
	if err != nil {
		return templates.Confirmation{}, err
	}
	return templates.Confirmation{
		Title: "Delete the webhook endpoint {{.URL}}?", Args: []any{"URL", ep.URL},
		Effect: "No more notifications are sent to it, and the notifications queued for it are dropped, not delivered later. This cannot be undone.",
		Yes:    "Delete the endpoint", Back: "/portal/webhooks/" + strconv.FormatInt(id, 10)}, nil
}

func (h *ContainerHandlers) confirmAct(c *fiber.Ctx) (templates.Confirmation, error) {
	action := c.Params("action")
	if action == "submit" || (action == "withdraw" && strings.TrimSpace(c.FormValue("reason")) == "") {
		return templates.Confirmation{Safe: true}, nil // a withdrawal asks for its reason first
	}
	ct, v, err := h.containerVersionOf(c)
	if err != nil {
		return templates.Confirmation{}, err
	}
	args := []any{"Name", v.Name, "Version", strconv.Itoa(v.Version)}
	back := "/portal/containers/" + strconv.FormatInt(ct.ID, 10)
	switch action {
	case "deprecate":
		return templates.Confirmation{Title: "Deprecate “{{.Name}}” version {{.Version}}?", Args: args,
			Effect: "Customers can no longer be asked to consent to it; existing consents keep delivering data.",
			Yes:    "Deprecate", Back: back}, nil
	case "withdraw":
		return templates.Confirmation{Title: "Withdraw “{{.Name}}” version {{.Version}}?", Args: args,
			Effect: "Every consent to this version ends at once and no more data flows under it; open consent requests expire. This cannot be undone.",
			Yes:    "Withdraw", Back: back}, nil
	case "discard":
		return templates.Confirmation{Title: "Discard the draft “{{.Name}}” version {{.Version}}?", Args: args,
			Effect: "The draft is deleted with its keys and purpose text.",
			Yes:    "Discard the draft", Back: back}, nil
	}
	return templates.Confirmation{Safe: true}, nil
}
