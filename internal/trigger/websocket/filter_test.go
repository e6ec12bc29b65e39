package websocket

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	msg := `{"type":"message","n":1,"big":12345678901234567890,"a.b":true,
		"data":{"user":{"id":"42"},"tags":["x","y"],"path/key":"p"}}`
	tests := []struct {
		name   string
		filter Filter
		want   bool
	}{
		{"string equals", Filter{Path: "type", Equals: raw(`"message"`)}, true},
		{"string differs", Filter{Path: "type", Equals: raw(`"ping"`)}, false},
		{"nested", Filter{Path: "data.user.id", Equals: raw(`"42"`)}, true},
		{"array index", Filter{Path: "data.tags.1", Equals: raw(`"y"`)}, true},
		{"index out of range", Filter{Path: "data.tags.5", Equals: raw(`"y"`)}, false},
		{"number by value", Filter{Path: "n", Equals: raw(`1.0`)}, true},
		{"big number exact", Filter{Path: "big", Equals: raw(`12345678901234567890`)}, true},
		{"big number off by one", Filter{Path: "big", Equals: raw(`12345678901234567891`)}, false},
		{"type mismatch", Filter{Path: "n", Equals: raw(`"1"`)}, false},
		{"missing path", Filter{Path: "nope.deeper", Equals: raw(`null`)}, false},
		{"object equals", Filter{Path: "data.user", Equals: raw(`{"id":"42"}`)}, true},
		{"JSON pointer", Filter{Path: "/data/path~1key", Equals: raw(`"p"`)}, true},
		{"pointer to dotted key", Filter{Path: "/a.b", Equals: raw(`true`)}, true},
		{"expr true", Filter{Expr: `.type == "message" and (.data.tags | length) == 2`}, true},
		{"expr false", Filter{Expr: `.n > 5`}, false},
		{"expr not boolean", Filter{Expr: `.type`}, false},
		{"expr error", Filter{Expr: `.type | tonumber`}, false},
	}
	v, err := decodeJSON([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := compileFilter(tc.filter)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if got := m.match(context.Background(), v); got != tc.want {
				t.Errorf("match = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestRunawayExprIsCutOff(t *testing.T) {
	t.Parallel()
	m, err := compileFilter(Filter{Expr: `until(false; .)`})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if m.match(context.Background(), map[string]any{}) {
		t.Error("runaway expression matched")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %s, want it cut off near %s", elapsed, exprTimeout)
	}
}

func TestFilterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter Filter
		want   string
	}{
		{"both kinds", Filter{Path: "a", Equals: raw(`1`), Expr: "true"}, "not both"},
		{"no equals", Filter{Path: "a"}, "path and equals are both required"},
		{"empty", Filter{}, "path and equals are both required"},
		{"bad JSON", Filter{Path: "a", Equals: raw(`{`)}, "not valid JSON"},
		{"empty segment", Filter{Path: "a..b", Equals: raw(`1`)}, "empty segment"},
		{"bad expr", Filter{Expr: ".a ==="}, "expr"},
		{"unknown function", Filter{Expr: "nosuchfunc(1)"}, "nosuchfunc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := compileFilters([]Filter{tc.filter})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }
