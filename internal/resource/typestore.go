package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// Type returns the resource type called name in a workspace: a built-in
// type, or a custom one applied as kind resource_type.
func (s *Service) Type(ctx context.Context, wsID int64, name string) (*Type, error) {
	if t := Builtin(name); t != nil {
		return t, nil
	}
	obj, err := s.db.Direct().Object(ctx, wsID, KindType, name)
	if errors.Is(err, store.ErrNotFound) {
		names := make([]string, 0, len(builtinTypes))
		for _, t := range builtinTypes {
			names = append(names, t.Name)
		}
		return nil, fault.New(fault.Invalid, "unknown_type",
			"unknown resource type %q: use one of %s, or define it with keyhole apply "+
				"(kind: resource_type)", name, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, err
	}
	return s.compiledType(wsID, obj)
}

// compiledType returns the compiled form of a stored custom type, compiling
// it once per version.
func (s *Service) compiledType(wsID int64, obj *store.Object) (*Type, error) {
	key := typeKey{wsID, obj.Name, obj.Version}
	s.mu.Lock()
	t := s.types[key]
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}

	t, err := DecodeType([]byte(obj.Spec))
	if err != nil {
		return nil, fmt.Errorf("stored resource type %s: %w", obj.Name, err)
	}
	s.mu.Lock()
	s.types[key] = t
	s.mu.Unlock()
	return t, nil
}

// Types lists the built-in and custom types of a workspace.
func (s *Service) Types(ctx context.Context, wsID int64) ([]*Type, error) {
	out := Builtins()
	objs, err := s.db.Direct().Objects(ctx, wsID, KindType)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		t, err := s.compiledType(wsID, o)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Type) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DecodeType reads a custom type definition from JSON, strictly, and
// compiles it. Built-in names are refused.
func DecodeType(spec []byte) (*Type, error) {
	var t Type
	dec := json.NewDecoder(strings.NewReader(string(spec)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fault.Wrap(fault.Invalid, "invalid_type", err,
			"resource type: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	if t.Kind != "" && t.Kind != KindType {
		return nil, fault.New(fault.Invalid, "invalid_type", "kind must be %s, not %q", KindType, t.Kind)
	}
	t.Kind = KindType
	if t.Builtin || Builtin(t.Name) != nil {
		return nil, fault.New(fault.Invalid, "invalid_type",
			"resource type %s is built in and cannot be redefined; choose another name", t.Name)
	}
	if err := t.Compile(); err != nil {
		return nil, err
	}
	return &t, nil
}
