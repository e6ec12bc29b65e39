package route

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/keyhole/keyhole/internal/tool"
)

// rule is a compiled allow rule.
type rule struct {
	method  string // "" for any
	pattern string // path.Match pattern
	subtree bool   // the pattern ended in "/**": match it and all below
}

func compileRules(rules []tool.AllowRule) ([]rule, error) {
	var errs []error
	out := make([]rule, 0, len(rules))
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("allow[%d]: %w", i, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func compileRule(r tool.AllowRule) (rule, error) {
	c := rule{method: strings.ToUpper(r.Method), pattern: r.Path}
	if c.method == "*" {
		c.method = ""
	}
	if c.method != "" && !isMethod(c.method) {
		return rule{}, fmt.Errorf("method %q is not an HTTP method", r.Method)
	}
	if !strings.HasPrefix(r.Path, "/") {
		return rule{}, fmt.Errorf("path %q must start with /", r.Path)
	}
	if prefix, ok := strings.CutSuffix(r.Path, "/**"); ok {
		c.pattern, c.subtree = prefix, true
	}
	if strings.Contains(c.pattern, "**") {
		return rule{}, fmt.Errorf("path %q: ** is allowed only as the last segment", r.Path)
	}
	if _, err := path.Match(c.pattern, "/"); err != nil {
		return rule{}, fmt.Errorf("path %q: %v", r.Path, err)
	}
	return c, nil
}

func isMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// allowed reports whether a request may pass: always when there are no
// rules, otherwise when one rule matches.
func allowed(rules []rule, method, p string) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		if r.method != "" && r.method != method {
			continue
		}
		if r.matches(p) {
			return true
		}
	}
	return false
}

func (r rule) matches(p string) bool {
	if !r.subtree {
		ok, _ := path.Match(r.pattern, p)
		return ok
	}
	// Match the pattern against as many leading segments as it has.
	parts := strings.Split(p, "/")
	n := strings.Count(r.pattern, "/") + 1
	if len(parts) < n {
		return false
	}
	ok, _ := path.Match(r.pattern, strings.Join(parts[:n], "/"))
	return ok
}
