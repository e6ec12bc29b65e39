package resource

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/schema"
)

// Type describes a kind of resource: the JSON Schema of its value, which of
// its fields are secret and where its credential may be sent.
type Type struct {
	Kind        string          `json:"kind,omitempty" yaml:"kind,omitempty"` // resource_type
	Name        string          `json:"name" yaml:"name"`
	Description string          `json:"description,omitempty" yaml:"description,omitempty"`
	Schema      json.RawMessage `json:"schema" yaml:"schema"`
	// SecretFields are the top-level fields whose values are secret: masked
	// when shown, redacted from responses, never sent anywhere but to the
	// allowed hosts.
	SecretFields []string `json:"secret_fields" yaml:"secret_fields"`
	// AllowedHosts are the hosts a resource of this type may send its
	// credential to, unless the resource names its own.
	AllowedHosts []string `json:"allowed_hosts,omitempty" yaml:"allowed_hosts,omitempty"`
	// URLFields are fields holding a URL whose host is allowed too, such as
	// an LLM provider's baseURL or an OAuth token endpoint.
	URLFields []string `json:"url_fields,omitempty" yaml:"url_fields,omitempty"`
	Builtin   bool     `json:"builtin,omitempty" yaml:"builtin,omitempty"`

	compiled *schema.Schema
}

// Compiled returns the type's compiled schema.
func (t *Type) Compiled() *schema.Schema { return t.compiled }

// IsSecret reports whether field is one of the type's secret fields.
func (t *Type) IsSecret(field string) bool { return slices.Contains(t.SecretFields, field) }

var typeName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Compile checks a type definition and compiles its schema. It is how a
// custom type from "keyhole apply" is admitted.
func (t *Type) Compile() error {
	if !typeName.MatchString(t.Name) {
		return fault.New(fault.Invalid, "invalid_type",
			"resource type name %q must be lower case letters, digits and _, starting with a letter", t.Name)
	}
	if len(t.Schema) == 0 {
		return fault.New(fault.Invalid, "invalid_type", "resource type %s needs a schema", t.Name)
	}
	s, err := schema.Compile(t.Schema)
	if err != nil {
		return fault.Wrap(fault.Invalid, "invalid_type", err,
			fmt.Sprintf("resource type %s: %v", t.Name, err))
	}
	props := schemaProperties(t.Schema)
	for _, f := range append(slices.Clone(t.SecretFields), t.URLFields...) {
		if !props[f] {
			return fault.New(fault.Invalid, "invalid_type",
				"resource type %s names field %q, which its schema's properties do not have", t.Name, f)
		}
	}
	if len(t.SecretFields) == 0 {
		return fault.New(fault.Invalid, "invalid_type",
			"resource type %s has no secret_fields: a resource with nothing secret is configuration, not a resource", t.Name)
	}
	for _, h := range t.AllowedHosts {
		if err := CheckHost(h); err != nil {
			return fault.Wrap(fault.Invalid, "invalid_type", err,
				fmt.Sprintf("resource type %s: %v", t.Name, err))
		}
	}
	t.compiled = s
	return nil
}

// schemaProperties returns the names under the schema's top-level
// "properties".
func schemaProperties(raw json.RawMessage) map[string]bool {
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(raw, &doc)
	out := make(map[string]bool, len(doc.Properties))
	for k := range doc.Properties {
		out[k] = true
	}
	return out
}

// CheckHost checks an allowed_hosts entry: a host name or IP address,
// optionally with a port, optionally starting with "*." to allow every
// subdomain.
func CheckHost(h string) error {
	bare := strings.TrimPrefix(h, "*.")
	if h == "" || strings.ContainsAny(bare, "/?#@ *\\") || strings.Contains(h, "://") {
		return fmt.Errorf("allowed host %q must be a host name with an optional port, "+
			"such as api.example.com or 127.0.0.1:8443, without a scheme or path", h)
	}
	u, err := url.Parse("https://" + bare)
	if err != nil || u.Host != bare || u.Hostname() == "" {
		return fmt.Errorf("allowed host %q is not a valid host name", h)
	}
	if strings.ToLower(h) != h {
		return fmt.Errorf("allowed host %q must be lower case", h)
	}
	return nil
}

// builtinTypes are the types keyhole knows without configuration.
var builtinTypes = []*Type{
	apiKeyType("stripe", "Stripe secret or restricted API key", "api.stripe.com", false),
	apiKeyType("anthropic", "Anthropic API key; baseURL points at another Messages API server",
		"api.anthropic.com", true),
	apiKeyType("openai", "OpenAI API key; baseURL points at any OpenAI-compatible server",
		"api.openai.com", true),
	{
		Name: "discord", Description: "Discord bot token",
		Schema:       obj(`"botToken": {"type": "string", "minLength": 1}`, "botToken"),
		SecretFields: []string{"botToken"},
		// Discord names the gateway host to resume on in READY
		// (gateway-us-east1-b.discord.gg and the like).
		AllowedHosts: []string{"discord.com", "gateway.discord.gg", "*.discord.gg"},
	},
	{
		Name: "http_bearer", Description: "A bearer token for any HTTP API",
		Schema:       obj(`"token": {"type": "string", "minLength": 1}`, "token"),
		SecretFields: []string{"token"},
	},
	{
		Name: "http_basic", Description: "HTTP basic authentication",
		Schema: obj(`"username": {"type": "string"},
			"password": {"type": "string", "minLength": 1}`, "username", "password"),
		SecretFields: []string{"password"},
	},
	{
		Name: "http_header", Description: "A header carrying a credential",
		Schema: obj(`"name": {"type": "string", "pattern": "^[A-Za-z0-9-]+$"},
			"value": {"type": "string", "minLength": 1}`, "name", "value"),
		SecretFields: []string{"value"},
	},
	{
		Name: "oauth2_client_credentials", Description: "OAuth 2.0 client credentials grant",
		Schema: obj(`"tokenURL": {"type": "string", "format": "uri"},
			"clientId": {"type": "string", "minLength": 1},
			"clientSecret": {"type": "string", "minLength": 1},
			"scopes": {"type": "array", "items": {"type": "string"}}`,
			"tokenURL", "clientId", "clientSecret"),
		SecretFields: []string{"clientSecret"},
		URLFields:    []string{"tokenURL"},
	},
	{
		Name: "secret", Description: "A single secret value",
		Schema:       obj(`"value": {"type": "string", "minLength": 1}`, "value"),
		SecretFields: []string{"value"},
	},
}

func apiKeyType(name, desc, host string, baseURL bool) *Type {
	props := `"apiKey": {"type": "string", "minLength": 1}`
	t := &Type{Name: name, Description: desc, SecretFields: []string{"apiKey"},
		AllowedHosts: []string{host}}
	if baseURL {
		props += `, "baseURL": {"type": "string", "format": "uri"}`
		t.URLFields = []string{"baseURL"}
	}
	t.Schema = obj(props, "apiKey")
	return t
}

func obj(props string, required ...string) json.RawMessage {
	req, _ := json.Marshal(required)
	return json.RawMessage(`{"type": "object", "additionalProperties": false, "properties": {` +
		props + `}, "required": ` + string(req) + `}`)
}

// compileBuiltins compiles the built-in types' schemas on first use, not
// at package initialisation: every keyhole process, the sandbox's init
// included, would pay for it at start.
var compileBuiltins = sync.OnceFunc(func() {
	for _, t := range builtinTypes {
		t.Builtin = true
		if err := t.Compile(); err != nil {
			panic(err)
		}
	}
})

// Builtin returns the built-in type called name, or nil.
func Builtin(name string) *Type {
	compileBuiltins()
	for _, t := range builtinTypes {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Builtins returns the built-in types.
func Builtins() []*Type {
	compileBuiltins()
	return slices.Clone(builtinTypes)
}
