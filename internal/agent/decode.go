package agent

import (
	"github.com/keyhole/keyhole/internal/yamldoc"
)

// sections names each definition struct as users see it in YAML.
var sections = map[string]string{"Definition": "the agent", "Budget": "budget"}

// Decode decodes an agent definition from one YAML or JSON document and
// validates it. A field the definition does not have is an error naming
// it and, in YAML, its line.
func Decode(doc []byte) (*Definition, error) {
	var d Definition
	if err := yamldoc.DecodeKind(doc, Kind, &d, &d.Kind, sections); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}
