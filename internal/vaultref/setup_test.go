package vaultref_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/fake/vault"
	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/vaultref"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

// canary is the Stripe key held only in the fake Vault. It must appear in
// no byte keyhole writes.
const canary = "sk_test_VAULTCANARY_7e1f0c2d9b8a6453"

// policy is the ACL policy of docs/VAULT.md: read on the bot's secrets.
const policy = `path "kv/data/bot/*" {
  capabilities = ["read"]
}`

// clock is a settable time source shared by Vault and the resolver; the
// issuer's clock runs skew behind it.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	skew atomic.Int64
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) issuerNow() time.Time { return c.Now().Add(-time.Duration(c.skew.Load())) }

// syncBuffer collects logs from concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type bundle struct {
	dir      string // SQLite's folder; empty on PostgreSQL
	db       *store.DB
	ws       *store.Workspace
	clock    *clock
	logs     *syncBuffer
	issuer   *oidc.Issuer
	vault    *vault.Server
	root     *api.Client
	stripe   *stripe.Server
	resolver *vaultref.Resolver
	settings vaultref.Settings
}

// setup starts keyhole's issuer on a database, a fake Vault set up as
// docs/VAULT.md says, with the Stripe key at kv/bot/stripe, a fake Stripe
// accepting that key, and a resolver.
func setup(t testing.TB, dsn string) *bundle {
	t.Helper()
	b := &bundle{clock: &clock{t: time.Now().Truncate(time.Second)}, logs: &syncBuffer{}}
	if dsn == "" {
		b.dir = t.TempDir()
	}
	b.openStore(t, dsn)
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	iss := serveIssuer(t, b.db, b.clock.issuerNow, logger)
	b.issuer = iss
	b.vault = vault.NewServer(&vault.Options{Now: b.clock.Now})
	t.Cleanup(b.vault.Close)
	b.root = rootClient(t, b.vault)
	b.configureVault(t, iss)

	b.stripe = stripe.NewServer(&stripe.Options{Key: canary})
	t.Cleanup(b.stripe.Close)
	b.resolver = vaultref.NewResolver(iss, &vaultref.Options{Now: b.clock.Now,
		Logger: logger})
	t.Cleanup(b.resolver.Purge)
	b.settings = vaultref.Settings{Addr: b.vault.URL, JWTMount: "jwt", Role: "keyhole",
		Audience: "vault"}
	return b
}

func (b *bundle) openStore(t testing.TB, dsn string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, &store.Options{DataDir: b.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b.db = db
	b.ws, err = db.Direct().CreateWorkspace(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
}

// serveIssuer serves an issuer whose URL is its own local server's.
func serveIssuer(t testing.TB, db *store.DB, now func() time.Time,
	logger *slog.Logger) *oidc.Issuer {
	t.Helper()
	kek, _, err := secrets.OpenKeyService(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	iss, err := oidc.NewIssuer(db, kek, srv.URL, &oidc.Options{Now: now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h = iss.Handler()
	return iss
}

func rootClient(t testing.TB, v *vault.Server) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: v.URL, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.RootToken())
	return c
}

// configureVault follows docs/VAULT.md: enable jwt auth trusting keyhole
// through discovery, a policy, role keyhole bound to workspace acme and the
// bot's jobs, and the secret.
func (b *bundle) configureVault(t testing.TB, iss *oidc.Issuer) {
	t.Helper()
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(b.root.Sys().EnableAuthWithOptionsWithContext(ctx, "jwt",
		&api.EnableAuthOptions{Type: "jwt"}))
	check(b.root.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv-v2"}))
	_, err := b.root.Logical().WriteWithContext(ctx, "auth/jwt/config", map[string]any{
		"oidc_discovery_url": iss.URL(), "bound_issuer": iss.URL()})
	check(err)
	check(b.root.Sys().PutPolicyWithContext(ctx, "keyhole-bot", policy))
	b.writeRole(t, nil)
	_, err = b.root.KVv2("kv").Put(ctx, "bot/stripe", map[string]any{"apiKey": canary,
		"owner": "billing-team"})
	check(err)
}

// writeRole writes role keyhole as docs/VAULT.md does, with changes.
func (b *bundle) writeRole(t testing.TB, changes map[string]any) {
	t.Helper()
	role := map[string]any{
		"role_type":       "jwt",
		"bound_audiences": "vault",
		"user_claim":      "sub",
		"bound_claims": map[string]any{
			"workspace": "acme",
			"job_name":  []string{"search_invoices", "get_customer"},
		},
		"token_ttl":      "5m",
		"token_max_ttl":  "10m",
		"token_policies": "keyhole-bot",
	}
	for k, v := range changes {
		role[k] = v
	}
	_, err := b.root.Logical().WriteWithContext(context.Background(),
		"auth/jwt/role/keyhole", role)
	if err != nil {
		t.Fatal(err)
	}
}

// job is the caller of every call: the search_invoices tool in acme.
var job = oidc.JobClaims{Workspace: "acme", JobID: "job_7", JobKind: "tool",
	JobName: "search_invoices", Trigger: "discord:billing-bot"}

// putReference stores f/bot/stripe as a Vault-held resource, as
// `keyhole resource set f/bot/stripe --type stripe --vault kv/data/bot/stripe`
// does: a row with the reference and no value.
func (b *bundle) putReference(t testing.TB, ref string) *store.Resource {
	t.Helper()
	row := &store.Resource{WorkspaceID: b.ws.ID, Path: "f/bot/stripe", Type: "stripe",
		AllowedHosts: []string{strings.TrimPrefix(b.stripe.URL, "http://")},
		Version:      1, Reference: ref, UpdatedBy: "test"}
	if err := b.db.Direct().PutResource(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	return row
}

// source is the credential source the broker builds: it reads the
// resource row and resolves its reference through Vault.
func (b *bundle) source(settings vaultref.Settings, caller oidc.JobClaims) tool.CredentialSource {
	return tool.CredentialFunc(func(ctx context.Context, path string) (*tool.Credential, error) {
		row, err := b.db.Direct().Resource(ctx, b.ws.ID, path)
		if err != nil {
			return nil, err
		}
		return b.resolver.Credential(ctx, vaultref.Request{Settings: settings,
			Caller: caller, Path: row.Path, Reference: row.Reference,
			Type: resource.Builtin(row.Type), AllowedHosts: row.AllowedHosts})
	})
}

func (b *bundle) credential(t testing.TB) (*tool.Credential, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.source(b.settings, job).Credential(ctx, "f/bot/stripe")
}
