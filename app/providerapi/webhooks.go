package providerapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/onboarding/webhooks"
	"cardata/policies/errs"
)

// WebhookEndpoint is an endpoint as the API shows it. The signing secret is
// part of the answer: the provider needs it to verify signatures.
type WebhookEndpoint struct {
	*webhooks.Endpoint
	Secret string `json:"secret"`
}

func decodeJSON(c *fiber.Ctx, v any) error {
	if len(c.Body()) > 64<<10 {
		return errs.New(errs.TooLarge, "payload_too_large", "the body is larger than 64 KiB")
	}
	return web.DecodeJSON(c, v)
}

// WebhookList is the answer of GET /webhooks: a page of the caller's
// endpoints, newest first, and every event type an endpoint can subscribe to.
type WebhookList struct {
	Webhooks   []WebhookEndpoint `json:"webhooks"`
	EventTypes []string          `json:"eventTypes"`
	NextCursor *string           `json:"nextCursor"`
}

// listWebhooks is GET /webhooks?limit=&cursor=. A provider has few
// endpoints, so the service reads them all and the page is cut here.
func (h *Handler) listWebhooks(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	pg, err := web.ParsePageOnly(c)
	if err != nil {
		return err
	}
	list, err := h.Webhooks.FindEndpoints(c.UserContext(), p.ProviderID, false)
	if err != nil {
		return err
	}
	var realm []*webhooks.Endpoint
	for i := len(list) - 1; i >= 0; i-- { // the service lists oldest first
		if list[i].Sandbox == p.Sandbox { // each realm sees its own endpoints
			realm = append(realm, &list[i])
		}
	}
	page, next := web.CutPage(pg, realm, func(e *webhooks.Endpoint) int64 { return e.ID })
	out := WebhookList{Webhooks: []WebhookEndpoint{}, EventTypes: webhooks.EventTypes, NextCursor: next}
	for _, e := range page {
		out.Webhooks = append(out.Webhooks, WebhookEndpoint{Endpoint: e, Secret: string(e.Secret)})
	}
	return c.JSON(out)
}

func (h *Handler) createWebhook(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	var in webhooks.NewEndpoint
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	in.Sandbox = p.Sandbox // a sandbox client's endpoints receive the sandbox's events only
	e, err := h.Webhooks.CreateEndpoint(c.UserContext(), p.ProviderID, in)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/webhooks/"+strconv.FormatInt(e.ID, 10))
	markSecretAnswer(c)
	return c.Status(fiber.StatusCreated).JSON(WebhookEndpoint{Endpoint: e, Secret: string(e.Secret)})
}

func (h *Handler) getWebhook(c *fiber.Ctx) error {
	providerID, id, err := h.endpointRef(c)
	if err != nil {
		return err
	}
	e, err := h.Webhooks.FindEndpoint(c.UserContext(), providerID, id)
	if err != nil {
		return err
	}
	return c.JSON(WebhookEndpoint{Endpoint: e, Secret: string(e.Secret)})
}

func (h *Handler) deleteWebhook(c *fiber.Ctx) error {
	providerID, id, err := h.endpointRef(c)
	if err != nil {
		return err
	}
	if err := h.Webhooks.DeleteEndpoint(c.UserContext(), providerID, id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *Handler) testWebhook(c *fiber.Ctx) error {
	providerID, id, err := h.endpointRef(c)
	if err != nil {
		return err
	}
	evID, err := h.Webhooks.SendTest(c.UserContext(), providerID, id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"eventId": evID, "type": webhooks.TypeTest})
}

// webhookDeliveries is GET /webhooks/{id}/deliveries?status=&limit=&cursor=: the
// deliveries to one endpoint with every attempt, newest first.
func (h *Handler) webhookDeliveries(c *fiber.Ctx) error {
	providerID, id, err := h.endpointRef(c)
	if err != nil {
		return err
	}
	if _, err := h.Webhooks.FindEndpoint(c.UserContext(), providerID, id); err != nil {
		return err
	}
	f := webhooks.DeliveryFilter{EndpointID: id, Status: c.Query("status")}
	switch f.Status {
	case "", webhooks.DeliveryPending, webhooks.DeliverySucceeded, webhooks.DeliveryDead, webhooks.DeliveryDropped:
	default:
		var v errs.Validation
		v.Add("status", "status_invalid", "status is pending, succeeded, dead or dropped")
		return v.Err()
	}
	pg, err := web.ParsePageOnly(c)
	if err != nil {
		return err
	}
	f.Before, f.Limit = pg.After.ID, pg.Limit
	list, next, err := h.Webhooks.FindDeliveries(c.UserContext(), providerID, f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []webhooks.Delivery{}
	}
	return c.JSON(WebhookDeliveries{Deliveries: list, NextCursor: web.NextCursor(web.Cursor{ID: next}, next != 0)})
}

// WebhookDeliveries is the answer of GET /webhooks/{id}/deliveries.
type WebhookDeliveries struct {
	Deliveries []webhooks.Delivery `json:"deliveries"`
	NextCursor *string             `json:"nextCursor"`
}

func (h *Handler) redeliver(c *fiber.Ctx) error {
	providerID, id, err := h.endpointRef(c)
	if err != nil {
		return err
	}
	did, err := pathInt(c, "delivery")
	if err != nil {
		return errs.New(errs.NotFound, "webhook_delivery_not_found", "no such delivery")
	}
	d, err := h.Webhooks.FindDelivery(c.UserContext(), providerID, did)
	if err != nil {
		return err
	}
	if d.EndpointID != id {
		return errs.New(errs.NotFound, "webhook_delivery_not_found", "no such delivery")
	}
	d, err = h.Webhooks.Redeliver(c.UserContext(), providerID, did)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}

// endpointRef is the caller's provider and the endpoint id in the path; an
// id that is not a number is an unknown endpoint, and so is an endpoint of
// the other realm (a production endpoint for a sandbox client, a sandbox
// endpoint for a production client).
func (h *Handler) endpointRef(c *fiber.Ctx) (providerID, id int64, err error) {
	p, err := caller(c)
	if err != nil {
		return 0, 0, err
	}
	if id, err = pathInt(c, "id"); err != nil {
		return 0, 0, webhooks.ErrEndpointNotFound
	}
	e, err := h.Webhooks.FindEndpoint(c.UserContext(), p.ProviderID, id)
	if err != nil {
		return 0, 0, err
	}
	if e.Sandbox != p.Sandbox {
		return 0, 0, webhooks.ErrEndpointNotFound
	}
	return p.ProviderID, id, nil
}
