// Package fault gives errors a kind that the API turns into an HTTP status
// and a stable error code, so that packages below the server can say "this is
// the caller's mistake" without knowing about HTTP.
package fault

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error for the API.
type Kind int

// The kinds of error, each with its HTTP status.
const (
	Internal     Kind = iota // 500: keyhole's fault
	Invalid                  // 400: the request is malformed or fails validation
	Unauthorized             // 401: no valid credentials
	Forbidden                // 403: credentials lack a scope
	NotFound                 // 404
	Conflict                 // 409: already exists, or changed concurrently
	TooLarge                 // 413
	Unavailable              // 503: a dependency (key service, Vault) is down
	BadGateway               // 502: an upstream answered badly
	Timeout                  // 504: an upstream did not answer in time
	TooMany                  // 429: too much queued; retry later
)

var statuses = map[Kind]int{
	Internal: http.StatusInternalServerError, Invalid: http.StatusBadRequest,
	Unauthorized: http.StatusUnauthorized, Forbidden: http.StatusForbidden,
	NotFound: http.StatusNotFound, Conflict: http.StatusConflict,
	TooLarge: http.StatusRequestEntityTooLarge, Unavailable: http.StatusServiceUnavailable,
	BadGateway: http.StatusBadGateway, Timeout: http.StatusGatewayTimeout,
	TooMany: http.StatusTooManyRequests,
}

var codes = map[Kind]string{
	Internal: "internal", Invalid: "invalid_request", Unauthorized: "unauthorized",
	Forbidden: "forbidden", NotFound: "not_found", Conflict: "conflict",
	TooLarge: "too_large", Unavailable: "unavailable", BadGateway: "bad_gateway",
	Timeout: "timeout", TooMany: "too_many_requests",
}

// Status is the HTTP status of errors of kind k.
func (k Kind) Status() int { return statuses[k] }

// Error is an error with a kind, a stable code and a message for the user.
type Error struct {
	Kind    Kind
	Code    string // more specific than the kind's code, e.g. "invalid_path"
	Message string
	Err     error // the cause, if any; not shown to API callers
	Details any   // structured extra information shown to API callers
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a code and a formatted message.
func New(k Kind, code, format string, args ...any) *Error {
	if code == "" {
		code = codes[k]
	}
	return &Error{Kind: k, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k whose message is msg and whose cause is err.
func Wrap(k Kind, code string, err error, msg string) *Error {
	if code == "" {
		code = codes[k]
	}
	return &Error{Kind: k, Code: code, Message: msg, Err: err}
}

// KindOf returns the kind of err: the kind of the first *Error in its chain,
// or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Code returns the code of err's first *Error, or the code of its kind.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Code != "" {
			return e.Code
		}
		return codes[e.Kind]
	}
	return codes[Internal]
}
