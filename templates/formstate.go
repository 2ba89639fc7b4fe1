package templates

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"
)

const formStateCookie = "cardata_form"

// maxFormStateBytes keeps the cookie under the browsers' 4 KB limit; a
// larger input is dropped (its errors are kept).
const maxFormStateBytes = 3600

type formState struct {
	Page   string            `json:"p"`
	Errors map[string]string `json:"e"`
	Form   map[string]string `json:"f,omitempty"`
}

// SetFormState keeps a refused form's field errors and input for the page
// the handler redirects to (post/redirect/get): the browser's address is
// then that page, which answers GET, so a reload never re-posts or meets
// a 405. page is the path TakeFormState is called for; the state lives
// for one minute and one page view.
func SetFormState(c *fiber.Ctx, page string, errors, form map[string]string) {
	st := formState{Page: page, Errors: errors, Form: form}
	raw, err := json.Marshal(st)
	if err == nil && base64.RawURLEncoding.EncodedLen(len(raw)) > maxFormStateBytes {
		st.Form = nil
		raw, err = json.Marshal(st)
	}
	if err != nil {
		return
	}
	c.Cookie(&fiber.Cookie{Name: formStateCookie, Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/",
		HTTPOnly: true, Secure: secureCookies(c), SameSite: "Lax", MaxAge: 60})
}

// TakeFormState returns the errors and input SetFormState kept for page,
// and forgets them; ok is false when there are none.
func TakeFormState(c *fiber.Ctx, page string) (errors, form map[string]string, ok bool) {
	raw := c.Cookies(formStateCookie)
	if raw == "" {
		return nil, nil, false
	}
	c.Cookie(&fiber.Cookie{Name: formStateCookie, Value: "", Path: "/", HTTPOnly: true, Secure: secureCookies(c),
		SameSite: "Lax", MaxAge: -1, Expires: time.Unix(1, 0)})
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, nil, false
	}
	var st formState
	if json.Unmarshal(b, &st) != nil || st.Page != page || len(st.Errors) == 0 {
		return nil, nil, false
	}
	return st.Errors, st.Form, true
}
