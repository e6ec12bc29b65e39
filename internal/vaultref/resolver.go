package vaultref

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"

	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/tool"
)

// Defaults for [Options].
const (
	DefaultTokenTTL = time.Minute
	DefaultTimeout  = 10 * time.Second
)

// TokenIssuer signs job identity tokens; *oidc.Issuer is one.
type TokenIssuer interface {
	Issue(ctx context.Context, claims oidc.JobClaims, audience string,
		ttl time.Duration) (string, error)
}

// Options tunes a [Resolver]. A nil *Options means defaults.
type Options struct {
	// HTTPClient reaches Vault. When nil, each Vault address gets a client
	// that trusts the system's roots and the settings' CACert. A client
	// given here is used as it is, and CACert is ignored.
	HTTPClient *http.Client

	// Timeout bounds each request to Vault; DefaultTimeout when zero.
	Timeout time.Duration

	// TokenTTL is the lifetime of the identity tokens presented to Vault;
	// DefaultTokenTTL when zero. A login happens right after the token is
	// signed, so it need only cover clock skew.
	TokenTTL time.Duration

	// Now is the clock the cache expires by; time.Now when nil.
	Now func() time.Time

	// Logger receives the resolver's logs; nil discards them.
	Logger *slog.Logger
}

// Resolver fetches Vault-held values. It is safe for concurrent use; share
// one per server so its cache and connections are shared.
type Resolver struct {
	issuer TokenIssuer
	opts   Options
	log    *slog.Logger
	cache  *cache
	group  singleflight.Group

	mu      sync.Mutex
	clients map[clientKey]*api.Client
}

type clientKey struct{ addr, namespace, caCert string }

// NewResolver returns a Resolver that logs in with tokens from issuer.
func NewResolver(issuer TokenIssuer, opts *Options) *Resolver {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resolver{issuer: issuer, opts: o, log: log, cache: newCache(o.Now),
		clients: map[clientKey]*api.Client{}}
}

// Request asks for the credential of one Vault-held resource.
type Request struct {
	Settings Settings       // the workspace's Vault settings
	Caller   oidc.JobClaims // the job the call is made for
	Path     string         // the resource's path in keyhole, e.g. f/bot/stripe
	// Reference is the resource's stored reference, e.g. kv/data/bot/stripe.
	Reference string
	// Type is the resource's type; the secret's fields are mapped onto its
	// fields by name.
	Type *resource.Type
	// AllowedHosts are the resource's allowed hosts; the type's when nil.
	// URL fields of a Vault-held value add no hosts: a value fetched at
	// call time must not widen where its credential may go.
	AllowedHosts []string
}

// Credential returns the credential of a Vault-held resource, from the
// cache or from Vault. Errors are fault errors wrapping an *[Error] (or
// the settings' validation error) and never carry a secret.
func (r *Resolver) Credential(ctx context.Context, req Request) (*tool.Credential, error) {
	s, err := checkRequest(req.Settings, req.Reference)
	if err != nil {
		return nil, err
	}
	if req.Type == nil {
		return nil, fault.New(fault.Internal, "", "resource %s: no resource type to map "+
			"the Vault secret onto", req.Path)
	}

	fields, err := r.cached(ctx, s, req.Caller, req.Reference, req.Type)
	if err != nil {
		return nil, err
	}
	hosts := req.AllowedHosts
	if hosts == nil {
		hosts = req.Type.AllowedHosts
	}
	return &tool.Credential{Path: req.Path, Type: req.Type.Name, Fields: fields,
		SecretFields: slices.Clone(req.Type.SecretFields),
		AllowedHosts: slices.Clone(hosts)}, nil
}

func checkRequest(settings Settings, ref string) (Settings, error) {
	s, err := settings.Normalize()
	if err != nil {
		return s, fault.Wrap(fault.Invalid, "invalid_vault_settings", err, err.Error())
	}
	if err := CheckReference(ref); err != nil {
		return s, fault.Wrap(fault.Invalid, "invalid_vault_reference", err, err.Error())
	}
	return s, nil
}

// cached returns the mapped fields for ref, fetching them once for every
// caller that asks at the same time when they are not cached.
func (r *Resolver) cached(ctx context.Context, s Settings, caller oidc.JobClaims,
	ref string, typ *resource.Type) (map[string]any, error) {
	key := keyFor(s, caller, ref)
	if fields, ok := r.cache.get(key); ok {
		return fields, nil
	}
	flight := fmt.Sprintf("%#v|%s", key, typ.Name)
	_, err, _ := r.group.Do(flight, func() (any, error) {
		sec, err := r.fetch(ctx, s, caller, ref)
		if err != nil {
			return nil, err
		}
		fields, err := mapFields(typ, sec.data, s.Addr, ref)
		if err != nil {
			return nil, err
		}
		ttl := min(sec.ttl, time.Duration(s.MaxCacheTTL))
		r.cache.put(key, fields, ttl)
		r.log.DebugContext(ctx, "vault: cached secret", "workspace", caller.Workspace,
			"reference", ref, "ttl", ttl)
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	if fields, ok := r.cache.get(key); ok {
		return fields, nil
	}
	// The value may not be cached (a zero TTL); fetch it for this caller.
	sec, err := r.fetch(ctx, s, caller, ref)
	if err != nil {
		return nil, err
	}
	return mapFields(typ, sec.data, s.Addr, ref)
}

// Read fetches the secret at ref from Vault, bypassing the cache, and
// returns the fields of typ it holds, checked against typ's schema; with a
// nil typ, every field as Vault holds it. It is for moving values between
// backends (`keyhole secrets migrate --to local`); the caller must not
// keep the value anywhere but in a sealed resource.
func (r *Resolver) Read(ctx context.Context, settings Settings, caller oidc.JobClaims,
	ref string, typ *resource.Type) (map[string]any, error) {
	s, err := checkRequest(settings, ref)
	if err != nil {
		return nil, err
	}
	sec, err := r.fetch(ctx, s, caller, ref)
	if err != nil {
		return nil, err
	}
	if typ == nil {
		return sec.data, nil
	}
	return mapFields(typ, sec.data, s.Addr, ref)
}

// Write stores fields as a new version of the secret at ref, logging in as
// caller does for a read; the role's policies must grant create and
// update on ref. It is for `keyhole secrets migrate --to vault`. Cached
// values of ref are dropped.
func (r *Resolver) Write(ctx context.Context, settings Settings, caller oidc.JobClaims,
	ref string, fields map[string]any) error {
	s, err := checkRequest(settings, ref)
	if err != nil {
		return err
	}
	client, _, err := r.login(ctx, s, caller)
	if err != nil {
		return err
	}
	_, err = client.Logical().WriteWithContext(ctx, ref, map[string]any{"data": fields})
	if err != nil {
		return r.failure(ctx, s, "write", ref, err)
	}
	r.cache.drop(func(k cacheKey) bool { return k.addr == s.Addr && k.ref == ref })
	r.log.InfoContext(ctx, "vault: wrote secret", "workspace", caller.Workspace,
		"reference", ref)
	return nil
}

// CheckLogin logs in with the settings as caller would, and reports why it
// fails, if it does. `keyhole workspace vault` can run it to check new
// settings before saving them.
func (r *Resolver) CheckLogin(ctx context.Context, settings Settings,
	caller oidc.JobClaims) error {
	s, err := settings.Normalize()
	if err != nil {
		return fault.Wrap(fault.Invalid, "invalid_vault_settings", err, err.Error())
	}
	_, _, err = r.login(ctx, s, caller)
	return err
}

// Purge forgets every cached value, for instance when a workspace's Vault
// settings change.
func (r *Resolver) Purge() { r.cache.drop(func(cacheKey) bool { return true }) }

// Cached reports how many values are held in memory.
func (r *Resolver) Cached() int { return r.cache.len() }

// secret is what a read brought back.
type secret struct {
	data map[string]any
	ttl  time.Duration // how long it may be kept
}

// fetch logs in and reads the secret at ref.
func (r *Resolver) fetch(ctx context.Context, s Settings, caller oidc.JobClaims,
	ref string) (*secret, error) {
	client, ttl, err := r.login(ctx, s, caller)
	if err != nil {
		return nil, err
	}
	got, err := client.Logical().ReadWithContext(ctx, ref)
	if err != nil {
		return nil, r.failure(ctx, s, "read", ref, err)
	}
	data, _ := dataOf(got)
	if data == nil {
		e := &Error{Op: "read", Addr: s.Addr, Path: ref, Status: http.StatusNotFound,
			Err: ErrNotFound, Detail: "no secret there, or its latest version is deleted"}
		r.log.WarnContext(ctx, "vault: secret not found", "reference", ref)
		return nil, e.asFault()
	}
	if got.LeaseDuration > 0 {
		ttl = min(ttl, time.Duration(got.LeaseDuration)*time.Second)
	}
	return &secret{data: data, ttl: ttl}, nil
}

// dataOf returns the data.data object of a KV version 2 read.
func dataOf(got *api.Secret) (map[string]any, bool) {
	if got == nil {
		return nil, false
	}
	data, ok := got.Data["data"].(map[string]any)
	return data, ok
}

// login presents a fresh identity token to Vault's JWT auth method and
// returns a client holding the Vault token it got, and that token's TTL.
func (r *Resolver) login(ctx context.Context, s Settings,
	caller oidc.JobClaims) (*api.Client, time.Duration, error) {
	idToken, err := r.issuer.Issue(ctx, caller, s.Audience, r.opts.TokenTTL)
	if errors.Is(err, oidc.ErrInvalid) {
		return nil, 0, fault.Wrap(fault.Invalid, "", err, err.Error())
	}
	if err != nil {
		return nil, 0, fault.Wrap(fault.Unavailable, "identity_unavailable", err,
			"keyhole cannot sign its identity token for Vault: "+err.Error())
	}

	base, err := r.client(s)
	if err != nil {
		return nil, 0, err
	}
	path := "auth/" + s.JWTMount + "/login"
	got, err := base.Logical().WriteWithContext(ctx, path,
		map[string]any{"role": s.Role, "jwt": idToken})
	if err != nil {
		return nil, 0, r.failure(ctx, s, "log in", path, err)
	}
	if got == nil || got.Auth == nil || got.Auth.ClientToken == "" {
		e := &Error{Op: "log in", Addr: s.Addr, Path: path, Err: ErrRefused,
			Detail: "the answer holds no client token"}
		return nil, 0, e.asFault()
	}

	client, err := base.Clone()
	if err != nil {
		return nil, 0, fmt.Errorf("vault: %w", err)
	}
	client.SetToken(got.Auth.ClientToken)
	ttl := time.Duration(got.Auth.LeaseDuration) * time.Second
	if ttl <= 0 { // a token without expiry: only the settings bound the cache
		ttl = LongestCacheTTL
	}
	r.log.DebugContext(ctx, "vault: logged in", "addr", s.Addr, "role", s.Role,
		"workspace", caller.Workspace, "job_id", caller.JobID, "token_ttl", ttl)
	return client, ttl, nil
}

// failure turns an error of the Vault client into an *Error: no answer or
// a 5xx means Vault is unavailable; any other answer is a refusal.
func (r *Resolver) failure(ctx context.Context, s Settings, op, path string,
	err error) error {
	e := &Error{Op: op, Addr: s.Addr, Path: path, Err: ErrUnavailable}
	var resp *api.ResponseError
	if errors.As(err, &resp) {
		e.Status, e.Vault = resp.StatusCode, resp.Errors
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			e.Err = ErrRefused
		}
	} else {
		e.Detail = err.Error()
	}
	r.log.WarnContext(ctx, "vault: request failed", "op", op, "addr", s.Addr,
		"path", path, "status", e.Status, "error", e.Err)
	return e.asFault()
}

// client returns the tokenless client for the settings' address and
// namespace, made once.
func (r *Resolver) client(s Settings) (*api.Client, error) {
	k := clientKey{addr: s.Addr, namespace: s.Namespace, caCert: s.CACert}
	if r.opts.HTTPClient != nil {
		k.caCert = ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[k]; ok {
		return c, nil
	}

	cfg := &api.Config{Address: s.Addr, HttpClient: r.opts.HTTPClient,
		Timeout: r.opts.Timeout, MaxRetries: 0, CloneHeaders: true}
	if cfg.HttpClient == nil {
		cfg.HttpClient = newHTTPClient(s.CACert)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: client for %s: %w", s.Addr, err)
	}
	// NewClient reads VAULT_TOKEN and VAULT_NAMESPACE from the environment;
	// keyhole uses neither.
	c.ClearToken()
	c.ClearNamespace()
	if s.Namespace != "" {
		c.SetNamespace(s.Namespace)
	}
	r.clients[k] = c
	return c, nil
}

// newHTTPClient returns a client that follows no redirects (the Vault
// client handles them itself) and trusts caCert besides the system roots.
func newHTTPClient(caCert string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caCert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM([]byte(caCert))
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
}

// mapFields picks the type's fields from the secret by name and checks
// them against the type's schema. Fields the type lacks are left out.
func mapFields(typ *resource.Type, data map[string]any, addr, ref string) (map[string]any,
	error) {
	fields := map[string]any{}
	for name := range properties(typ) {
		if v, ok := data[name]; ok {
			fields[name] = v
		}
	}
	if err := validate(typ, fields); err != nil {
		e := &Error{Op: "read", Addr: addr, Path: ref, Err: ErrBadSecret,
			Detail: fmt.Sprintf("for type %s: %v (secret fields: %s)", typ.Name, err,
				fieldNames(data))}
		return nil, e.asFault()
	}
	return fields, nil
}
