package tool

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

const specTool = `kind: tool
name: search_invoices
description: Search Stripe invoices by customer email
input:                      # JSON Schema, checked before any request is built
  type: object
  properties:
    email: {type: string, format: email}
  required: [email]
http:
  method: GET
  url: https://api.stripe.com/v1/invoices/search
  query:
    query: "customer_email:'{{ .email | squote }}'"
  auth: {resource: f/bot/stripe, bearer: apiKey}
  timeout: 10s
output: '.data[:5]'         # gojq expression over the JSON response
`

func TestDecodeToolSpec(t *testing.T) {
	t.Parallel()
	got, err := DecodeTool([]byte(specTool))
	if err != nil {
		t.Fatal(err)
	}
	want := &Definition{
		Kind:        "tool",
		Name:        "search_invoices",
		Description: "Search Stripe invoices by customer email",
		Input: map[string]any{
			"type":       "object",
			"properties": map[string]any{"email": map[string]any{"type": "string", "format": "email"}},
			"required":   []any{"email"},
		},
		HTTP: &HTTP{
			Method:  "GET",
			URL:     "https://api.stripe.com/v1/invoices/search",
			Query:   map[string]string{"query": "customer_email:'{{ .email | squote }}'"},
			Auth:    &Auth{Resource: "f/bot/stripe", Bearer: "apiKey"},
			Timeout: Duration(10 * time.Second),
		},
		Output: ".data[:5]",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeTool (-want +got):\n%s", diff)
	}
}

func TestDefinitionsRoundTrip(t *testing.T) {
	t.Parallel()
	docs := []string{
		specTool,
		`kind: tool
name: create_note
http:
  method: POST
  url: https://api.example.com/v1/notes/{{ .id }}
  headers: {X-Trace: "{{ .trace }}"}
  body: {text: "{{ .text }}", count: "{{ .n }}", tags: [a, 1, true, null]}
  auth: {resource: f/x, oauth2: {}}
  max_response_bytes: 4096
`,
		`kind: tool
name: basic_form
http:
  method: POST
  url: https://api.example.com/v1/x
  form: {"metadata[k]": "{{ .v }}"}
  auth: {resource: f/x, basic: {username: user, password: pass}}
`,
		"kind: toolset\nname: billing\ntools: [search_invoices, get_customer]\n",
		`kind: route
name: anthropic
upstream: https://api.anthropic.com
auth: {resource: f/llm, header: {name: x-api-key, value: apiKey}}
allow: [{method: POST, path: /v1/messages}]
`,
	}
	for _, doc := range docs {
		first, err := Decode([]byte(doc))
		if err != nil {
			t.Fatalf("Decode(%q): %v", doc, err)
		}
		for _, format := range []string{"json", "yaml"} {
			var out []byte
			if format == "json" {
				out, err = json.Marshal(first)
			} else {
				out, err = yaml.Marshal(first)
			}
			if err != nil {
				t.Fatalf("marshal %s: %v", format, err)
			}
			again, err := Decode(out)
			if err != nil {
				t.Fatalf("Decode(%s %s): %v", format, out, err)
			}
			if diff := cmp.Diff(normalize(t, first), normalize(t, again)); diff != "" {
				t.Errorf("%s round trip of %q (-first +again):\n%s", format, doc, diff)
			}
		}
	}
}

// normalize reduces a definition to generic JSON values, so numbers decoded
// from YAML (int) and JSON (float64) compare equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodeRefusesBadDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, want string
	}{
		{"unknown top field", "kind: tool\nname: x\noutptu: .\n",
			`line 3: unknown field "outptu" in the tool`},
		{"unknown http field", "kind: tool\nname: x\nhttp:\n  url: https://a.example\n  heders: {}\n",
			`line 5: unknown field "heders" in http`},
		{"unknown auth field", "kind: tool\nname: x\nhttp:\n  auth: {resource: r, baerer: k}\n",
			`unknown field "baerer" in auth`},
		{"unknown oauth2 field", "kind: tool\nname: x\nhttp:\n  auth: {resource: r, oauth2: {scope: x}}\n",
			`unknown field "scope" in auth.oauth2`},
		{"unknown route field", "kind: route\nname: r\nupstreams: https://x\n",
			`unknown field "upstreams" in the route`},
		{"unknown allow field", "kind: route\nname: r\nallow: [{verb: GET}]\n",
			`unknown field "verb" in an allow rule`},
		{"unknown toolset field", "kind: toolset\nname: s\ntool: [a]\n",
			`unknown field "tool" in the toolset`},
		{"json unknown field", `{"kind":"tool","name":"x","extra":1}`, `unknown field "extra"`},
		{"bad duration", "kind: tool\nname: x\nhttp: {timeout: soon}\n", `invalid duration "soon"`},
		{"wrong kind", "kind: toolset\nname: x\n", `kind is "toolset", want "tool"`},
		{"two documents", "kind: tool\nname: x\n---\nkind: tool\nname: y\n", "more than one YAML document"},
		{"empty", "", "empty document"},
		{"not yaml", "kind: [tool\n", "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			switch {
			case strings.Contains(tt.doc, "kind: route"):
				_, err = DecodeRoute([]byte(tt.doc))
			case strings.Contains(tt.doc, "kind: toolset\nname: s"):
				_, err = DecodeToolset([]byte(tt.doc))
			default:
				_, err = DecodeTool([]byte(tt.doc))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeByKind(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		"kind: toolset\nname: a\ntools: [x]\n": "*tool.Toolset",
		`{"kind": "route", "name": "r"}`:       "*tool.Route",
		"kind: tool\nname: t\n":                "*tool.Definition",
	} {
		v, err := Decode([]byte(doc))
		if err != nil {
			t.Fatalf("Decode(%q): %v", doc, err)
		}
		if got := typeName(v); got != want {
			t.Errorf("Decode(%q) is %s, want %s", doc, got, want)
		}
	}
	for doc, want := range map[string]string{
		"name: x\n":              "document has no kind",
		"kind: agent\nname: x\n": `unknown kind "agent"`,
	} {
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) error = %v, want %q", doc, err, want)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *Definition:
		return "*tool.Definition"
	case *Toolset:
		return "*tool.Toolset"
	case *Route:
		return "*tool.Route"
	}
	return "?"
}
