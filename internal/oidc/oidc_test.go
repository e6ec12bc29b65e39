package oidc_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

// clock is a settable time source shared by the issuer and the verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

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
	db     *store.DB
	dir    string // SQLite's folder; empty for PostgreSQL
	kek    secrets.KeyService
	clock  *clock
	srv    *httptest.Server
	issuer *oidc.Issuer
}

// setup opens a database and serves an issuer's endpoints on a local
// server whose URL is the issuer URL.
func setup(t testing.TB, dsn string) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{clock: newClock()}
	if dsn == "" {
		b.dir = t.TempDir()
	}
	db, err := store.Open(ctx, dsn, &store.Options{DataDir: b.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b.db = db
	b.kek, _, err = secrets.OpenKeyService(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b.issuer, b.srv = b.serve(t, "")
	return b
}

// serve starts another issuer on b's database, at path under a new server.
func (b *bundle) serve(t testing.TB, path string) (*oidc.Issuer, *httptest.Server) {
	t.Helper()
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	iss, err := oidc.NewIssuer(b.db, b.kek, srv.URL+path,
		&oidc.Options{Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h = iss.Handler()
	return iss, srv
}

// verifier discovers the issuer the way a relying party does.
func (b *bundle) verifier(t *testing.T, iss *oidc.Issuer, aud string) *gooidc.IDTokenVerifier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := gooidc.NewProvider(ctx, iss.URL())
	if err != nil {
		t.Fatalf("discover %s: %v", iss.URL(), err)
	}
	return p.Verifier(&gooidc.Config{ClientID: aud, Now: b.clock.Now})
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

var job = oidc.JobClaims{Workspace: "acme", JobID: "job_01", JobKind: "tool",
	JobName: "search_invoices", Trigger: "discord:bot"}

func issue(t *testing.T, iss *oidc.Issuer, aud string, ttl time.Duration) string {
	t.Helper()
	tok, err := iss.Issue(context.Background(), job, aud, ttl)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

func TestTokensVerifyThroughDiscovery(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		b := setup(t, dsn)
		tok := issue(t, b.issuer, "vault", 2*time.Minute)

		idt, err := b.verifier(t, b.issuer, "vault").Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		var got map[string]any
		if err := idt.Claims(&got); err != nil {
			t.Fatal(err)
		}
		now := float64(b.clock.Now().Unix())
		want := map[string]any{
			"iss": b.srv.URL, "sub": "workspace:acme:tool:search_invoices", "aud": "vault",
			"iat": now, "nbf": now, "exp": now + 120, "workspace": "acme",
			"job_id": "job_01", "job_kind": "tool", "job_name": "search_invoices",
			"trigger": "discord:bot",
		}
		if len(got["jti"].(string)) < 20 {
			t.Errorf("jti = %q, want a long random ID", got["jti"])
		}
		delete(got, "jti")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("claims (-want +got):\n%s", diff)
		}
	})
}

func TestVerifierRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	tok := issue(t, b.issuer, "vault", time.Minute)
	ctx := context.Background()

	if _, err := b.verifier(t, b.issuer, "sts.amazonaws.com").Verify(ctx, tok); err == nil {
		t.Error("a token for audience vault verified for another audience")
	}
	b.clock.Add(2 * time.Minute)
	_, err := b.verifier(t, b.issuer, "vault").Verify(ctx, tok)
	var expired *gooidc.TokenExpiredError
	if !errors.As(err, &expired) {
		t.Errorf("expired token: err = %v, want TokenExpiredError", err)
	}

	other := setup(t, "") // another keyhole: its keys must not verify ours
	v := gooidc.NewVerifier(b.issuer.URL(),
		gooidc.NewRemoteKeySet(ctx, other.issuer.JWKSURL()),
		&gooidc.Config{ClientID: "vault", Now: b.clock.Now})
	if _, err := v.Verify(ctx, issue(t, b.issuer, "vault", time.Minute)); err == nil {
		t.Error("a token verified with another issuer's keys")
	}
}

func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	iss, srv := b.serve(t, "/keyhole")

	var doc map[string]any
	getJSON(t, srv.URL+"/keyhole/.well-known/openid-configuration", &doc)
	if doc["issuer"] != srv.URL+"/keyhole" ||
		doc["jwks_uri"] != srv.URL+"/keyhole/.well-known/jwks.json" {
		t.Errorf("discovery document names the wrong URLs: %v", doc)
	}
	if diff := cmp.Diff([]any{"RS256"}, doc["id_token_signing_alg_values_supported"]); diff != "" {
		t.Errorf("algorithms (-want +got):\n%s", diff)
	}
	// An issuer with a path verifies too.
	tok := issue(t, iss, "vault", time.Minute)
	if _, err := b.verifier(t, iss, "vault").Verify(context.Background(), tok); err != nil {
		t.Errorf("Verify with an issuer path: %v", err)
	}

	for _, path := range []string{"/.well-known/openid-configuration", "/keyhole/other"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %s (%s)", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func kids(t *testing.T, url string) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
			D   string `json:"d"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	getJSON(t, url, &set)
	var out []string
	for _, k := range set.Keys {
		if k.D != "" || k.Alg != "RS256" {
			t.Fatalf("key set entry %s: alg %q, private part published: %t", k.KID,
				k.Alg, k.D != "")
		}
		out = append(out, k.KID)
	}
	return out
}

func TestRotateKeepsOldKeyUntilItsTokensExpire(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		b := setup(t, dsn)
		ctx := context.Background()
		oldTok := issue(t, b.issuer, "vault", 10*time.Minute)
		first := kids(t, b.issuer.JWKSURL())

		rotated, err := b.issuer.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		newTok := issue(t, b.issuer, "vault", time.Minute)
		v := b.verifier(t, b.issuer, "vault")
		for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Errorf("%s token after rotation: %v", name, err)
			}
		}
		both := append(first, rotated.KID)
		if diff := cmp.Diff(both, kids(t, b.issuer.JWKSURL())); diff != "" {
			t.Errorf("published keys after rotation (-want +got):\n%s", diff)
		}

		// The old key goes once its last token has expired and the
		// grace has passed, and the next rotation deletes it.
		b.clock.Add(10*time.Minute + 5*time.Minute + oidc.DefaultPublishGrace)
		if diff := cmp.Diff([]string{rotated.KID}, kids(t, b.issuer.JWKSURL())); diff != "" {
			t.Errorf("published keys later (-want +got):\n%s", diff)
		}
		issue(t, b.issuer, "vault", 10*time.Minute) // keeps the second key
		third, err := b.issuer.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := b.issuer.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, k := range keys {
			states = append(states, k.KID+" "+k.State)
		}
		want := []string{rotated.KID + " retired", third.KID + " active"}
		if diff := cmp.Diff(want, states); diff != "" {
			t.Errorf("stored keys (-want +got):\n%s", diff)
		}
	})
}

func TestServersShareKeys(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		b := setup(t, dsn)
		ctx := context.Background()
		// Servers behind one external URL, whose handler is b's.
		var issuers []*oidc.Issuer
		for range 3 {
			iss, err := oidc.NewIssuer(b.db, b.kek, b.srv.URL,
				&oidc.Options{Now: b.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			issuers = append(issuers, iss)
		}

		// Servers starting together make one first key between them.
		var wg sync.WaitGroup
		toks := make([]string, len(issuers))
		for n, iss := range issuers {
			wg.Go(func() { toks[n], _ = iss.Issue(ctx, job, "vault", time.Minute) })
		}
		wg.Wait()
		keys, err := b.issuer.Keys(ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys after a concurrent first use: %v, %v", keys, err)
		}

		// One server rotates; another, not refreshed yet, still signs
		// within the horizon it reserved with the old key, and the key set
		// of any server verifies that token.
		oldKID := kidOf(t, toks[1])
		if _, err := issuers[0].Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		late := issue(t, issuers[1], "vault", time.Minute)
		if kidOf(t, late) != oldKID {
			t.Errorf("a server not yet refreshed signed with a new key")
		}
		v := b.verifier(t, b.issuer, "vault")
		for _, tok := range append(toks, late) {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Errorf("Verify: %v", err)
			}
		}

		// Past its horizon a retired key cannot be extended: the server
		// switches to the new key at once.
		long := issue(t, issuers[1], "vault", time.Hour)
		if k := kidOf(t, issue(t, issuers[0], "vault", time.Minute)); kidOf(t, long) != k {
			t.Errorf("a long token was signed with %s, not the new key %s", kidOf(t, long), k)
		}
		b.clock.Add(2 * time.Minute)
		if got := len(kids(t, b.issuer.JWKSURL())); got != 2 {
			t.Errorf("%d keys published while a token of the old key may live, want 2", got)
		}
	})
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	head, _, _ := bytes.Cut([]byte(tok), []byte("."))
	raw, err := base64.RawURLEncoding.DecodeString(string(head))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.Typ != "JWT" {
		t.Fatalf("token header %s: %v", raw, err)
	}
	return h.KID
}

func TestPrivateKeyNeverStoredInClear(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	issue(t, b.issuer, "vault", time.Minute)
	if _, err := b.issuer.Rotate(ctx); err != nil {
		t.Fatal(err)
	}

	rows, err := b.db.Direct().SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := readDB(t, b.dir)
	for _, r := range rows {
		if r.State == store.KeyRetired {
			if len(r.Wrapped) != 0 {
				t.Errorf("retired key %s keeps its wrapped private key", r.KID)
			}
			continue
		}
		plain, err := b.kek.Decrypt(ctx, r.Wrapped)
		if err != nil {
			t.Fatal(err)
		}
		var w struct{ PKCS8 []byte }
		if err := json.Unmarshal(plain, &w); err != nil || len(w.PKCS8) < 1000 {
			t.Fatalf("wrapped key %s: %v", r.KID, err)
		}
		// Any 64-byte run of the private key, raw or encoded, is a leak.
		for _, leak := range [][]byte{w.PKCS8[200:264],
			[]byte(base64.StdEncoding.EncodeToString(w.PKCS8)[200:264]),
			plain[100:164]} {
			if bytes.Contains(stored, leak) {
				t.Errorf("the database holds signing key %s in clear", r.KID)
			}
		}
	}
}

// readDB returns the bytes of the SQLite database file and its WAL.
func readDB(t *testing.T, dir string) []byte {
	t.Helper()
	var out []byte
	for _, name := range []string{"keyhole.db", "keyhole.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	if len(out) == 0 {
		t.Fatal("no database bytes to search")
	}
	return out
}

func TestKeyServiceDownFailsClosed(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.kek.Close() // every wrap and unwrap now fails

	_, err := b.issuer.Issue(context.Background(), job, "vault", time.Minute)
	if !errors.Is(err, oidc.ErrKeysUnavailable) {
		t.Errorf("Issue with the key service down: err = %v, want ErrKeysUnavailable", err)
	}
	if got := kids(t, b.issuer.JWKSURL()); len(got) != 0 {
		t.Errorf("key set before any key = %v, want empty", got)
	}

	// A server starting on stored keys cannot unwrap them either.
	b2 := setup(t, "")
	if err := b2.issuer.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	b2.kek.Close()
	fresh, err := oidc.NewIssuer(b2.db, b2.kek, b2.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Issue(context.Background(), job, "vault", time.Minute)
	if !errors.Is(err, oidc.ErrKeysUnavailable) {
		t.Errorf("Issue on a stored key with the key service down: err = %v", err)
	}
	if got := kids(t, b2.issuer.JWKSURL()); len(got) != 1 {
		t.Errorf("published keys = %v, want the stored key: verifying needs no key service", got)
	}
}

func TestRewrapMovesToANewKeyService(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	if err := b.issuer.EnsureKey(ctx); err != nil {
		t.Fatal(err)
	}
	newKEK, _, err := secrets.OpenKeyService(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	// Without the previous service the new one cannot open the key.
	alone, _ := oidc.NewIssuer(b.db, newKEK, b.srv.URL, nil)
	if _, err := alone.Issue(ctx, job, "vault", time.Minute); !errors.Is(err,
		oidc.ErrKeysUnavailable) {
		t.Fatalf("Issue under a new key service before rewrap: %v", err)
	}
	moving, _ := oidc.NewIssuer(b.db, newKEK, b.srv.URL,
		&oidc.Options{PreviousKEK: b.kek})
	if n, err := moving.Rewrap(ctx); n != 1 || err != nil {
		t.Fatalf("Rewrap = %d, %v", n, err)
	}
	b.kek.Close() // the old service is gone
	if _, err := alone.Issue(ctx, job, "vault", time.Minute); err != nil {
		t.Errorf("Issue under the new key service after rewrap: %v", err)
	}
}

func TestIssueRejectsBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	tests := []struct {
		name   string
		claims oidc.JobClaims
		aud    string
		ttl    time.Duration
	}{
		{"no workspace", oidc.JobClaims{JobKind: "tool", JobName: "x"}, "vault", 0},
		{"no name", oidc.JobClaims{Workspace: "w", JobKind: "tool"}, "vault", 0},
		{"colon", oidc.JobClaims{Workspace: "a:b", JobKind: "tool", JobName: "x"}, "vault", 0},
		{"newline", oidc.JobClaims{Workspace: "w", JobKind: "tool", JobName: "x",
			Trigger: "a\nb"}, "vault", 0},
		{"no audience", job, "", 0},
		{"spaced audience", job, "a b", 0},
		{"too long", job, "vault", 2 * time.Hour},
		{"negative", job, "vault", -time.Second},
	}
	for _, tt := range tests {
		_, err := b.issuer.Issue(context.Background(), tt.claims, tt.aud, tt.ttl)
		if !errors.Is(err, oidc.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestNewIssuerChecksURL(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for _, u := range []string{"", "keyhole.example.com", "ftp://x", "https://u:p@x",
		"https://x/?q=1", "https://x/#f"} {
		if _, err := oidc.NewIssuer(b.db, b.kek, u, nil); err == nil {
			t.Errorf("NewIssuer(%q) succeeded", u)
		}
	}
	iss, err := oidc.NewIssuer(b.db, b.kek, "https://keyhole.example.com/", nil)
	if err != nil || iss.URL() != "https://keyhole.example.com" {
		t.Errorf("NewIssuer with a trailing slash: %v, %v", iss.URL(), err)
	}
}

func TestKeyInfoJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	info, err := b.issuer.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(info)
	var m map[string]any
	_ = json.Unmarshal(got, &m)
	want := []string{"algorithm", "created_at", "kid", "state"}
	if diff := cmp.Diff(want, keysOf(m), cmpopts.SortSlices(func(a, b string) bool {
		return a < b
	})); diff != "" {
		t.Errorf("active key JSON fields (-want +got):\n%s", diff)
	}
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
