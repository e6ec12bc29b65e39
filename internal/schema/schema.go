// Package schema compiles JSON Schemas and validates values against them
// with messages that name the failing field, for resource values and tool
// arguments alike.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// Schema is a compiled JSON Schema.
type Schema struct {
	compiled *jsonschema.Schema
	raw      json.RawMessage
}

// Compile compiles a JSON Schema given as JSON. Schemas without a $schema
// keyword are read as draft 2020-12. Formats (email, uri, date-time, …) are
// asserted, not just noted.
func Compile(raw []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, errors.New("schema must be a JSON object")
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	if err := c.AddResource("keyhole:schema.json", doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := c.Compile("keyhole:schema.json")
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %s", cleanCompileError(err))
	}
	return &Schema{compiled: s, raw: append(json.RawMessage(nil), raw...)}, nil
}

// MustCompile is Compile for schemas built into keyhole; it panics on error.
func MustCompile(raw string) *Schema {
	s, err := Compile([]byte(raw))
	if err != nil {
		panic(err)
	}
	return s
}

// JSON returns the schema as it was given.
func (s *Schema) JSON() json.RawMessage { return s.raw }

// Error is a value failing its schema. Problems name each failing field by
// its JSON pointer ("/email") and say what is wrong with it.
type Error struct {
	Problems []Problem
}

// Problem is one reason a value fails its schema.
type Problem struct {
	Field   string `json:"field"` // JSON pointer; "" for the whole value
	Message string `json:"message"`
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		if p.Field == "" {
			parts[i] = p.Message
		} else {
			parts[i] = p.Field + ": " + p.Message
		}
	}
	return strings.Join(parts, "; ")
}

// ValidateJSON checks a JSON document against the schema. It returns an
// *Error when the document does not match, naming each failing field.
func (s *Schema) ValidateJSON(doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return &Error{Problems: []Problem{{Message: "not valid JSON: " + err.Error()}}}
	}
	return s.validate(v)
}

func (s *Schema) validate(v any) error {
	err := s.compiled.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return &Error{Problems: []Problem{{Message: err.Error()}}}
	}
	var problems []Problem
	leaves(verr, &problems)
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Field < problems[j].Field })
	return &Error{Problems: dedupe(problems)}
}

// leaves collects the innermost causes, which say what is actually wrong.
func leaves(e *jsonschema.ValidationError, out *[]Problem) {
	if len(e.Causes) == 0 {
		*out = append(*out, Problem{Field: pointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
		return
	}
	for _, c := range e.Causes {
		leaves(c, out)
	}
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

func dedupe(ps []Problem) []Problem {
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

func cleanCompileError(err error) string {
	return strings.ReplaceAll(err.Error(), "keyhole:schema.json", "schema")
}

// noLoader refuses to fetch referenced schemas: a schema applied to keyhole
// must not make the server read files or reach the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema references are not allowed (%s); inline the schema", url)
}
