package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/fake/vault"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/vaultref"
)

// TestVaultHeldResource keeps the Stripe key only in a local Vault that
// verifies keyhole's identity tokens through keyhole's own discovery URL,
// and calls a tool with it through the real server.
func TestVaultHeldResource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := startConfig(t, server.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	v := vault.NewServer(nil)
	t.Cleanup(v.Close)
	root, err := api.NewClient(&api.Config{Address: v.URL, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(v.RootToken())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.Sys().EnableAuthWithOptionsWithContext(ctx, "jwt", &api.EnableAuthOptions{Type: "jwt"}))
	must(root.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv-v2"}))
	_, err = root.Logical().WriteWithContext(ctx, "auth/jwt/config", map[string]any{
		"oidc_discovery_url": b.url, "bound_issuer": b.url})
	must(err)
	must(root.Sys().PutPolicyWithContext(ctx, "keyhole-bot", `path "kv/data/bot/*" { capabilities = ["read"] }`))
	_, err = root.Logical().WriteWithContext(ctx, "auth/jwt/role/keyhole", map[string]any{
		"role_type": "jwt", "bound_audiences": "vault", "user_claim": "sub",
		"bound_claims": map[string]any{"workspace": "default"}, "token_ttl": "5m",
		"token_policies": "keyhole-bot"})
	must(err)
	_, err = root.KVv2("kv").Put(ctx, "bot/stripe", map[string]any{"apiKey": canary})
	must(err)

	// Settings are checked by logging in before they are saved.
	_, err = b.admin.SetVaultSettings(ctx, vaultref.Settings{Addr: v.URL, Role: "keyhole"}, true)
	must(err)
	_, err = b.admin.SetVaultSettings(ctx, vaultref.Settings{Addr: v.URL, Role: "nobody"}, true)
	if err == nil {
		t.Fatal("settings with a role Vault does not know were accepted")
	}
	_, err = b.admin.SetVaultSettings(ctx, vaultref.Settings{Addr: v.URL, Role: "keyhole"}, false)
	must(err)

	fake := stripe.NewServer(&stripe.Options{Key: canary})
	t.Cleanup(fake.Close)
	_, err = b.admin.SetResource(ctx, "f/bot/stripe", resource.SetRequest{Type: "stripe",
		AllowedHosts: []string{"api.stripe.com", strings.TrimPrefix(fake.URL, "http://")},
		Vault:        "kv/data/bot/stripe"})
	must(err)
	files := exampleFiles(t)
	for i := range files {
		files[i].Content = strings.ReplaceAll(files[i].Content, "https://api.stripe.com", fake.URL)
	}
	_, err = b.admin.Apply(ctx, files, false)
	must(err)

	res, err := b.admin.CallTool(ctx, "get_customer", json.RawMessage(`{"email": "billing@acme.example"}`))
	if err != nil || res.IsError || !strings.Contains(string(res.Content), "cus_Acme0001") {
		t.Fatalf("call with a Vault-held key: %+v, %v", res, err)
	}
	info, err := b.admin.Resource(ctx, "f/bot/stripe", false)
	if err != nil || info.Reference != "kv/data/bot/stripe" || info.Value != nil {
		t.Fatalf("resource get: %+v, %v", info, err)
	}
	if _, err := b.admin.Resource(ctx, "f/bot/stripe", true); err == nil {
		t.Error("reveal reached into Vault")
	}

	// Vault down: the call fails, clearly, and nothing falls back.
	v.SetDown(true)
	res, err = b.admin.CallTool(ctx, "search_invoices", json.RawMessage(`{"email": "billing@acme.example"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(strings.ToLower(string(res.Content)), "vault") {
		t.Errorf("call with Vault down: %+v", res)
	}
	v.SetDown(false)

	// Back into keyhole, then the call works with Vault down.
	if _, err := b.admin.MigrateResource(ctx, "f/bot/stripe", server.MigrateRequest{MigrateTo: "local"}); err != nil {
		t.Fatal(err)
	}
	v.SetDown(true)
	res, err = b.admin.CallTool(ctx, "search_invoices", json.RawMessage(`{"email": "billing@acme.example"}`))
	if err != nil || res.IsError {
		t.Fatalf("after migrating back: %+v, %v", res, err)
	}

	b.stop()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			assertNoCanary(t, p, data)
		}
		return nil
	})
	assertNoCanary(t, "server logs", b.logs.Bytes())
}
