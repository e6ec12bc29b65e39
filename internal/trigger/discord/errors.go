package discord

import (
	"errors"
	"fmt"
	"strings"
)

// CloseError is a close frame from the gateway that ends the client for
// good: the token, shard or intents are wrong, and retrying cannot help. Run
// returns it; Advice says what to do.
type CloseError struct {
	Code   int    // Discord close code, 4004 or 4010–4014
	Reason string // the reason Discord sent
	Advice string // what the operator should do
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("discord: gateway closed the connection with %d (%s): %s",
		e.Code, e.Reason, e.Advice)
}

// fatalClose maps the close codes that must not be retried to advice.
var fatalClose = map[int]string{
	4004: "authentication failed: the bot token is invalid or was reset; store a new token",
	4010: "invalid shard: check the shard settings",
	4011: "sharding required: the bot is in too many guilds for one connection",
	4012: "invalid API version: keyhole speaks gateway v10",
	4013: "invalid intents: the intents value is not valid",
	4014: "disallowed intents: enable the Message Content intent for this bot " +
		"in the Discord developer portal",
}

// freshSessionClose lists close codes after which the session cannot be
// resumed: invalid sequence, and session timed out.
var freshSessionClose = map[int]bool{4007: true, 4009: true}

// ErrUnauthorized is wrapped by REST errors for a 401 answer: the bot token
// was refused.
var ErrUnauthorized = errors.New("discord: bot token refused (401 Unauthorized)")

// APIError is a REST answer that is neither success, 401 nor a rate limit
// that was waited out.
type APIError struct {
	Status  int    // HTTP status
	Code    int    // Discord JSON error code, 0 if none
	Message string // Discord's message
	// RetryAfter is set for a 429 that the client did not wait out.
	RetryAfter float64
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("discord: API answered %d", e.Status)
	if e.Code != 0 {
		msg += fmt.Sprintf(" (code %d)", e.Code)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf("; retry after %.1fs", e.RetryAfter)
	}
	return msg
}

// redactor removes a token from text that may have come from outside, such
// as a close reason or an error from a proxy.
type redactor struct{ token string }

func (r redactor) string(s string) string {
	if r.token == "" {
		return s
	}
	return strings.ReplaceAll(s, r.token, redacted)
}

// error returns err with the token removed from its text. Such an error no
// longer unwraps, so the original text cannot be reached through it.
func (r redactor) error(err error) error {
	if err == nil || r.token == "" || !strings.Contains(err.Error(), r.token) {
		return err
	}
	return errors.New(r.string(err.Error()))
}
