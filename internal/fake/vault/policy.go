package vault

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/hcl"
)

// rule is one path block of an ACL policy.
type rule struct {
	path         string // without a trailing *
	prefix       bool   // the path ended in *
	capabilities []string
}

var knownCapabilities = []string{"create", "read", "update", "patch", "delete", "list",
	"sudo", "deny", "subscribe"}

func (h *Handler) putPolicy(w http.ResponseWriter, name string, body map[string]any) {
	rules, err := parsePolicy(str(body["policy"]))
	if err != nil {
		writeErrors(w, http.StatusBadRequest, "failed to parse policy: "+err.Error())
		return
	}
	h.mu.Lock()
	h.policies[name] = rules
	h.mu.Unlock()
	noContent(w)
}

// parsePolicy parses an ACL policy in Vault's HCL, such as
//
//	path "kv/data/bot/*" {
//	  capabilities = ["read"]
//	}
func parsePolicy(text string) ([]rule, error) {
	var doc struct {
		Path map[string]struct {
			Capabilities []string `hcl:"capabilities"`
		} `hcl:"path"`
	}
	if err := hcl.Decode(&doc, text); err != nil {
		return nil, err
	}
	if len(doc.Path) == 0 {
		return nil, fmt.Errorf("the policy has no path blocks")
	}
	var rules []rule
	for p, block := range doc.Path {
		for _, c := range block.Capabilities {
			if !slices.Contains(knownCapabilities, c) {
				return nil, fmt.Errorf("path %q: invalid capability %q", p, c)
			}
		}
		r := rule{path: strings.TrimSuffix(p, "*"), prefix: strings.HasSuffix(p, "*"),
			capabilities: block.Capabilities}
		rules = append(rules, r)
	}
	return rules, nil
}

// allowed reports whether the token's policies grant capability on path.
// Every matching rule of every policy counts, and deny wins.
func (h *Handler) allowed(tok *token, path, capability string) bool {
	if slices.Contains(tok.policies, "root") {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	granted := false
	for _, name := range tok.policies {
		for _, r := range h.policies[name] {
			if !r.matches(path) {
				continue
			}
			if slices.Contains(r.capabilities, "deny") {
				return false
			}
			granted = granted || slices.Contains(r.capabilities, capability)
		}
	}
	return granted
}

// matches reports whether path falls under the rule: segments of + match
// any one segment, and a trailing * any rest.
func (r rule) matches(path string) bool {
	want := strings.Split(r.path, "/")
	got := strings.Split(path, "/")
	if len(got) < len(want) || (!r.prefix && len(got) != len(want)) {
		return false
	}
	for n, w := range want {
		last := n == len(want)-1
		switch {
		case w == "+" && got[n] != "":
		case last && r.prefix && strings.HasPrefix(got[n], w):
		case w != got[n]:
			return false
		}
	}
	return true
}
