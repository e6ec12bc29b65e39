// Package yamldoc decodes one configuration document, YAML or JSON, strictly:
// a field the target struct does not have is an error naming the field and
// its line, in the words users write in YAML. Every kind that "keyhole apply"
// accepts decodes through it.
package yamldoc

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

// Decode decodes one YAML or JSON document into v, refusing unknown fields
// and more than one document. Sections maps Go struct names to what users
// call them ("HTTP" → "http"), for messages about unknown fields.
func Decode(doc []byte, v any, sections map[string]string) error {
	if looksLikeJSON(doc) {
		return decodeJSON(doc, v, true)
	}
	return decodeYAML(doc, v, true, sections)
}

// DecodeKind is Decode for a document whose kind field, read into *kind,
// must be want. Messages start with want.
func DecodeKind(doc []byte, want string, v any, kind *string, sections map[string]string) error {
	if err := Decode(doc, v, sections); err != nil {
		return fmt.Errorf("%s: %w", want, err)
	}
	if *kind != want {
		return fmt.Errorf("%s: kind is %q, want %q", want, *kind, want)
	}
	return nil
}

// Kind reads the kind of a document without checking the rest.
func Kind(doc []byte) (string, error) {
	var head struct {
		Kind string `json:"kind" yaml:"kind"`
	}
	var err error
	if looksLikeJSON(doc) {
		err = decodeJSON(doc, &head, false)
	} else {
		err = decodeYAML(doc, &head, false, nil)
	}
	return head.Kind, err
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

func decodeYAML(doc []byte, v any, strict bool, sections map[string]string) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		return yamlError(err, sections)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document: pass each document on its own")
	}
	return nil
}

// unknownField matches the message yaml gives for a field a struct lacks.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+?\.(\w+)$`)

// yamlError rewrites yaml's messages so they name fields as users write them.
func yamlError(err error, sections map[string]string) error {
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
			where := sections[g[3]]
			if where == "" {
				where = strings.ToLower(g[3])
			}
			msgs[i] = fmt.Sprintf("line %s: unknown field %q in %s", g[1], g[2], where)
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
