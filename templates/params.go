package templates

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// PathID reads a page's record id from the route (:id): a positive whole
// number, else 404 "no such record". The staff pages, the partner portal
// and /my read their ids alike.
func PathID(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errs.New(errs.NotFound, "not_found", "no such record")
	}
	return id, nil
}
