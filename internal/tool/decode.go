package tool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode decodes one YAML or JSON document of any kind this package knows
// and returns a *Definition, *Toolset or *Route. Unknown fields are errors.
func Decode(doc []byte) (any, error) {
	var head struct {
		Kind string `json:"kind" yaml:"kind"`
	}
	if err := decode(doc, &head, false); err != nil {
		return nil, fmt.Errorf("tool: %w", err)
	}
	switch head.Kind {
	case KindTool:
		return DecodeTool(doc)
	case KindToolset:
		return DecodeToolset(doc)
	case KindRoute:
		return DecodeRoute(doc)
	case "":
		return nil, errors.New("tool: document has no kind (want tool, toolset or route)")
	}
	return nil, fmt.Errorf("tool: unknown kind %q (want tool, toolset or route)", head.Kind)
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
	if err := decode(doc, v, true); err != nil {
		return fmt.Errorf("%s: %w", want, err)
	}
	if *kind != want {
		return fmt.Errorf("%s: kind is %q, want %q", want, *kind, want)
	}
	return nil
}

// decode decodes a JSON or YAML document into v; strict refuses fields v
// does not have.
func decode(doc []byte, v any, strict bool) error {
	if looksLikeJSON(doc) {
		return decodeJSON(doc, v, strict)
	}
	return decodeYAML(doc, v, strict)
}

func looksLikeJSON(doc []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(doc, " \t\r\n"), []byte("{"))
}

func decodeJSON(doc []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: more than one value in the document")
	}
	return nil
}

func decodeYAML(doc []byte, v any, strict bool) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		return yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document: pass each document on its own")
	}
	return nil
}

// unknownField matches the message yaml gives for a field a struct lacks.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+?\.(\w+)$`)

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

// yamlError rewrites yaml's messages so they name fields as users write them.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if msg, ok := strings.CutPrefix(err.Error(), "yaml: "); ok {
			return fmt.Errorf("invalid YAML: %s", msg)
		}
		return err // from a field's own decoder, such as a duration's
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		if g := unknownField.FindStringSubmatch(m); g != nil {
			msgs[i] = fmt.Sprintf("line %s: unknown field %q in %s",
				g[1], g[2], sections[g[3]])
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
