package vaultref_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// TestDocsSetup applies the policies and roles docs/VAULT.md tells readers
// to write, verbatim, to a fresh fake Vault, and checks that the bot's
// calls and the migration work with them.
func TestDocsSetup(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/VAULT.md")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, "")
	ctx := context.Background()

	heredoc := regexp.MustCompile(`(?s)vault (policy write |write auth/jwt/role/)` +
		`(\S+) - <<'EOF'\n(.*?)\nEOF\n`)
	found := map[string]bool{}
	for _, m := range heredoc.FindAllSubmatch(doc, -1) {
		kind, name, body := string(m[1]), string(m[2]), m[3]
		if kind == "policy write " {
			if err := b.root.Sys().PutPolicyWithContext(ctx, name, string(body)); err != nil {
				t.Fatalf("policy %s from the docs: %v", name, err)
			}
		} else {
			var role map[string]any
			if err := json.Unmarshal(body, &role); err != nil {
				t.Fatalf("role %s from the docs is not JSON: %v", name, err)
			}
			if _, err := b.root.Logical().WriteWithContext(ctx, "auth/jwt/role/"+name,
				role); err != nil {
				t.Fatalf("role %s from the docs: %v", name, err)
			}
		}
		found[kind+name] = true
	}
	for _, want := range []string{"policy write keyhole-bot", "write auth/jwt/role/keyhole",
		"policy write keyhole-migrate", "write auth/jwt/role/keyhole-migrate"} {
		if !found[want] {
			t.Errorf("docs/VAULT.md no longer has %q", want)
		}
	}

	b.putReference(t, "kv/data/bot/stripe")
	if _, err := b.credential(t); err != nil {
		t.Errorf("the bot's call with the documented role: %v", err)
	}
	admin := job
	admin.JobKind, admin.JobName = "admin", "secrets-migrate"
	migrate := b.settings
	migrate.Role = "keyhole-migrate"
	err = b.resolver.Write(ctx, migrate, admin, "kv/data/keyhole/f/bot/stripe",
		map[string]any{"apiKey": canary})
	if err != nil {
		t.Errorf("the migration with the documented role: %v", err)
	}
}
