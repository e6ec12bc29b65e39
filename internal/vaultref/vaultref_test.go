package vaultref_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/vaultref"
)

// searchInvoices is the example's tool, pointed at the fake Stripe.
func (b *bundle) searchInvoices(t *testing.T) *tool.Tool {
	t.Helper()
	doc, err := os.ReadFile("../../examples/stripe-billing/search_invoices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local := strings.ReplaceAll(string(doc), "https://api.stripe.com", b.stripe.URL)
	d, err := tool.DecodeTool([]byte(local))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := tool.Compile(d)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func (b *bundle) call(t *testing.T, tl *tool.Tool) *tool.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tool.NewExecutor(nil).Call(ctx, tl, b.source(b.settings, job),
		json.RawMessage(`{"email":"billing@acme.example"}`))
}

// TestToolCallWithVaultHeldKey is the story end to end: the Stripe key
// lives only in Vault; a tool call logs in with keyhole's identity token,
// reads it, calls Stripe with it, and the key is nowhere in keyhole's
// database, logs or result afterwards.
func TestToolCallWithVaultHeldKey(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		b := setup(t, dsn)
		b.putReference(t, "kv/data/bot/stripe")
		tl := b.searchInvoices(t)

		res := b.call(t, tl)
		if res.IsError || res.Status != http.StatusOK ||
			!strings.Contains(string(res.Content), "in_Acme0001") {
			t.Fatalf("call = %d %v: %s", res.Status, res.Err, res.Content)
		}
		if got := b.stripe.Requests()[0].Header.Get("Authorization"); got != "Bearer "+canary {
			t.Errorf("Stripe got Authorization %q, want the Vault-held key", got)
		}
		res = b.call(t, tl) // from the cache: no second login
		if res.IsError {
			t.Fatalf("second call: %v", res.Err)
		}
		logins := b.vault.Count(http.MethodPut, "auth/jwt/login")
		reads := b.vault.Count(http.MethodGet, "kv/data/bot/stripe")
		if logins != 1 || reads != 1 {
			t.Errorf("Vault saw %d logins and %d reads for two calls, want 1 and 1",
				logins, reads)
		}

		text := string(res.Content) + b.logs.String()
		if strings.Contains(text, canary) {
			t.Error("the result or the logs hold the Vault-held key")
		}
		b.assertNotStored(t)
	})
}

// assertNotStored fails if the canary is anywhere in keyhole's database:
// the SQLite file and its WAL byte by byte, or every row of every table on
// PostgreSQL.
func (b *bundle) assertNotStored(t *testing.T) {
	t.Helper()
	var stored []byte
	if b.dir != "" {
		for _, name := range []string{"keyhole.db", "keyhole.db-wal"} {
			data, err := os.ReadFile(filepath.Join(b.dir, name))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			stored = append(stored, data...)
		}
	} else {
		stored = []byte(dumpPostgres(t, b.db))
	}
	if len(stored) < 4096 {
		t.Fatalf("only %d bytes of database to search", len(stored))
	}
	for _, form := range []string{canary, hex.EncodeToString([]byte(canary)),
		base64.StdEncoding.EncodeToString([]byte(canary))[:24], "VAULTCANARY"} {
		if strings.Contains(string(stored), form) {
			t.Errorf("keyhole's database holds the Vault-held key (as %q)", form)
		}
	}
	if !strings.Contains(string(stored), "kv/data/bot/stripe") {
		t.Error("the database does not hold the reference; is this the right database?")
	}
}

// dumpPostgres returns every row of every table as text; bytea columns
// appear in hex.
func dumpPostgres(t *testing.T, db *store.DB) string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.SQL().QueryContext(ctx,
		`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()

	var out strings.Builder
	for _, table := range tables {
		var text string
		err := db.SQL().QueryRowContext(ctx, fmt.Sprintf(
			`SELECT COALESCE(string_agg(t::text, E'\n'), '') FROM %q t`, table)).Scan(&text)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(table + "\n" + text + "\n")
	}
	return strings.Repeat(" ", 4096) + out.String()
}

func eachDB(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, "")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, testpg.DSN(t))
	})
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, b *bundle)
		want    error
		status  int
		says    string
	}{
		{"wrong audience", func(t *testing.T, b *bundle) {
			b.settings.Audience = "sts.amazonaws.com"
		},
			vaultref.ErrRefused, 502, "invalid audience (aud) claim"},
		{"expired token", func(t *testing.T, b *bundle) { b.clock.skew.Store(int64(time.Hour)) },
			vaultref.ErrRefused, 502, "token is expired"},
		{"bound claims", func(t *testing.T, b *bundle) {
			b.writeRole(t, map[string]any{"bound_claims": map[string]any{
				"workspace": "acme", "job_name": "refund"}})
		}, vaultref.ErrRefused, 502, `claim "job_name" does not match`},
		{"unknown role", func(t *testing.T, b *bundle) { b.settings.Role = "nobody" },
			vaultref.ErrRefused, 502, `role "nobody" could not be found`},
		{"wrong mount", func(t *testing.T, b *bundle) { b.settings.JWTMount = "oidc" },
			vaultref.ErrRefused, 502, "auth/oidc/login"},
		{"policy", func(t *testing.T, b *bundle) {
			_, _ = b.root.KVv2("kv").Put(context.Background(), "ops/stripe",
				map[string]any{"apiKey": canary})
			b.putReference(t, "kv/data/ops/stripe")
		}, vaultref.ErrRefused, 502, "permission denied"},
		{"missing secret", func(t *testing.T, b *bundle) { b.putReference(t, "kv/data/bot/none") },
			vaultref.ErrNotFound, 502, "kv/data/bot/none"},
		{"wrong fields", func(t *testing.T, b *bundle) {
			_, _ = b.root.KVv2("kv").Put(context.Background(), "bot/stripe",
				map[string]any{"key": canary})
		}, vaultref.ErrBadSecret, 502, "missing property 'apiKey'"},
		{"sealed", func(t *testing.T, b *bundle) { b.vault.SetSealed(true) },
			vaultref.ErrUnavailable, 503, "Vault is sealed"},
		{"down", func(t *testing.T, b *bundle) { b.vault.SetDown(true) },
			vaultref.ErrUnavailable, 503, "vault unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, "")
			b.putReference(t, "kv/data/bot/stripe")
			tt.prepare(t, b)

			cred, err := b.credential(t)
			if cred != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Credential = %v, %v; want %v", cred, err, tt.want)
			}
			if got := fault.KindOf(err).Status(); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
			if !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), canary) {
				t.Errorf("error %q should say %q and hold no secret", err, tt.says)
			}
			var ve *vaultref.Error
			if !errors.As(err, &ve) || ve.Addr != b.vault.URL {
				t.Errorf("error %v is not a *vaultref.Error naming the address", err)
			}
			if b.resolver.Cached() != 0 {
				t.Error("a failed fetch left a value in the cache")
			}
		})
	}
}

// TestVaultDownFailsClosed checks that nothing stands in for Vault: a tool
// call fails with a clear error, and once a cached value expires no stale
// copy is used.
func TestVaultDownFailsClosed(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.putReference(t, "kv/data/bot/stripe")
	tl := b.searchInvoices(t)

	b.vault.SetDown(true)
	res := b.call(t, tl)
	if !res.IsError || !errors.Is(res.Err, tool.ErrCredential) ||
		!strings.Contains(res.Err.Error(), "vault unavailable") ||
		!strings.Contains(string(res.Content), b.vault.URL) {
		t.Errorf("call with Vault down: %v: %s", res.Err, res.Content)
	}
	if n := len(b.stripe.Requests()); n != 0 {
		t.Errorf("Stripe received %d requests while Vault was down", n)
	}

	b.vault.SetDown(false)
	if res := b.call(t, tl); res.IsError {
		t.Fatalf("call with Vault back: %v", res.Err)
	}
	b.vault.SetDown(true)
	if res := b.call(t, tl); res.IsError {
		t.Errorf("call within the cache lifetime: %v", res.Err)
	}
	b.clock.Add(vaultref.DefaultMaxCacheTTL)
	if res := b.call(t, tl); !res.IsError {
		t.Error("a call after the cache expired succeeded with Vault down")
	}
}

func TestCacheExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		tokenTTL string
		maxCache time.Duration
		lives    time.Duration
	}{
		{"the configured maximum", "5m", time.Minute, time.Minute},
		{"the token's TTL", "2m", 10 * time.Minute, 2 * time.Minute},
		{"the default maximum", "1h", 0, vaultref.DefaultMaxCacheTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, "")
			b.putReference(t, "kv/data/bot/stripe")
			b.writeRole(t, map[string]any{"token_ttl": tt.tokenTTL, "token_max_ttl": "2h"})
			b.settings.MaxCacheTTL = tool.Duration(tt.maxCache)

			reads := func() int { return b.vault.Count(http.MethodGet, "kv/data/bot/stripe") }
			mustCredential(t, b)
			b.clock.Add(tt.lives - time.Second)
			mustCredential(t, b)
			if n := reads(); n != 1 {
				t.Errorf("%d reads a second before expiry, want 1", n)
			}
			b.clock.Add(time.Second)
			mustCredential(t, b)
			if n := reads(); n != 2 {
				t.Errorf("%d reads at expiry, want 2", n)
			}
		})
	}
}

func mustCredential(t *testing.T, b *bundle) *tool.Credential {
	t.Helper()
	cred, err := b.credential(t)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// TestCacheTimerDropsValues checks that a value leaves memory when its
// time is up even if nothing asks for it again.
func TestCacheTimerDropsValues(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.putReference(t, "kv/data/bot/stripe")
	b.writeRole(t, map[string]any{"token_ttl": "1"})
	mustCredential(t, b)
	deadline := time.Now().Add(10 * time.Second)
	for b.resolver.Cached() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the cached value outlived its one-second TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCredentialShape(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	row := b.putReference(t, "kv/data/bot/stripe")
	cred := mustCredential(t, b)
	want := &tool.Credential{Path: "f/bot/stripe", Type: "stripe",
		Fields:       map[string]any{"apiKey": canary}, // owner is not a stripe field
		SecretFields: []string{"apiKey"}, AllowedHosts: row.AllowedHosts}
	if diff := cmp.Diff(want, cred); diff != "" {
		t.Errorf("credential (-want +got):\n%s", diff)
	}

	// Another caller identity logs in again rather than share the value.
	other := job
	other.JobName = "get_customer"
	if _, err := b.source(b.settings, other).Credential(context.Background(),
		"f/bot/stripe"); err != nil {
		t.Fatal(err)
	}
	if n := b.vault.Count(http.MethodPut, "auth/jwt/login"); n != 2 {
		t.Errorf("%d logins for two identities, want 2", n)
	}
}

func TestConcurrentCallsLogInOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.putReference(t, "kv/data/bot/stripe")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := b.credential(t)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := b.vault.Count(http.MethodPut, "auth/jwt/login"); n != 1 {
		t.Errorf("%d logins for 8 concurrent calls, want 1", n)
	}
}

// TestMigrate moves a value into Vault and back, as keyhole secrets
// migrate does, with a role whose policy may write under kv/data/keyhole.
func TestMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	err := b.root.Sys().PutPolicyWithContext(ctx, "keyhole-migrate", `
path "kv/data/keyhole/*" {
  capabilities = ["create", "update", "read"]
}`)
	if err != nil {
		t.Fatal(err)
	}
	b.writeRole(t, map[string]any{"token_policies": "keyhole-migrate",
		"bound_claims": map[string]any{"workspace": "acme", "job_kind": "admin"}})
	admin := job
	admin.JobKind, admin.JobName = "admin", "secrets-migrate"

	ref, err := vaultref.ReferenceFor("kv/data/keyhole/", "f/bot/stripe")
	if err != nil || ref != "kv/data/keyhole/f/bot/stripe" {
		t.Fatalf("ReferenceFor = %q, %v", ref, err)
	}
	value := map[string]any{"apiKey": canary}
	if err := b.resolver.Write(ctx, b.settings, admin, ref, value); err != nil {
		t.Fatal(err)
	}
	got, err := b.resolver.Read(ctx, b.settings, admin, ref, resource.Builtin("stripe"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(value, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	err = b.resolver.Write(ctx, b.settings, admin, "kv/data/bot/stripe", value)
	if !errors.Is(err, vaultref.ErrRefused) {
		t.Errorf("write outside the policy: err = %v, want ErrRefused", err)
	}
	if err := b.resolver.CheckLogin(ctx, b.settings, job); !errors.Is(err, vaultref.ErrRefused) {
		t.Errorf("CheckLogin for a tool job against the admin role: %v", err)
	}
}
