package web

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

var statusOf = map[errs.Kind]int{
	errs.Invalid:      fiber.StatusUnprocessableEntity,
	errs.BadRequest:   fiber.StatusBadRequest,
	errs.NotFound:     fiber.StatusNotFound,
	errs.Conflict:     fiber.StatusConflict,
	errs.Unauthorized: fiber.StatusUnauthorized,
	errs.Forbidden:    fiber.StatusForbidden,
	errs.TooMany:      fiber.StatusTooManyRequests,
	errs.TooLarge:     fiber.StatusRequestEntityTooLarge,
	errs.Unavailable:  fiber.StatusServiceUnavailable,
	errs.Internal:     fiber.StatusInternalServerError,
}

// Status returns the HTTP status for err.
func Status(err error) int { return statusOf[errs.KindOf(err)] }

// Problem is an RFC 9457 problem document with cardata's extensions.
type Problem struct {
	Type     string            `json:"type"`
	Title    string            `json:"title"`
	Status   int               `json:"status"`
	Detail   string            `json:"detail,omitempty"`
	Instance string            `json:"instance,omitempty"`
	Code     string            `json:"code"`
	Errors   []errs.FieldError `json:"errors,omitempty"`
}

// ProblemTypeBase prefixes problem type URIs; the code completes it.
const ProblemTypeBase = "https://cardata.example/problems/"

// IsAPI reports whether a request expects machine responses.
func IsAPI(c *fiber.Ctx) bool {
	p := c.Path()
	if p == "/healthz" || p == "/readyz" {
		return true
	}
	for _, prefix := range []string{"/api/", "/oauth/", "/ingest/"} {
		if strings.HasPrefix(p, prefix) || p == strings.TrimSuffix(prefix, "/") {
			return true
		}
	}
	accept := c.Get(fiber.HeaderAccept)
	return strings.Contains(accept, "json") && !strings.Contains(accept, "html")
}

// fromFiber turns fiber's own errors (404 route, 405, body limit) into ours.
func fromFiber(fe *fiber.Error) *errs.Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return errs.New(errs.NotFound, "not_found", "no such resource")
	case fiber.StatusMethodNotAllowed:
		return &errs.Error{Kind: "method_not_allowed", Code: "method_not_allowed", Message: "method not allowed on this resource"}
	case fiber.StatusRequestEntityTooLarge:
		return errs.New(errs.TooLarge, "payload_too_large", "request body too large")
	case fiber.StatusBadRequest:
		return errs.New(errs.BadRequest, "bad_request", "malformed request")
	case fiber.StatusUnsupportedMediaType:
		return &errs.Error{Kind: "unsupported_media_type", Code: "unsupported_media_type", Message: "unsupported content type"}
	case fiber.StatusRequestTimeout:
		return &errs.Error{Kind: "timeout", Code: "request_timeout", Message: "request timed out"}
	}
	if fe.Code >= 500 {
		return &errs.Error{Kind: errs.Internal, Code: "internal", Message: "internal error", Err: fe}
	}
	return errs.New(errs.BadRequest, "bad_request", "%s", fe.Message)
}

func extraStatus(k errs.Kind) int {
	switch k {
	case "method_not_allowed":
		return fiber.StatusMethodNotAllowed
	case "unsupported_media_type":
		return fiber.StatusUnsupportedMediaType
	case "timeout":
		return fiber.StatusRequestTimeout
	}
	return 0
}

// ErrorHandler returns fiber's error handler: the only place errors become responses.
func ErrorHandler(log *slog.Logger, view *templates.View) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var e *errs.Error
		var fe *fiber.Error
		switch {
		case errors.As(err, &e):
		case errors.As(err, &fe):
			e = fromFiber(fe)
		default:
			e = errs.As(err)
		}
		if e.Kind == errs.Internal && DatabaseUnavailable(e) {
			e = &errs.Error{Kind: errs.Unavailable, Code: "database_unavailable",
				Message: "the database cannot be reached right now; retry in a moment", Err: e}
			c.Set(fiber.HeaderRetryAfter, "1")
		}
		status, ok := statusOf[e.Kind]
		if !ok {
			status = extraStatus(e.Kind)
		}
		if status == 0 {
			status = fiber.StatusInternalServerError
		}
		rid, _ := c.Locals(templates.LocalRequestID).(string)
		if status >= 500 {
			log.Error("request failed", "request_id", rid, "method", c.Method(), "path", c.Path(), "error", err.Error())
		}
		if status == fiber.StatusMethodNotAllowed {
			if target := formAnswerTarget(c, view); target != "" {
				return redirectFormAnswer(c, target)
			}
		}
		// Staff and portal pages send an anonymous visitor to sign in.
		if status == fiber.StatusUnauthorized && !IsAPI(c) && (c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead) {
			if login := loginPathFor(c.Path()); login != "" {
				return c.Redirect(login+"?next="+url.QueryEscape(string(c.Request().URI().RequestURI())), fiber.StatusSeeOther)
			}
		}
		if status == fiber.StatusTooManyRequests && c.GetRespHeader(fiber.HeaderRetryAfter) == "" {
			c.Set(fiber.HeaderRetryAfter, "60")
		}
		if IsAPI(c) || view == nil {
			p := Problem{Type: ProblemTypeBase + e.Code, Title: http.StatusText(status), Status: status,
				Detail: e.Message, Code: e.Code, Errors: e.Fields, Instance: rid}
			if strings.HasPrefix(c.Path(), "/api/v1/") && len(e.Fields) > 0 {
				// The provider API names a field by its JSON member or
				// query parameter (camelCase); services use form names.
				p.Errors = make([]errs.FieldError, len(e.Fields))
				for i, f := range e.Fields {
					f.Field = CamelField(f.Field)
					p.Errors[i] = f
				}
			}
			c.Set(fiber.HeaderContentType, "application/problem+json")
			c.Status(status)
			return c.JSON(p, "application/problem+json")
		}
		back := "/"
		if strings.HasPrefix(c.Path(), "/admin") {
			back = "/admin"
		}
		// A page says the message in its reader's language (the problem+json
		// above stays English); Title is translated by the template.
		lang := templates.LangOf(c)
		data := struct {
			Status        int
			Title, Detail string
			Back          string
		}{status, http.StatusText(status), e.Text(templates.Translator(lang)), back}
		if e.Code == "forbidden" {
			data.Detail = i18n.T(lang, "Your roles do not include access to this page. Ask an administrator if you need it.")
		}
		if rerr := view.Render(c, status, "errors/error", &templates.Page{Title: data.Title, Data: data}); rerr != nil {
			log.Error("rendering error page", "request_id", rid, "error", rerr.Error())
			return c.Status(status).SendString(fmt.Sprintf("%d %s", status, data.Title))
		}
		return nil
	}
}

// DatabaseUnavailable reports an error that says the database could not be
// reached or dropped the connection: it restarts, fails over, or refuses
// connections for a moment. Nothing is wrong with the request, and the
// same request is likely to succeed a moment later, so it is answered 503
// with Retry-After (a gateway or provider retries), not 500.
func DatabaseUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exception; 57P01-03: the server shuts down or starts
		// up; 53300: too many connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	// The connection broke mid-statement.
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.ErrUnexpectedEOF)
}

// loginPathFor names the sign-in page of the surface a path belongs to.
func loginPathFor(path string) string {
	switch {
	case strings.HasPrefix(path, "/admin"):
		return "/admin/login"
	case strings.HasPrefix(path, "/portal"):
		return "/portal/login"
	case strings.HasPrefix(path, "/my"):
		return "/my/login"
	}
	return ""
}

// htmlSurfaces are the browser surfaces whose form addresses are sent to a
// page when opened with GET (formAnswerTarget), each with its home page.
// The machine surfaces (/api/, /oauth/, /ingest/) are not among them: they
// keep answering 405 with a problem document.
var htmlSurfaces = []struct{ prefix, home string }{
	{"/admin", "/admin"},
	{"/portal", "/portal"},
	{"/my", "/my"},
	{"/register", "/register"},
}

// formAnswerTarget names where a GET or HEAD that the router answered 405
// goes instead, or "" to keep the 405. A confirmation page, or a form shown
// again with its errors, is rendered at the address its form posts to;
// reloading it, going back to it or opening it from the history asks that
// address with GET, which only the form's POST route serves. A person is
// better served by the page the form belongs to: the address with trailing
// segments removed until a GET route serves it (and, for a signed-in
// person, the policy lets them read it), else the surface's home.
//
// It answers only for an HTML request on a browser surface whose path a
// POST route serves. The target comes from the path and the routes alone
// (no lookup of the resource), so it tells no more than the 405 did: that
// a form posts there. And it is a redirect, not a page: the target is
// authorised on its own request (an anonymous visitor is sent to sign in,
// a path nobody may read is refused, a missing resource is 404).
func formAnswerTarget(c *fiber.Ctx, view *templates.View) string {
	if (c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead) || IsAPI(c) {
		return ""
	}
	p := c.Path()
	home := ""
	for _, s := range htmlSurfaces {
		if p == s.prefix || strings.HasPrefix(p, s.prefix+"/") {
			home = s.home
			break
		}
	}
	if home == "" {
		return ""
	}
	routes := c.App().GetRoutes(true)
	cfg := c.App().Config()
	served := func(method, path string) bool {
		for _, r := range routes {
			if r.Method == method && fiber.RoutePatternMatch(path, r.Path, cfg) {
				return true
			}
		}
		return false
	}
	if !served(fiber.MethodPost, p) {
		return ""
	}
	who := policies.PrincipalFrom(c.UserContext())
	for up := parentPath(p); len(up) > len(home); up = parentPath(up) {
		// An anonymous visitor goes to the page itself: signing in brings
		// them back to it.
		if served(fiber.MethodGet, up) && (who == nil || view == nil || view.Can(who, fiber.MethodGet, up)) {
			return up
		}
	}
	return home
}

// parentPath drops the last segment of p ("/a/b" -> "/a"; "/a" -> "").
func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return ""
}

// FormAnswerFlash is the note shown on the page a GET of a form's address
// was sent to (a message id of the catalogs).
const FormAnswerFlash = "That page was the answer to a form; nothing was done."

// redirectFormAnswer sends the browser on to target (303, so the next
// request is a GET whatever came before) and, for a signed-in person, says
// why they see another page than the one they asked for. An anonymous
// visitor is sent on to sign in from there, and the note would only be
// noise on the sign-in page.
func redirectFormAnswer(c *fiber.Ctx, target string) error {
	c.Response().Header.Del(fiber.HeaderAllow)
	if policies.PrincipalFrom(c.UserContext()) != nil {
		templates.SetFlash(c, "info", FormAnswerFlash)
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}
