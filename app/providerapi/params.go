package providerapi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// The provider API refuses a query parameter its OpenAPI document does not
// list for the operation (400 unknown_parameter): a misspelt filter must
// not silently return everything. The allowed names are read from the
// document itself, so the document and the server cannot disagree.

type docParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type docOperation struct {
	Parameters []docParam `json:"parameters"`
}

// queryNames maps "METHOD /api/v1/path/:param" (the route as registered)
// to the query parameters the document allows there.
var queryNames = sync.OnceValue(func() map[string][]string {
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]docParam `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		panic("providerapi: openapi.json: " + err.Error())
	}
	resolve := func(p docParam) docParam {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			return doc.Components.Parameters[name]
		}
		return p
	}
	out := map[string][]string{}
	for path, item := range doc.Paths {
		var shared []docParam
		if raw, ok := item["parameters"]; ok {
			_ = json.Unmarshal(raw, &shared)
		}
		route := path
		for {
			i := strings.IndexByte(route, '{')
			if i < 0 {
				break
			}
			j := strings.IndexByte(route[i:], '}')
			route = route[:i] + ":" + route[i+1:i+j] + route[i+j+1:]
		}
		for method, raw := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			var op docOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				panic("providerapi: openapi.json " + method + " " + path + ": " + err.Error())
			}
			names := []string{}
			for _, p := range append(append([]docParam{}, shared...), op.Parameters...) {
				if p = resolve(p); p.In == "query" {
					names = append(names, p.Name)
				}
			}
			out[strings.ToUpper(method)+" "+route] = names
		}
	}
	return out
})

// QueryStep is the route step (web.Access.After) that refuses undocumented
// query parameters on every documented /api/v1 and /oauth route. It reads
// the raw query string and allocates nothing for a well-formed request
// (the telematicData read path passes through it).
func QueryStep(method, pattern string) fiber.Handler {
	if method == fiber.MethodHead {
		method = fiber.MethodGet
	}
	allowed, ok := queryNames()[method+" "+pattern]
	if !ok {
		return nil
	}
	return func(c *fiber.Ctx) error {
		if name, bad := unknownQuery(c.Request().URI().QueryString(), allowed); bad {
			return &errs.Error{Kind: errs.BadRequest, Code: "unknown_parameter",
				Message: "query parameter " + strconv.Quote(name) + " is not part of this operation (see /api/v1/openapi.json)",
				Fields:  []errs.FieldError{{Field: name, Code: "unknown_parameter", Message: "not a parameter of this operation"}}}
		}
		return c.Next()
	}
}

// unknownQuery returns the first parameter name in q that allowed lacks.
func unknownQuery(q []byte, allowed []string) (string, bool) {
	for len(q) > 0 {
		var pair []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, nil
		}
		if len(pair) == 0 {
			continue
		}
		key := pair
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key = pair[:i]
		}
		if known(key, allowed) {
			continue
		}
		// An escaped name (rare) is compared unescaped.
		name, err := url.QueryUnescape(string(key))
		if err != nil || !knownString(name, allowed) {
			return name, true
		}
	}
	return "", false
}

func known(key []byte, allowed []string) bool {
	for _, a := range allowed {
		if string(key) == a {
			return true
		}
	}
	return false
}

func knownString(key string, allowed []string) bool {
	for _, a := range allowed {
		if key == a {
			return true
		}
	}
	return false
}
