package apptest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	vErrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"cardata/app/providerapi"
)

// Every exchange the test suite has with the provider API (/api/v1 and
// /oauth/token), through Client or ValidatingTransport, is checked against
// the published OpenAPI document (app/providerapi/openapi.json), requests as
// well as responses, in strict mode: an undocumented query parameter, header
// or body member fails the test. A request the document does not allow may
// only be refused (4xx); a response must always match the document.

var apiDoc = sync.OnceValues(func() (validator.Validator, error) {
	doc, err := libopenapi.NewDocument(providerapi.OpenAPI)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc, config.WithStrictMode(),
		// the test client keeps the cookies of pages it visited before; strict
		// mode would also flag the keys of a map (additionalProperties schema),
		// which the schema validation checks anyway
		config.WithStrictIgnorePaths("$.cookies.*", "$.body.telematicData**",
			// the OpenAPI document itself: its schema is the OpenAPI specification's
			"$.body.paths**", "$.body.components**", "$.body.info**", "$.body.tags**", "$.body.security**", "$.body.servers**"),
		config.WithStrictIgnoredHeadersExtra(
			// set by the app on every response (security headers, tracing)
			"x-request-id", "content-security-policy", "x-frame-options", "x-content-type-options",
			"referrer-policy", "permissions-policy", "x-xss-protection", "cross-origin-opener-policy",
			"cross-origin-embedder-policy", "cross-origin-resource-policy", "origin-agent-cluster",
			"x-dns-prefetch-control", "x-download-options", "x-permitted-cross-domain-policies",
			"strict-transport-security", "set-cookie", "location", "retry-after",
			"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "www-authenticate",
			"idempotency-replayed", "content-disposition", "content-encoding", "server", "allow",
			// sent by test clients that are not the API's business
			"x-forwarded-for", "accept-language"))
	if len(errs) > 0 {
		return nil, fmt.Errorf("%v", errs)
	}
	return v, nil
})

var apiDocMu sync.Mutex // the validator is used from parallel tests

// IsAPIPath reports whether path is checked against the document.
func IsAPIPath(path string) bool {
	return strings.HasPrefix(path, "/api/v1/") || path == "/oauth/token"
}

// CheckAPIExchange validates one request (its body given separately, since
// it was sent) and its response against the OpenAPI document and reports
// every mismatch as a test error.
func CheckAPIExchange(t testing.TB, req *http.Request, reqBody []byte, res *http.Response, resBody []byte) {
	t.Helper()
	if !IsAPIPath(req.URL.Path) {
		return
	}
	v, err := apiDoc()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	apiDocMu.Lock()
	defer apiDocMu.Unlock()
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	r.ContentLength = int64(len(reqBody))
	reqOK, reqErrs := v.ValidateHttpRequestSync(r)
	if !reqOK && routeUnknown(reqErrs) {
		// A path or method the document does not name: the app must not
		// serve it (the security matrix walks such spellings on purpose).
		if res.StatusCode < 300 {
			t.Errorf("%s %s answered %d but is not in the OpenAPI document", req.Method, req.URL.Path, res.StatusCode)
		}
		return
	}
	if !reqOK && res.StatusCode < 400 {
		t.Errorf("%s %s was accepted (%d) although the OpenAPI document does not allow it:%s", req.Method, req.URL.RequestURI(),
			res.StatusCode, describe(reqErrs))
	}
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	out := *res
	out.Body = io.NopCloser(bytes.NewReader(resBody))
	if ok, errs := v.ValidateHttpResponse(r, &out); !ok {
		t.Errorf("%s %s -> %d does not match the OpenAPI document:%s\nbody: %.600s", req.Method, req.URL.RequestURI(), res.StatusCode,
			describe(errs), resBody)
	}
}

func routeUnknown(errs []*vErrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationSubType == helpers.ValidationMissing || e.ValidationSubType == helpers.ValidationMissingOperation {
			return true
		}
	}
	return false
}

func describe(errs []*vErrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s: %s", e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s: %s", s.FieldPath, s.Reason)
		}
	}
	return b.String()
}

// ValidatingTransport wraps base (nil: http.DefaultTransport) so that every
// provider API exchange through it is checked with CheckAPIExchange.
func ValidatingTransport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return validating{t: t, base: base}
}

type validating struct {
	t    testing.TB
	base http.RoundTripper
}

func (v validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	res, err := v.base.RoundTrip(req)
	if err != nil || !IsAPIPath(req.URL.Path) {
		return res, err
	}
	resBody, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if rerr == nil {
		CheckAPIExchange(v.t, req, reqBody, res, resBody)
	}
	return res, nil
}
