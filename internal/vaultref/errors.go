package vaultref

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keyhole/keyhole/internal/fault"
)

// Why a Vault-held value could not be had. An *[Error] wraps one of them.
var (
	// ErrUnavailable: Vault did not answer, answered 5xx or is sealed, or
	// keyhole could not sign its identity token. The API answers 503.
	ErrUnavailable = errors.New("vault unavailable")

	// ErrRefused: Vault refused the login or the request, for instance
	// because the token's audience or claims do not match the role, or
	// the role's policies do not grant the path. The API answers 502.
	ErrRefused = errors.New("vault refused")

	// ErrNotFound: Vault has no secret at the reference, or its latest
	// version is deleted. The API answers 502.
	ErrNotFound = errors.New("vault secret not found")

	// ErrBadSecret: the secret's fields do not fit the resource type. The
	// API answers 502.
	ErrBadSecret = errors.New("vault secret does not fit the resource type")
)

// Error describes a failed exchange with Vault. It never holds a token or
// a secret value.
type Error struct {
	Op     string   // what keyhole was doing: "log in", "read", "write"
	Addr   string   // Vault's address
	Path   string   // the Vault API path, e.g. auth/jwt/login or kv/data/bot/stripe
	Status int      // Vault's HTTP status; 0 when it did not answer
	Vault  []string // Vault's error messages, as it sent them
	Detail string   // what else is known, e.g. the network error
	Err    error    // ErrUnavailable, ErrRefused, ErrNotFound or ErrBadSecret
}

// Error says what failed, where, and what Vault answered.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vault: %s %s at %s: %v", e.Op, e.Path, e.Addr, e.Err)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if len(e.Vault) > 0 {
		b.WriteString(": " + strings.Join(e.Vault, "; "))
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Unwrap returns the sentinel saying why.
func (e *Error) Unwrap() error { return e.Err }

// asFault wraps e for the API: 503 when Vault is unavailable, 502 when it
// answered but the value cannot be had.
func (e *Error) asFault() error {
	kind, code := fault.BadGateway, "vault_refused"
	switch e.Err {
	case ErrUnavailable:
		kind, code = fault.Unavailable, "vault_unavailable"
	case ErrNotFound:
		code = "vault_not_found"
	case ErrBadSecret:
		code = "vault_bad_secret"
	}
	return fault.Wrap(kind, code, e, e.Error())
}
