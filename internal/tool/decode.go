package tool

import (
	"errors"
	"fmt"

	"github.com/keyhole/keyhole/internal/yamldoc"
)

// Decode decodes one YAML or JSON document of any kind this package knows
// and returns a *Definition, *Toolset or *Route. Unknown fields are errors.
func Decode(doc []byte) (any, error) {
	kind, err := yamldoc.Kind(doc)
	if err != nil {
		return nil, fmt.Errorf("tool: %w", err)
	}
	switch kind {
	case KindTool:
		return DecodeTool(doc)
	case KindToolset:
		return DecodeToolset(doc)
	case KindRoute:
		return DecodeRoute(doc)
	case "":
		return nil, errors.New("tool: document has no kind (want tool, toolset or route)")
	}
	return nil, fmt.Errorf("tool: unknown kind %q (want tool, toolset or route)", kind)
}

// DecodeTool decodes a tool definition from one YAML or JSON document. A
// field the definition does not have is an error naming it.
func DecodeTool(doc []byte) (*Definition, error) {
	var d Definition
	if err := decodeStrict(doc, KindTool, &d, &d.Kind); err != nil {
		return nil, err
	}
	return &d, nil
}

// DecodeToolset decodes a toolset from one YAML or JSON document.
func DecodeToolset(doc []byte) (*Toolset, error) {
	var s Toolset
	if err := decodeStrict(doc, KindToolset, &s, &s.Kind); err != nil {
		return nil, err
	}
	return &s, nil
}

// DecodeRoute decodes a route from one YAML or JSON document.
func DecodeRoute(doc []byte) (*Route, error) {
	var r Route
	if err := decodeStrict(doc, KindRoute, &r, &r.Kind); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeStrict decodes doc into v, refusing unknown fields, more than one
// document and a kind other than want.
func decodeStrict(doc []byte, want string, v any, kind *string) error {
	return yamldoc.DecodeKind(doc, want, v, kind, sections)
}

// sections names each definition struct as users see it in YAML.
var sections = map[string]string{
	"Definition": "the tool",
	"HTTP":       "http",
	"Auth":       "auth",
	"BasicAuth":  "auth.basic",
	"NamedField": "auth.header or auth.query",
	"OAuth2":     "auth.oauth2 (it takes no fields)",
	"Toolset":    "the toolset",
	"Route":      "the route",
	"AllowRule":  "an allow rule",
}

