package tool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders schema messages; they are in English.
var printer = message.NewPrinter(language.English)

// ErrInvalidArguments is wrapped by every [ArgumentError].
var ErrInvalidArguments = errors.New("invalid arguments")

// ArgumentError says which arguments failed the tool's input schema.
type ArgumentError struct {
	Problems []ArgumentProblem
}

// ArgumentProblem is one failure: the field, as a JSON pointer into the
// arguments ("/email"; "" for the arguments as a whole), and what is wrong.
type ArgumentProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *ArgumentError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid arguments: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is match [ErrInvalidArguments].
func (e *ArgumentError) Unwrap() error { return ErrInvalidArguments }

// String names the field and the problem.
func (p ArgumentProblem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return fmt.Sprintf("%q: %s", strings.TrimPrefix(p.Field, "/"), p.Message)
}

// inputSchema is a compiled input schema and what it marks sensitive.
type inputSchema struct {
	schema    *jsonschema.Schema
	raw       json.RawMessage
	sensitive [][]string // paths of x-sensitive properties
}

// noLoader refuses to load any schema by URL: a tool's schema must be
// self-contained, and compiling it must touch no file or network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas may not refer to %s: keep the schema self-contained", url)
}

func compileSchema(input map[string]any) (*inputSchema, error) {
	if input == nil {
		input = map[string]any{"type": "object", "additionalProperties": false}
	}
	if input["type"] != "object" {
		return nil, errors.New("input: the schema must have type: object")
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	const loc = "keyhole:///input.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("input: invalid JSON Schema: %w", err)
	}
	return &inputSchema{schema: sch, raw: raw, sensitive: sensitivePaths(input, nil)}, nil
}

// sensitivePaths returns the paths of the properties marked x-sensitive,
// following nested properties and array items. "*" stands for any item.
func sensitivePaths(schema map[string]any, at []string) [][]string {
	var out [][]string
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		ps, ok := p.(map[string]any)
		if !ok {
			continue
		}
		path := append(slices.Clone(at), name)
		if ps["x-sensitive"] == true {
			out = append(out, path)
			continue
		}
		out = append(out, sensitivePaths(ps, path)...)
	}
	if items, ok := schema["items"].(map[string]any); ok {
		out = append(out, sensitivePaths(items, append(slices.Clone(at), "*"))...)
	}
	return out
}

// validate decodes raw arguments and checks them against the schema.
func (s *inputSchema) validate(raw json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &ArgumentError{Problems: []ArgumentProblem{{
			Message: "arguments are not valid JSON: " + err.Error(),
		}}}
	}
	args, ok := v.(map[string]any)
	if !ok {
		return nil, &ArgumentError{Problems: []ArgumentProblem{{
			Message: "arguments must be a JSON object",
		}}}
	}
	if err := s.schema.Validate(args); err != nil {
		return nil, s.argumentError(err)
	}
	return args, nil
}

// argumentError flattens a validation error into one problem per failing
// field. The messages of sensitive fields leave the value out.
func (s *inputSchema) argumentError(err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &ArgumentError{Problems: []ArgumentProblem{{Message: err.Error()}}}
	}
	var problems []ArgumentProblem
	var collect func(e *jsonschema.ValidationError)
	collect = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				collect(c)
			}
			return
		}
		problems = append(problems, s.problem(e))
	}
	collect(ve)
	return &ArgumentError{Problems: slices.Compact(problems)}
}

func (s *inputSchema) problem(e *jsonschema.ValidationError) ArgumentProblem {
	field := ""
	if len(e.InstanceLocation) > 0 {
		field = "/" + strings.Join(e.InstanceLocation, "/")
	}
	if req, ok := e.ErrorKind.(*kind.Required); ok && len(req.Missing) > 0 {
		return ArgumentProblem{
			Field:   field + "/" + req.Missing[0],
			Message: "missing required property " + quoteList(req.Missing),
		}
	}
	if s.isSensitive(e.InstanceLocation) {
		kw := strings.Join(e.ErrorKind.KeywordPath(), "/")
		return ArgumentProblem{Field: field, Message: "fails " + kw + " (value not shown)"}
	}
	return ArgumentProblem{Field: field, Message: e.ErrorKind.LocalizedString(printer)}
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

func (s *inputSchema) isSensitive(loc []string) bool {
	for _, p := range s.sensitive {
		if len(loc) >= len(p) && pathMatch(p, loc[:len(p)]) {
			return true
		}
	}
	return false
}

func pathMatch(pattern, loc []string) bool {
	for i := range pattern {
		if pattern[i] != "*" && pattern[i] != loc[i] {
			return false
		}
	}
	return true
}

// mask returns a copy of args with every sensitive value replaced.
func (s *inputSchema) mask(args map[string]any) map[string]any {
	out := deepCopy(args).(map[string]any)
	for _, p := range s.sensitive {
		maskPath(out, p)
	}
	return out
}

func maskPath(v any, path []string) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v[path[0]]; !ok {
			return
		}
		if len(path) == 1 {
			v[path[0]] = sensitiveMask
			return
		}
		maskPath(v[path[0]], path[1:])
	case []any:
		if path[0] != "*" {
			return
		}
		for i := range v {
			if len(path) == 1 {
				v[i] = sensitiveMask
				continue
			}
			maskPath(v[i], path[1:])
		}
	}
}

// sensitiveMask replaces sensitive argument values in recorded arguments.
const sensitiveMask = "[SENSITIVE]"

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
