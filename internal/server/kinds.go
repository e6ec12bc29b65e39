package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keyhole/keyhole/internal/agent"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/route"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/trigger/spec"
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
		{Name: jobs.KindScript, Plural: "scripts", Decode: decodeScript,
			Validate: s.validateScript, Refs: scriptRefs},
		{Name: agent.Kind, Plural: "agents", Decode: decodeAgent, Validate: validateAgent,
			Refs: agentRefs},
		{Name: spec.Kind, Plural: "triggers", Decode: decodeTrigger, Validate: validateTrigger,
			Refs: triggerRefs},
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

func decodeScript(doc []byte) (string, any, error) {
	sc, err := jobs.DecodeScript(doc)
	if err != nil {
		return "", nil, err
	}
	return sc.Name, sc, nil
}

// validateScript checks a script and that its toolset and routes exist.
func (s *Server) validateScript(ctx context.Context, v *configView, spec any) error {
	sc := spec.(*jobs.Script)
	if err := sc.Check(s.cfg.MountAllow); err != nil {
		return err
	}
	for _, ref := range scriptRefs(sc) {
		_, ok, err := v.Lookup(ctx, ref.kind, ref.name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s %q does not exist", ref.kind, ref.name)
		}
	}
	return nil
}

func scriptRefs(spec any) []objectRef {
	sc := spec.(*jobs.Script)
	var refs []objectRef
	if sc.Toolset != "" {
		refs = append(refs, objectRef{tool.KindToolset, sc.Toolset})
	}
	for _, r := range sc.Routes {
		refs = append(refs, objectRef{tool.KindRoute, r})
	}
	return refs
}

func decodeAgent(doc []byte) (string, any, error) {
	d, err := agent.Decode(doc)
	if err != nil {
		return "", nil, err
	}
	return d.Name, d, nil
}

// validateAgent checks that an agent's model resource exists and is of its
// provider's type, and that its toolset exists.
func validateAgent(ctx context.Context, v *configView, spec any) error {
	d := spec.(*agent.Definition)
	r, err := v.tx.Resource(ctx, v.ws.ID, d.LLM)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("llm resource %s does not exist; create it with keyhole resource set %s --type %s",
			d.LLM, d.LLM, d.Provider)
	}
	if err != nil {
		return err
	}
	if r.Type != d.Provider {
		return fmt.Errorf("llm resource %s is of type %s; provider %s needs one of type %s",
			d.LLM, r.Type, d.Provider, d.Provider)
	}
	for _, ref := range agentRefs(d) {
		if _, ok, err := v.Lookup(ctx, ref.kind, ref.name); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%s %q does not exist", ref.kind, ref.name)
			}
			return err
		}
	}
	return nil
}

func agentRefs(spec any) []objectRef {
	if ts := spec.(*agent.Definition).Toolset; ts != "" {
		return []objectRef{{tool.KindToolset, ts}}
	}
	return nil
}
