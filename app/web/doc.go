// Package web is the HTTP plumbing shared by every surface: the one place
// that maps errors to responses (problem+json for APIs, an error page for
// HTML), request ids, structured logs, metrics, panic recovery, sessions,
// CSRF and route authorization.
package web
