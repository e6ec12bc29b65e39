package schema_test

import (
	"strings"
	"testing"

	"github.com/keyhole/keyhole/internal/schema"
)

func TestValidateNamesTheField(t *testing.T) {
	t.Parallel()
	s := schema.MustCompile(`{"type": "object", "additionalProperties": false,
		"properties": {"email": {"type": "string", "format": "email"}, "n": {"type": "integer"}},
		"required": ["email"]}`)
	cases := []struct{ doc, want string }{
		{`{"email": "a@example.com"}`, ""},
		{`{"email": "nope"}`, "/email: "},
		{`{"email": "a@example.com", "n": "x"}`, "/n: got string, want integer"},
		{`{"n": 1}`, "missing property 'email'"},
		{`{"email": "a@example.com", "extra": 1}`, "'extra' not allowed"},
		{`{`, "not valid JSON"},
	}
	for _, tc := range cases {
		err := s.ValidateJSON([]byte(tc.doc))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want it to contain %q", tc.doc, err, tc.want)
		}
	}
}

func TestCompileRefusesBadSchemas(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`{"type": "objekt"}`, `[1]`, `{`, `{"$ref": "http://example.com/x.json"}`} {
		if _, err := schema.Compile([]byte(raw)); err == nil {
			t.Errorf("%s: compiled", raw)
		}
	}
}
