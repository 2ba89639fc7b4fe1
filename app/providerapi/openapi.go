package providerapi

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPI is the OpenAPI 3.1 document of every /api/v1 endpoint and of
// /oauth/token. It is maintained by hand next to the handlers; a test
// fails when a registered /api/v1 route is missing from it and validates
// real responses against it.
//
//go:embed openapi.json
var OpenAPI []byte

func (h *Handler) openapi(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(OpenAPI)
}
