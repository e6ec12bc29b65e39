package server

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/route"
	"github.com/keyhole/keyhole/internal/tool"
)

// configKinds are the kinds of configuration the server accepts.
func (s *Server) configKinds() map[string]*Kind {
	kinds := []*Kind{
		{Name: resource.KindType, Plural: "resource_types", Decode: decodeResourceType},
		{Name: tool.KindTool, Plural: "tools", Decode: decodeTool, Validate: validateTool,
			Refs: func(spec any) []objectRef { return nil }},
		{Name: tool.KindToolset, Plural: "toolsets", Decode: decodeToolset,
			Validate: validateToolset, Refs: toolsetRefs},
		{Name: tool.KindRoute, Plural: "routes", Decode: decodeRoute, Validate: validateRoute},
	}
	out := make(map[string]*Kind, len(kinds))
	for _, k := range kinds {
		out[k.Name] = k
	}
	return out
}

func decodeResourceType(doc []byte) (string, any, error) {
	js, err := yamlToJSON(doc)
	if err != nil {
		return "", nil, err
	}
	t, err := resource.DecodeType(js)
	if err != nil {
		return "", nil, err
	}
	return t.Name, t, nil
}

func decodeTool(doc []byte) (string, any, error) {
	d, err := tool.DecodeTool(doc)
	if err != nil {
		return "", nil, err
	}
	return d.Name, d, nil
}

func decodeToolset(doc []byte) (string, any, error) {
	d, err := tool.DecodeToolset(doc)
	if err != nil {
		return "", nil, err
	}
	return d.Name, d, nil
}

func decodeRoute(doc []byte) (string, any, error) {
	d, err := tool.DecodeRoute(doc)
	if err != nil {
		return "", nil, err
	}
	return d.Name, d, nil
}

func validateTool(ctx context.Context, v *configView, spec any) error {
	_, err := tool.Validate(ctx, spec.(*tool.Definition), v.ResourceHosts)
	return err
}

func validateToolset(ctx context.Context, v *configView, spec any) error {
	var lookupErr error
	exists := func(name string) bool {
		_, ok, err := v.Lookup(ctx, tool.KindTool, name)
		if err != nil && lookupErr == nil {
			lookupErr = err
		}
		return ok
	}
	if err := tool.ValidateToolset(spec.(*tool.Toolset), exists); err != nil {
		return err
	}
	return lookupErr
}

func toolsetRefs(spec any) []objectRef {
	var refs []objectRef
	for _, name := range spec.(*tool.Toolset).Tools {
		refs = append(refs, objectRef{tool.KindTool, name})
	}
	return refs
}

func validateRoute(ctx context.Context, v *configView, spec any) error {
	return route.Validate(ctx, spec.(*tool.Route), v.ResourceHosts)
}

// canonical is the stored JSON form of a definition.
func canonical(spec any) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encode definition: %w", err)
	}
	return string(b), nil
}
