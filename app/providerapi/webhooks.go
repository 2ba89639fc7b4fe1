package providerapi

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

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
	if err := json.Unmarshal(c.Body(), v); err != nil {
		return errs.New(errs.BadRequest, "json_invalid", "the body is not the JSON object this endpoint expects")
	}
	return nil
}

func (h *Handler) listWebhooks(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	list, err := h.Webhooks.FindEndpoints(c.UserContext(), p.ProviderID, false)
	if err != nil {
		return err
	}
	out := make([]WebhookEndpoint, len(list))
	for i := range list {
		out[i] = WebhookEndpoint{Endpoint: &list[i], Secret: string(list[i].Secret)}
	}
	return c.JSON(fiber.Map{"webhooks": out, "eventTypes": webhooks.EventTypes})
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
	e, err := h.Webhooks.CreateEndpoint(c.UserContext(), p.ProviderID, in)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/webhooks/"+strconv.FormatInt(e.ID, 10))
	markSecretAnswer(c)
	return c.Status(fiber.StatusCreated).JSON(WebhookEndpoint{Endpoint: e, Secret: string(e.Secret)})
}

func (h *Handler) getWebhook(c *fiber.Ctx) error {
	providerID, id, err := endpointRef(c)
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
	providerID, id, err := endpointRef(c)
	if err != nil {
		return err
	}
	if err := h.Webhooks.DeleteEndpoint(c.UserContext(), providerID, id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *Handler) testWebhook(c *fiber.Ctx) error {
	providerID, id, err := endpointRef(c)
	if err != nil {
		return err
	}
	evID, err := h.Webhooks.SendTest(c.UserContext(), providerID, id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"eventId": evID, "type": webhooks.TypeTest})
}

// webhookDeliveries is GET /webhooks/{id}/deliveries?status=&cursor=: the
// deliveries to one endpoint with every attempt, newest first.
func (h *Handler) webhookDeliveries(c *fiber.Ctx) error {
	providerID, id, err := endpointRef(c)
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
	if cur := c.Query("cursor"); cur != "" {
		n, err := strconv.ParseInt(cur, 10, 64)
		if err != nil || n <= 0 {
			return errs.New(errs.BadRequest, "cursor_invalid", "the cursor is not one this API returned")
		}
		f.Before = n
	}
	list, next, err := h.Webhooks.FindDeliveries(c.UserContext(), providerID, f)
	if err != nil {
		return err
	}
	if list == nil {
		list = []webhooks.Delivery{}
	}
	out := fiber.Map{"deliveries": list, "nextCursor": nil}
	if next != 0 {
		out["nextCursor"] = strconv.FormatInt(next, 10)
	}
	return c.JSON(out)
}

func (h *Handler) redeliver(c *fiber.Ctx) error {
	providerID, id, err := endpointRef(c)
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
// id that is not a number is an unknown endpoint.
func endpointRef(c *fiber.Ctx) (providerID, id int64, err error) {
	p, err := caller(c)
	if err != nil {
		return 0, 0, err
	}
	if id, err = pathInt(c, "id"); err != nil {
		return 0, 0, webhooks.ErrEndpointNotFound
	}
	return p.ProviderID, id, nil
}
