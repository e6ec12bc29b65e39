package tool

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// Credential is a decrypted resource as the broker hands it to a tool call.
type Credential struct {
	Path         string         // resource path, e.g. f/bot/stripe
	Type         string         // resource type, e.g. stripe
	Fields       map[string]any // the decrypted JSON value
	SecretFields []string       // names of secret fields of the type
	AllowedHosts []string       // hosts the credential may be sent to
}

// CredentialSource hands out decrypted credentials. The broker implements it
// for one job's grant; an error means the call must not go ahead.
type CredentialSource interface {
	Credential(ctx context.Context, path string) (*Credential, error)
}

// CredentialFunc adapts a function to [CredentialSource].
type CredentialFunc func(ctx context.Context, path string) (*Credential, error)

// Credential calls f.
func (f CredentialFunc) Credential(ctx context.Context, path string) (*Credential, error) {
	return f(ctx, path)
}

// Field returns the text of the named field. Numbers and booleans are
// returned as JSON writes them; other kinds and missing fields are errors,
// which name the resource and the field but never hold a value.
func (c *Credential) Field(name string) (string, error) {
	v, ok := c.Fields[name]
	if !ok || v == nil {
		return "", fmt.Errorf("resource %s has no field %q", c.Path, name)
	}
	switch v := v.(type) {
	case string:
		if v == "" {
			return "", fmt.Errorf("resource %s: field %q is empty", c.Path, name)
		}
		return v, nil
	case json.Number, float64, int, int64, bool:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("resource %s: field %q is not text", c.Path, name)
}

// Secrets returns every secret value the credential holds: the text of each
// secret field, and every text leaf inside a secret field that is an object
// or array. Redaction masks these.
func (c *Credential) Secrets() []string {
	var out []string
	for _, name := range c.SecretFields {
		out = appendLeaves(out, c.Fields[name])
	}
	sort.Strings(out)
	return out
}

func appendLeaves(out []string, v any) []string {
	switch v := v.(type) {
	case string:
		return append(out, v)
	case json.Number, float64, int, int64:
		return append(out, fmt.Sprint(v))
	case map[string]any:
		for _, e := range v {
			out = appendLeaves(out, e)
		}
	case []any:
		for _, e := range v {
			out = appendLeaves(out, e)
		}
	}
	return out
}
