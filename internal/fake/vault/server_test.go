package vault_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/vault/api"

	"github.com/keyhole/keyhole/internal/fake/vault"
	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
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

type bundle struct {
	issuer      *oidc.Issuer
	issuerClock *clock
	vault       *vault.Server
	vaultClock  *clock
	root        *api.Client
}

// setup serves a keyhole issuer and a fake Vault configured for it: the
// jwt mount trusts the issuer through discovery, role keyhole binds the
// audience vault and workspace acme, and its policy reads kv/data/bot/*.
func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	b := &bundle{issuerClock: &clock{t: now}, vaultClock: &clock{t: now}}

	db, err := store.Open(ctx, "", &store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek, _, err := secrets.OpenKeyService(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b.issuer, err = oidc.NewIssuer(db, kek, srv.URL, &oidc.Options{Now: b.issuerClock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h = b.issuer.Handler()

	b.vault = vault.NewServer(&vault.Options{Now: b.vaultClock.Now})
	t.Cleanup(b.vault.Close)
	b.root = newClient(t, b.vault.URL, b.vault.RootToken())
	configure(t, b.root, map[string]any{"oidc_discovery_url": srv.URL,
		"bound_issuer": srv.URL})
	return b
}

func newClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: addr, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func configure(t *testing.T, root *api.Client, config map[string]any) {
	t.Helper()
	ctx := context.Background()
	must(t, root.Sys().EnableAuthWithOptionsWithContext(ctx, "jwt",
		&api.EnableAuthOptions{Type: "jwt"}))
	must(t, root.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv",
		Options: map[string]string{"version": "2"}}))
	_, err := root.Logical().WriteWithContext(ctx, "auth/jwt/config", config)
	must(t, err)
	writeRole(t, root, nil)
	must(t, root.Sys().PutPolicyWithContext(ctx, "keyhole-bot", `
# What keyhole's bot jobs may read.
path "kv/data/bot/*" {
  capabilities = ["read"]
}
path "kv/data/bot/private" {
  capabilities = ["deny"]
}`))
	for _, p := range []string{"bot/stripe", "bot/private", "ops/db"} {
		_, err = root.KVv2("kv").Put(ctx, p, map[string]any{"apiKey": "sk_" + p})
		must(t, err)
	}
}

// writeRole writes role keyhole, with changes to its default fields.
func writeRole(t *testing.T, root *api.Client, changes map[string]any) {
	t.Helper()
	role := map[string]any{
		"role_type":       "jwt",
		"bound_audiences": []string{"vault"},
		"bound_claims":    map[string]any{"workspace": "acme"},
		"user_claim":      "sub",
		"token_ttl":       "5m",
		"token_policies":  "keyhole-bot",
	}
	for k, v := range changes {
		role[k] = v
	}
	_, err := root.Logical().WriteWithContext(context.Background(), "auth/jwt/role/keyhole",
		role)
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var job = oidc.JobClaims{Workspace: "acme", JobID: "j1", JobKind: "tool",
	JobName: "search_invoices", Trigger: "manual"}

func (b *bundle) token(t *testing.T, claims oidc.JobClaims, aud string) string {
	t.Helper()
	tok, err := b.issuer.Issue(context.Background(), claims, aud, time.Minute)
	must(t, err)
	return tok
}

// login logs in with jwt and returns a client holding the Vault token.
func (b *bundle) login(t *testing.T, jwt string) (*api.Client, *api.Secret, error) {
	t.Helper()
	c := newClient(t, b.vault.URL, "")
	got, err := c.Logical().WriteWithContext(context.Background(), "auth/jwt/login",
		map[string]any{"role": "keyhole", "jwt": jwt})
	if err != nil {
		return nil, nil, err
	}
	c.SetToken(got.Auth.ClientToken)
	return c, got, nil
}

func TestLoginAndRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, got, err := b.login(t, b.token(t, job, "vault"))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if got.Auth.LeaseDuration != 300 || !strings.HasPrefix(got.Auth.ClientToken, "hvs.") {
		t.Errorf("auth = %+v, want a 300 s hvs. token", got.Auth)
	}
	if diff := cmp.Diff([]string{"default", "keyhole-bot"}, got.Auth.Policies); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}

	sec, err := c.Logical().ReadWithContext(context.Background(), "kv/data/bot/stripe")
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := sec.Data["metadata"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"apiKey": "sk_bot/stripe"}, sec.Data["data"]); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	if meta["version"] == nil || meta["created_time"] == nil {
		t.Errorf("metadata = %v, want version and created_time", meta)
	}
	kv, err := c.KVv2("kv").Get(context.Background(), "bot/stripe")
	if err != nil || kv.VersionMetadata.Version != 1 {
		t.Errorf("KVv2 Get = %+v, %v", kv, err)
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := setup(t) // another issuer, whose keys Vault does not trust

	expired := func() string {
		b.issuerClock.Add(-time.Hour)
		defer b.issuerClock.Add(time.Hour)
		return b.token(t, job, "vault")
	}()
	wrongWS := job
	wrongWS.Workspace = "globex"
	tests := []struct {
		name, jwt, want string
	}{
		{"wrong audience", b.token(t, job, "sts.amazonaws.com"), "invalid audience (aud)"},
		{"expired", expired, "token is expired"},
		{"bound claim", b.token(t, wrongWS, "vault"), `claim "workspace" does not match`},
		{"other issuer", other.token(t, job, "vault"), "failed to verify signature"},
		{"not a JWT", "not-a-jwt", "failed to verify signature"},
		{"empty", "", "missing token"},
	}
	for _, tt := range tests {
		_, _, err := b.login(t, tt.jwt)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest ||
			!strings.Contains(strings.Join(re.Errors, " "), tt.want) {
			t.Errorf("%s: err = %v, want 400 saying %q", tt.name, err, tt.want)
		}
	}
}

func TestRoleBindings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	writeRole(t, b.root, map[string]any{
		"bound_claims_type": "glob",
		"bound_claims":      map[string]any{"workspace": "acme", "job_name": "search_*"},
		"bound_subject":     "workspace:acme:tool:search_invoices",
	})
	if _, _, err := b.login(t, b.token(t, job, "vault")); err != nil {
		t.Errorf("a token matching the glob and subject: %v", err)
	}
	other := job
	other.JobName = "refund"
	if _, _, err := b.login(t, b.token(t, other, "vault")); err == nil {
		t.Error("a token whose job_name misses the glob logged in")
	}

	writeRole(t, b.root, map[string]any{"bound_audiences": nil})
	_, _, err := b.login(t, b.token(t, job, "vault"))
	if err == nil || !strings.Contains(err.Error(), "no audiences bound") {
		t.Errorf("a role without bound audiences: err = %v", err)
	}
}

func TestPoliciesAndTokenExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _, err := b.login(t, b.token(t, job, "vault"))
	must(t, err)
	ctx := context.Background()

	for _, path := range []string{"kv/data/ops/db", "kv/data/bot/private"} {
		_, err := c.Logical().ReadWithContext(ctx, path)
		if status(err) != http.StatusForbidden {
			t.Errorf("read %s: err = %v, want 403", path, err)
		}
	}
	_, err = c.KVv2("kv").Put(ctx, "bot/stripe", map[string]any{"apiKey": "x"})
	if status(err) != http.StatusForbidden {
		t.Errorf("write without update: err = %v, want 403", err)
	}
	if sec, err := c.Logical().ReadWithContext(ctx, "kv/data/bot/none"); sec != nil || err != nil {
		t.Errorf("read of a missing secret = %v, %v; want nothing", sec, err)
	}

	b.vaultClock.Add(5 * time.Minute)
	if _, err := c.Logical().ReadWithContext(ctx, "kv/data/bot/stripe"); status(err) != 403 {
		t.Errorf("read with an expired token: err = %v, want 403", err)
	}
}

func status(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestConfigurationNeedsRoot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _, err := b.login(t, b.token(t, job, "vault"))
	must(t, err)
	_, err = c.Logical().Write("auth/jwt/role/keyhole", map[string]any{"user_claim": "x"})
	if status(err) != http.StatusForbidden {
		t.Errorf("role write with a login token: err = %v, want 403", err)
	}
	if err := c.Sys().PutPolicy("p", `path "*" { capabilities = ["read"] }`); status(err) != 403 {
		t.Errorf("policy write with a login token: err = %v, want 403", err)
	}
	err = b.root.Sys().PutPolicy("bad", `path "kv/*" { capabilities = ["reed"] }`)
	if status(err) != http.StatusBadRequest {
		t.Errorf("policy with a bad capability: err = %v, want 400", err)
	}
}

func TestJWKSURLConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v := vault.NewServer(nil)
	t.Cleanup(v.Close)
	root := newClient(t, v.URL, vault.DefaultRootToken)
	configure(t, root, map[string]any{"jwks_url": b.issuer.JWKSURL(),
		"bound_issuer": b.issuer.URL()})
	c := newClient(t, v.URL, "")
	_, err := c.Logical().Write("auth/jwt/login",
		map[string]any{"role": "keyhole", "jwt": b.token(t, job, "vault")})
	if err != nil {
		t.Errorf("login through jwks_url: %v", err)
	}
}

func TestDownAndSealed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newClient(t, b.vault.URL, "")
	login := func() error {
		_, err := c.Logical().Write("auth/jwt/login",
			map[string]any{"role": "keyhole", "jwt": b.token(t, job, "vault")})
		return err
	}

	b.vault.SetDown(true)
	err := login()
	var re *api.ResponseError
	if err == nil || errors.As(err, &re) {
		t.Errorf("login while down: err = %v, want a network error", err)
	}
	b.vault.SetDown(false)
	b.vault.SetSealed(true)
	if err := login(); status(err) != http.StatusServiceUnavailable ||
		!strings.Contains(err.Error(), "Vault is sealed") {
		t.Errorf("login while sealed: err = %v, want 503 Vault is sealed", err)
	}
	b.vault.SetSealed(false)
	if err := login(); err != nil {
		t.Errorf("login after unsealing: %v", err)
	}
	if n := b.vault.Count(http.MethodPut, "auth/jwt/login"); n != 2 {
		t.Errorf("%d logins answered, want 2 (the sealed one and the last)", n)
	}
}
