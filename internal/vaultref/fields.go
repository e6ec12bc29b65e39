package vaultref

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/schema"
)

// properties returns the names of the type's top-level fields.
func properties(typ *resource.Type) map[string]bool {
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(typ.Schema, &doc)
	out := make(map[string]bool, len(doc.Properties))
	for k := range doc.Properties {
		out[k] = true
	}
	return out
}

// validate checks fields against the type's schema. Its error names the
// failing fields but never quotes a value: a problem with one field is
// reported by the field's name alone, since schema messages may quote the
// value (a pattern mismatch, say).
func validate(typ *resource.Type, fields map[string]any) error {
	raw, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("the secret's fields are not JSON values")
	}
	err = typ.Compiled().ValidateJSON(raw)
	if err == nil {
		return nil
	}
	var se *schema.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("the secret does not match the type's schema")
	}
	var parts []string
	for _, p := range se.Problems {
		if p.Field == "" {
			parts = append(parts, p.Message) // names properties, not values
			continue
		}
		parts = append(parts, "field "+strings.TrimPrefix(p.Field, "/")+
			" does not match the type's schema")
	}
	return errors.New(strings.Join(slices.Compact(parts), "; "))
}

// fieldNames lists the names of a secret's fields, sorted.
func fieldNames(data map[string]any) string {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
