package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// DecodeJSON reads a provider API request body into v strictly: an empty
// body is 400 body_required, a syntax or type error 400 invalid_json, and a
// member v does not declare 400 unknown_member, so a misspelt or outdated
// member name is an error the client sees instead of a value silently lost.
// The members are the ones the OpenAPI document lists for the request.
func DecodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return errs.New(errs.BadRequest, "body_required", "send a JSON body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return errs.New(errs.BadRequest, "invalid_json", "member %q has the wrong type (want %s)", te.Field, te.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e := errs.New(errs.BadRequest, "unknown_member", "member %q is not part of this request (see /api/v1/openapi.json)", name)
		e.Fields = []errs.FieldError{{Field: name, Code: "unknown_member", Message: "not part of this request"}}
		return e
	}
	return errs.New(errs.BadRequest, "invalid_json", "the body is not the JSON object this endpoint expects")
}

// CamelField turns a snake_case field name into the camelCase member name
// the provider API uses (vat_id -> vatId); other names are unchanged. The
// domain services name fields as their forms do; problems of /api/v1 name
// the JSON member instead (ErrorHandler).
func CamelField(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	var b strings.Builder
	up := false
	for _, r := range s {
		switch {
		case r == '_':
			up = b.Len() > 0
		case up && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			up = false
		default:
			b.WriteRune(r)
			up = false
		}
	}
	return b.String()
}
