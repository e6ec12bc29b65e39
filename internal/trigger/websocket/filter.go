package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/itchyny/gojq"
)

// Filter is one condition on an incoming JSON message. Set either Path and
// Equals, or Expr.
//
// Path names a value inside the message, as a dotted path ("d.author.id",
// where a numeric segment indexes an array) or, when it starts with "/", as
// a JSON pointer ("/d/author/id", for keys that contain dots). Equals is the
// JSON value it must equal; numbers compare by value. A missing path does
// not match.
//
// Expr is a jq expression (gojq dialect) run on the message; it matches
// when its first output is true. It is compiled when the client is created
// and each run is cut off after 50 ms, so a runaway expression cannot stall
// the connection.
type Filter struct {
	Path   string          `json:"path,omitempty"`
	Equals json.RawMessage `json:"equals,omitempty"`
	Expr   string          `json:"expr,omitempty"`
}

// exprTimeout bounds one run of a jq filter.
const exprTimeout = 50 * time.Millisecond

// matcher is a compiled Filter.
type matcher struct {
	path  []string
	want  any
	query *gojq.Code
}

func compileFilters(filters []Filter) ([]matcher, error) {
	var out []matcher
	var errs []error
	for i, f := range filters {
		m, err := compileFilter(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("filters[%d]: %w", i, err))
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

func compileFilter(f Filter) (matcher, error) {
	hasPath := f.Path != "" || len(f.Equals) > 0
	switch {
	case hasPath && f.Expr != "":
		return matcher{}, errors.New("set either path and equals, or expr, not both")
	case f.Expr != "":
		return compileExpr(f.Expr)
	case f.Path == "" || len(f.Equals) == 0:
		return matcher{}, errors.New("path and equals are both required " +
			`(e.g. {"path": "type", "equals": "message"})`)
	}

	path, err := splitPath(f.Path)
	if err != nil {
		return matcher{}, err
	}
	want, err := decodeJSON(f.Equals)
	if err != nil {
		return matcher{}, fmt.Errorf("equals is not valid JSON: %w", err)
	}
	return matcher{path: path, want: want}, nil
}

func compileExpr(expr string) (matcher, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return matcher{}, fmt.Errorf("expr %q: %w", expr, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return matcher{}, fmt.Errorf("expr %q: %w", expr, err)
	}
	return matcher{query: code}, nil
}

// splitPath parses a dotted path or a JSON pointer into segments.
func splitPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		segs := strings.Split(p, ".")
		for _, s := range segs {
			if s == "" {
				return nil, fmt.Errorf("path %q has an empty segment", p)
			}
		}
		return segs, nil
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, nil
}

// match reports whether v satisfies the filter.
func (m matcher) match(ctx context.Context, v any) bool {
	if m.query != nil {
		return m.matchExpr(ctx, v)
	}
	got, ok := lookup(v, m.path)
	return ok && equal(got, m.want)
}

func (m matcher) matchExpr(ctx context.Context, v any) bool {
	ctx, cancel := context.WithTimeout(ctx, exprTimeout)
	defer cancel()
	out, ok := m.query.RunWithContext(ctx, v).Next()
	return ok && out == true
}

func lookup(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// equal compares decoded JSON values, numbers by value.
func equal(a, b any) bool {
	an, aNum := a.(json.Number)
	bn, bNum := b.(json.Number)
	if aNum || bNum {
		return aNum && bNum && sameNumber(an, bn)
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, x := range av {
			if y, ok := bv[k]; !ok || !equal(x, y) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !equal(av[i], bv[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func sameNumber(a, b json.Number) bool {
	x, okx := new(big.Float).SetString(a.String())
	y, oky := new(big.Float).SetString(b.String())
	return okx && oky && x.Cmp(y) == 0
}

// decodeJSON decodes one JSON value, keeping numbers exact.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// CheckFilters reports what is wrong with filters, as New would.
func CheckFilters(filters []Filter) error {
	_, err := compileFilters(filters)
	return err
}
