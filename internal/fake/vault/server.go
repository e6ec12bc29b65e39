// Package vault is a local stand-in for the parts of HashiCorp Vault's (and
// OpenBao's) HTTP API that keyhole uses: the JWT auth method and the KV
// version 2 secrets engine, with ACL policies and expiring tokens. It speaks
// Vault's wire format, so tests drive it with github.com/hashicorp/vault/api
// exactly as they would a real server.
//
// Served endpoints, all under /v1/:
//
//	POST sys/auth/{path}              enable an auth method (type jwt)
//	POST sys/mounts/{path}            mount KV v2 (type kv with version 2, or kv-v2)
//	PUT  sys/policies/acl/{name}      write an ACL policy in HCL (also sys/policy/{name})
//	POST auth/{mount}/config          jwks_url or oidc_discovery_url, bound_issuer
//	POST auth/{mount}/role/{name}     a role_type jwt role
//	POST auth/{mount}/login           {"role": …, "jwt": …}: a token for the role
//	GET  {kv}/data/{path}             read a secret's latest version
//	PUT  {kv}/data/{path}             write a new version {"data": {…}}
//	GET  auth/token/lookup-self       the calling token's TTL and policies
//
// Configuration endpoints need the root token. Logins verify the JWT's
// signature against the issuer's key set, fetched over HTTP from jwks_url or
// through OIDC discovery, then the issuer, audiences (bound_audiences),
// subject, bound_claims (string or glob), exp, nbf and iat with Vault's
// default leeways; the role's user_claim must be present. A login returns a
// token with the role's token_policies plus default, living token_ttl. KV
// requests are allowed by the token's policies: path rules with exact
// paths, a trailing * for prefixes and + for one segment; deny wins.
//
// Errors have Vault's shape, {"errors": ["…"]}. [Server.SetDown] makes the
// server drop every connection without an answer, as an unreachable Vault
// would look to a client; [Server.SetSealed] makes it answer 503 "Vault is
// sealed".
package vault

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// DefaultRootToken is the root token of a server whose Options name none.
const DefaultRootToken = "root"

// Options configures a Handler. The zero value is usable.
type Options struct {
	// RootToken is the token allowed to configure the server;
	// DefaultRootToken when empty.
	RootToken string

	// Now is the server's clock; time.Now when nil.
	Now func() time.Time

	// HTTPClient fetches key sets and discovery documents; a client with a
	// 10-second timeout when nil.
	HTTPClient *http.Client
}

// Request is what a Handler recorded of one request.
type Request struct {
	Method string
	Path   string // without /v1/
	Status int
}

// Handler serves the fake API. It is safe for concurrent use.
type Handler struct {
	root   string
	now    func() time.Time
	client *http.Client

	mu       sync.Mutex
	down     bool
	sealed   bool
	jwt      map[string]*jwtMount // by mount path
	kv       map[string]*kvMount  // by mount path
	policies map[string][]rule
	tokens   map[string]*token
	requests []Request
}

// NewHandler returns a Handler with nothing mounted.
func NewHandler(opts *Options) *Handler {
	if opts == nil {
		opts = &Options{}
	}
	h := &Handler{root: opts.RootToken, now: opts.Now, client: opts.HTTPClient,
		jwt: map[string]*jwtMount{}, kv: map[string]*kvMount{},
		policies: map[string][]rule{}, tokens: map[string]*token{}}
	if h.root == "" {
		h.root = DefaultRootToken
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.client == nil {
		h.client = &http.Client{Timeout: 10 * time.Second}
	}
	return h
}

// RootToken returns the token that may configure the server.
func (h *Handler) RootToken() string { return h.root }

// SetDown makes the server drop every connection without answering, or
// answer again.
func (h *Handler) SetDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// SetSealed makes the server answer 503 "Vault is sealed" to everything, or
// serve again.
func (h *Handler) SetSealed(sealed bool) {
	h.mu.Lock()
	h.sealed = sealed
	h.mu.Unlock()
}

// Requests returns the requests answered so far, oldest first.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.requests...)
}

// Count returns how many requests were answered with method to path.
func (h *Handler) Count(method, path string) int {
	n := 0
	for _, r := range h.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// Server is a Handler listening on a loopback port.
type Server struct {
	*httptest.Server
	*Handler
}

// NewServer starts a plain HTTP server on 127.0.0.1 serving a Handler.
// Close it when done.
func NewServer(opts *Options) *Server {
	h := NewHandler(opts)
	return &Server{Server: httptest.NewServer(h), Handler: h}
}

// ServeHTTP answers one request as Vault would.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	down, sealed := h.down, h.sealed
	h.mu.Unlock()
	if down {
		drop(w)
		return
	}

	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	switch {
	case sealed:
		writeErrors(rec, http.StatusServiceUnavailable, "Vault is sealed")
	case !ok:
		writeErrors(rec, http.StatusNotFound, "no handler for route")
	default:
		h.route(rec, r, path)
	}

	h.mu.Lock()
	h.requests = append(h.requests, Request{Method: r.Method, Path: path, Status: rec.status})
	h.mu.Unlock()
}

// drop closes the connection without a response.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request, path string) {
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut

	switch {
	case write && strings.HasPrefix(path, "sys/"):
		h.sys(w, r, path, body)
	case path == "auth/token/lookup-self" && r.Method == http.MethodGet:
		h.lookupSelf(w, r)
	case strings.HasPrefix(path, "auth/"):
		h.auth(w, r, path, body)
	default:
		h.secret(w, r, path, body)
	}
}

// sys serves the configuration endpoints.
func (h *Handler) sys(w http.ResponseWriter, r *http.Request, path string,
	body map[string]any) {
	if !h.isRoot(r) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	if name, ok := strings.CutPrefix(path, "sys/auth/"); ok {
		h.enableAuth(w, strings.Trim(name, "/"), body)
		return
	}
	if name, ok := strings.CutPrefix(path, "sys/mounts/"); ok {
		h.mount(w, strings.Trim(name, "/"), body)
		return
	}
	name, ok := strings.CutPrefix(path, "sys/policies/acl/")
	if !ok {
		name, ok = strings.CutPrefix(path, "sys/policy/")
	}
	if ok {
		h.putPolicy(w, name, body)
		return
	}
	writeErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q", path))
}

func (h *Handler) isRoot(r *http.Request) bool { return tokenOf(r) == h.root }

// tokenOf returns the token a request carries.
func tokenOf(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return t
}

// mountOf returns the mount of path among names, the longest that matches,
// and the rest of the path.
func mountOf[T any](mounts map[string]T, path string) (string, string, bool) {
	best, rest := "", ""
	for name := range mounts {
		if r, ok := strings.CutPrefix(path, name+"/"); ok && len(name) > len(best) {
			best, rest = name, r
		}
	}
	return best, rest, best != ""
}

// recorder remembers the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records status and writes it.
func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// response is the envelope of every Vault answer.
type response struct {
	RequestID     string        `json:"request_id"`
	LeaseID       string        `json:"lease_id"`
	Renewable     bool          `json:"renewable"`
	LeaseDuration int           `json:"lease_duration"`
	Data          any           `json:"data"`
	WrapInfo      any           `json:"wrap_info"`
	Warnings      []string      `json:"warnings"`
	Auth          *authResponse `json:"auth"`
	MountType     string        `json:"mount_type,omitempty"`
}

func writeResponse(w http.ResponseWriter, resp response) {
	resp.RequestID = newID("")
	writeJSON(w, http.StatusOK, resp)
}

func writeErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string][]string{"errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// noContent is Vault's answer to a successful write that returns nothing.
func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// newID returns a random identifier shaped like a UUID, with prefix.
func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%x-%x-%x-%x-%x", prefix, b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
