package agent

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

// Decode decodes an agent definition from one YAML or JSON document and
// validates it. A field the definition does not have is an error naming
// it and, in YAML, its line.
func Decode(doc []byte) (*Definition, error) {
	var d Definition
	if err := decode(doc, &d); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if d.Kind != Kind {
		return nil, fmt.Errorf("agent: kind is %q, want %q", d.Kind, Kind)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// decode decodes a JSON or YAML document into v, refusing fields v does
// not have and more than one document.
func decode(doc []byte, v any) error {
	if bytes.HasPrefix(bytes.TrimLeft(doc, " \t\r\n"), []byte("{")) {
		return decodeJSON(doc, v)
	}
	return decodeYAML(doc, v)
}

func decodeJSON(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: more than one value in the document")
	}
	return nil
}

func decodeYAML(doc []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
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
var sections = map[string]string{"Definition": "the agent", "Budget": "budget"}

// yamlError rewrites yaml's messages so they name fields as users write
// them.
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
			msgs[i] = fmt.Sprintf("line %s: unknown field %q in %s", g[1], g[2], sections[g[3]])
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
