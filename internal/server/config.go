package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// Kind is a kind of configuration object that "keyhole apply" accepts.
type Kind struct {
	// Name is the kind as documents write it: tool, toolset, route, …
	Name string
	// Plural is accepted in place of Name by "keyhole get" and the API.
	Plural string
	// Decode reads one document strictly and returns the object's name and
	// its typed definition, which must marshal to JSON.
	Decode func(doc []byte) (name string, spec any, err error)
	// Validate checks an object against the rest of the configuration.
	Validate func(ctx context.Context, v *configView, spec any) error
	// Refs names the objects an object depends on, so that they cannot be
	// deleted from under it.
	Refs func(spec any) []objectRef
}

// objectRef names one configuration object.
type objectRef struct{ kind, name string }

func (r objectRef) String() string { return r.kind + "/" + r.name }

// kind returns the registered kind called name (singular or plural).
func (s *Server) kind(name string) (*Kind, error) {
	for _, k := range s.kinds {
		if k.Name == name || k.Plural == name {
			return k, nil
		}
	}
	return nil, fault.New(fault.Invalid, "unknown_kind", "unknown kind %q: use one of %s",
		name, strings.Join(s.kindNames(), ", "))
}

func (s *Server) kindNames() []string {
	names := make([]string, 0, len(s.kinds))
	for n := range s.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// configView is the configuration as an apply would leave it: the objects
// being applied over the stored ones.
type configView struct {
	s       *Server
	tx      *store.Tx
	ws      *store.Workspace
	pending map[objectRef]any
}

// Lookup returns the definition of an object, pending or stored.
func (v *configView) Lookup(ctx context.Context, kind, name string) (any, bool, error) {
	if spec, ok := v.pending[objectRef{kind, name}]; ok {
		return spec, true, nil
	}
	obj, err := v.tx.Object(ctx, v.ws.ID, kind, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	k := v.s.kinds[kind]
	_, spec, err := k.Decode([]byte(obj.Spec))
	return spec, err == nil, err
}

// ResourceHosts returns the allowed hosts of the resource at path, from its
// metadata: nothing is decrypted.
func (v *configView) ResourceHosts(ctx context.Context, path string) ([]string, error) {
	r, err := v.tx.Resource(ctx, v.ws.ID, path)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("resource %s does not exist; create it first with keyhole resource set", path)
	}
	if err != nil {
		return nil, err
	}
	return r.AllowedHosts, nil
}

// document is one YAML or JSON document of an apply, with where it came from.
type document struct {
	source string // file:line
	text   []byte
}

// splitDocuments splits a YAML stream on its --- separator lines, keeping
// each document's text as written so that errors can cite its lines.
func splitDocuments(name, content string) []document {
	var docs []document
	var cur bytes.Buffer
	start, line := 1, 0
	flush := func() {
		if strings.TrimSpace(stripComments(cur.String())) != "" {
			docs = append(docs, document{source: fmt.Sprintf("%s:%d", name, start),
				text: bytes.Clone(cur.Bytes())})
		}
		cur.Reset()
	}
	for _, l := range strings.SplitAfter(content, "\n") {
		line++
		trimmed := strings.TrimRight(l, " \t\r\n")
		if trimmed == "---" || strings.HasPrefix(trimmed, "--- ") || trimmed == "..." {
			flush()
			start = line + 1
			continue
		}
		cur.WriteString(l)
	}
	flush()
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// peekKind reads a document's kind.
func peekKind(doc []byte) (string, error) {
	var head struct {
		Kind string `yaml:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return "", fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if head.Kind == "" {
		return "", errors.New("the document has no kind")
	}
	return head.Kind, nil
}

// yamlToJSON converts one YAML document to JSON.
func yamlToJSON(doc []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return json.Marshal(v)
}
