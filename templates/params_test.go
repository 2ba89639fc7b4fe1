package templates

import (
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// A record id in the path is a positive whole number; anything else is
// "no such record" (404), never a 400 or a lookup of id 0.
func TestPathID(t *testing.T) {
	app := fiber.New()
	app.Get("/x/:id", func(c *fiber.Ctx) error {
		id, err := PathID(c)
		if err != nil {
			if e := errs.As(err); e.Kind != errs.NotFound || e.Code != "not_found" {
				t.Errorf("%s: %v, want not_found", c.Params("id"), err)
			}
			return c.SendString("404")
		}
		return c.SendString(strconv.FormatInt(id, 10))
	})
	for path, want := range map[string]string{"/x/42": "42", "/x/1": "1", "/x/0": "404", "/x/-3": "404",
		"/x/abc": "404", "/x/4.5": "404", "/x/99999999999999999999": "404"} {
		res, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 64)
		n, _ := res.Body.Read(body)
		if got := string(body[:n]); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
