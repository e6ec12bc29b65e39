package tool

import (
	"encoding/json"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Kinds of definition this package decodes.
const (
	KindTool    = "tool"
	KindToolset = "toolset"
	KindRoute   = "route"
)

// Defaults and limits applied to HTTP tools.
const (
	DefaultTimeout          = 30 * time.Second
	MaxTimeout              = 5 * time.Minute
	DefaultMaxResponseBytes = 1 << 20
	MaxMaxResponseBytes     = 64 << 20
)

// Definition is a tool as users write it (kind: tool). Decode one with
// [DecodeTool] and turn it into a callable [Tool] with [Compile].
type Definition struct {
	Kind        string `json:"kind" yaml:"kind"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`

	// Input is the JSON Schema the arguments must satisfy. Properties marked
	// "x-sensitive": true are masked wherever arguments are recorded.
	Input map[string]any `json:"input,omitempty" yaml:"input,omitempty"`

	// HTTP describes the request the tool makes.
	HTTP *HTTP `json:"http,omitempty" yaml:"http,omitempty"`

	// Output is a jq expression that shapes the JSON response.
	Output string `json:"output,omitempty" yaml:"output,omitempty"`
}

// HTTP is the request an HTTP tool makes. Every string below except Method is
// a Go template over the validated arguments, escaped for where it lands.
type HTTP struct {
	Method string `json:"method,omitempty" yaml:"method,omitempty"`

	// URL is absolute. Its scheme and host are fixed text; actions may appear
	// only in the path, where each value is path-escaped.
	URL string `json:"url" yaml:"url"`

	// Query holds query parameters; one that renders empty is left out.
	Query map[string]string `json:"query,omitempty" yaml:"query,omitempty"`

	// Headers holds request headers; a value holding CR or LF is refused.
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`

	// Body is sent as JSON: an object whose string leaves are templates. A
	// leaf that is one action alone keeps the JSON type of its value.
	Body any `json:"body,omitempty" yaml:"body,omitempty"`

	// Form is sent as application/x-www-form-urlencoded; a field that
	// renders empty is left out.
	Form map[string]string `json:"form,omitempty" yaml:"form,omitempty"`

	Auth *Auth `json:"auth,omitempty" yaml:"auth,omitempty"`

	// Timeout bounds the whole call; DefaultTimeout when zero.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`

	// MaxResponseBytes caps the response body; DefaultMaxResponseBytes when
	// zero.
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty" yaml:"max_response_bytes,omitempty"`
}

// Auth says which resource's credential a request carries, and how. Exactly
// one of Bearer, Basic, Header, Query and OAuth2 is set; each names fields of
// the resource's value.
type Auth struct {
	Resource string      `json:"resource" yaml:"resource"`
	Bearer   string      `json:"bearer,omitempty" yaml:"bearer,omitempty"`
	Basic    *BasicAuth  `json:"basic,omitempty" yaml:"basic,omitempty"`
	Header   *NamedField `json:"header,omitempty" yaml:"header,omitempty"`
	Query    *NamedField `json:"query,omitempty" yaml:"query,omitempty"`
	OAuth2   *OAuth2     `json:"oauth2,omitempty" yaml:"oauth2,omitempty"`
}

// BasicAuth names the resource fields of an HTTP basic credential. An empty
// Password sends the username alone, as Stripe accepts its key.
type BasicAuth struct {
	Username string `json:"username" yaml:"username"`
	Password string `json:"password,omitempty" yaml:"password,omitempty"`
}

// NamedField sends the resource field Value as the header or query parameter
// called Name.
type NamedField struct {
	Name  string `json:"name" yaml:"name"`
	Value string `json:"value" yaml:"value"`
}

// OAuth2 fetches a bearer token with the client credentials grant from an
// oauth2_client_credentials resource (fields tokenURL, clientId,
// clientSecret and optional scopes). It has no settings of its own.
type OAuth2 struct{}

// Toolset is a named group of tools (kind: toolset).
type Toolset struct {
	Kind        string   `json:"kind" yaml:"kind"`
	Name        string   `json:"name" yaml:"name"`
	Description string   `json:"description,omitempty" yaml:"description,omitempty"`
	Tools       []string `json:"tools" yaml:"tools"`
}

// Route is a credential-injecting reverse-proxy mount (kind: route).
type Route struct {
	Kind        string `json:"kind" yaml:"kind"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`

	// Upstream is the base URL requests are forwarded to; its path, if any,
	// prefixes every request path.
	Upstream string `json:"upstream" yaml:"upstream"`

	Auth *Auth `json:"auth" yaml:"auth"`

	// Allow limits the requests let through; empty lets every request through.
	Allow []AllowRule `json:"allow,omitempty" yaml:"allow,omitempty"`
}

// AllowRule lets through requests with Method (any when empty or "*") whose
// path matches Path: "*" matches within one segment as in [path.Match], and
// a pattern ending in "/**" matches everything below its prefix.
type AllowRule struct {
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	Path   string `json:"path" yaml:"path"`
}

// Duration is a time.Duration written as text such as "10s" in YAML and JSON.
type Duration time.Duration

// String returns the duration as time.Duration writes it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration such as "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\"")
	}
	return d.parse(s)
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration such as "10s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be text such as \"10s\"", n.Line)
	}
	if err := d.parse(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number and unit such as \"10s\"", s)
	}
	*d = Duration(v)
	return nil
}
