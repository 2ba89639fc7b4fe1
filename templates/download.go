package templates

import (
	"fmt"

	"github.com/gofiber/fiber/v2"
)

// Attachment marks the answer as a download of a file named name.
func Attachment(c *fiber.Ctx, name, contentType string) {
	c.Set(fiber.HeaderContentType, contentType)
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, name))
}

// SendFile answers with a download that no cache keeps (personal data:
// customers' data and transaction reports).
func SendFile(c *fiber.Ctx, name, contentType string, data []byte) error {
	Attachment(c, name, contentType)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(data)
}
