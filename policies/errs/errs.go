// Package errs is cardata's one error type. Domain code returns *Error with a
// kind (which fixes the HTTP status in app/web) and a stable machine code that
// clients may rely on. Anything else reaching the edge is an internal error.
package errs

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies an error; app/web maps each kind to one HTTP status.
type Kind string

const (
	Invalid      Kind = "invalid"      // 422: input fails validation (see Fields)
	BadRequest   Kind = "bad_request"  // 400: malformed request
	NotFound     Kind = "not_found"    // 404
	Conflict     Kind = "conflict"     // 409: state does not allow it (e.g. transition)
	Unauthorized Kind = "unauthorized" // 401
	Forbidden    Kind = "forbidden"    // 403
	TooMany      Kind = "too_many"     // 429
	TooLarge     Kind = "too_large"    // 413
	Unavailable  Kind = "unavailable"  // 503
	Internal     Kind = "internal"     // 500: logged, never detailed to clients
)

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Format and Args are what Message was made of (Validation.Add), so a
	// page can say it in its reader's language; the API says Message.
	Format string `json:"-"`
	Args   []any  `json:"-"`
}

// Text is the field's message as tr says it (Message when tr is nil).
func (f FieldError) Text(tr Translator) string {
	return say(tr, f.Message, f.Format, f.Args)
}

// Term is an argument of a message that is itself a word of the product
// (a state, an action, a field's name): a page translates it with the
// message. Any other argument (a VIN, a file name, a number) is printed as
// it is.
type Term string

// Day is a calendar day in a message: it prints as 2026-12-05 (the API's
// English text) and a page writes it in its reader's date format. t is
// already in the zone the day belongs to (Europe/Berlin for business days).
type Day struct{ T time.Time }

func (d Day) String() string { return d.T.Format("2006-01-02") }

// Translator says a message, given as its English printf format and its
// arguments, in a reader's language (templates.ErrorText supplies one).
type Translator func(format string, args []any) string

func say(tr Translator, message, format string, args []any) string {
	if tr == nil {
		return message
	}
	if format == "" || len(args) == 0 {
		// a fixed text: the message is its own id
		return tr(message, nil)
	}
	if format == "%s" && len(args) == 1 {
		// a message passed on from another error: its words are in Message
		if s, ok := args[0].(string); ok && s == message {
			return tr(message, nil)
		}
	}
	return tr(format, args)
}

// Error is the project's error.
type Error struct {
	Kind    Kind
	Code    string // stable, snake_case, e.g. "vat_id_invalid"
	Message string // safe to show to the client
	Fields  []FieldError
	Err     error // wrapped cause, never shown
	// Format and Args are what Message was made of (New); see FieldError.
	Format string
	Args   []any
}

// Text is the error's message as tr says it (Message when tr is nil).
func (e *Error) Text(tr Translator) string { return say(tr, e.Message, e.Format, e.Args) }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Code, e.Message)
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// New builds an error of kind with code and a client-safe message.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...), Format: format, Args: args}
}

// Wrap marks err as internal with context; its text is only logged.
func Wrap(err error, context string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Kind: Internal, Code: "internal", Message: "internal error", Err: fmt.Errorf("%s: %w", context, err)}
}

// As returns err as *Error; anything unknown becomes an internal error.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Code: "internal", Message: "internal error", Err: err}
}

// KindOf returns the kind of err (Internal for foreign errors).
func KindOf(err error) Kind { return As(err).Kind }

// Is reports whether err carries the given machine code.
func Is(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Validation collects field errors; Err returns nil when there are none.
type Validation struct{ Fields []FieldError }

// Add records a field error.
func (v *Validation) Add(field, code, format string, args ...any) {
	v.Fields = append(v.Fields, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...), Format: format, Args: args})
}

// Has reports whether field already has an error.
func (v *Validation) Has(field string) bool {
	for _, f := range v.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// Err returns a 422 error listing all fields, or nil.
func (v *Validation) Err() error {
	if len(v.Fields) == 0 {
		return nil
	}
	return &Error{Kind: Invalid, Code: "validation_failed", Message: "some fields are invalid", Fields: v.Fields}
}

// FieldMap indexes field errors by field for form rendering (in English;
// pages use templates.FieldErrors, which translates).
func FieldMap(err error) map[string]string { return FieldMapIn(err, nil) }

// FieldMapIn is FieldMap with each message said by tr.
func FieldMapIn(err error, tr Translator) map[string]string {
	m := map[string]string{}
	var e *Error
	if errors.As(err, &e) {
		for _, f := range e.Fields {
			if _, ok := m[f.Field]; !ok {
				m[f.Field] = f.Text(tr)
			}
		}
	}
	return m
}
