package providerapi

import (
	"github.com/gofiber/fiber/v2"
)

// docsPage is GET /api/docs: the reference of openapi.json, drawn by the
// vendored Redoc bundle (templates/static/vendor/redoc), so it works with
// no network access beyond this server. Without JavaScript it still links
// the document and the changelog. Redoc draws into the page's <main> (its
// menu and reference are then inside a landmark) and adds the <h1>.
const docsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CarData provider API reference</title>
</head>
<body>
<noscript>
<h1>CarData provider API reference</h1>
<p>The reference needs JavaScript. The contract itself is the OpenAPI 3.1 document
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>; changes are listed in the
<a href="/portal/developer#changelog">API changelog</a>.</p>
</noscript>
<main>
<redoc spec-url="/api/v1/openapi.json" hide-hostname="true" expand-responses="200,201,202" path-in-middle-panel="true"></redoc>
</main>
<script src="/static/vendor/redoc/redoc.standalone.js"></script>
</body>
</html>
`

// DocsContentSecurityPolicy is the app's policy (web.ContentSecurityPolicy)
// loosened for this one page only: Redoc injects its styles at run time
// (styled-components: inline <style>) and runs its search index in a blob:
// worker. Scripts still come only from this server.
const DocsContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

func (h *Handler) docs(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, DocsContentSecurityPolicy)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.SendString(docsPage)
}
