// Package route serves keyhole routes: credential-injecting reverse proxies
// that let code without keys call an upstream API.
//
// A [Proxy] serves one route (see tool.Route). The broker mounts it under
// /routes/NAME/ and strips that prefix (http.StripPrefix does), so the
// request path the Proxy sees is the upstream path. For each request the
// Proxy:
//
//   - refuses paths with "." or ".." segments, backslashes or control
//     characters, and requests no allow rule lets through;
//   - removes every credential the caller sent (Authorization, Cookie,
//     X-Api-Key and the like, and the route's own auth header or query
//     parameter) and the X-Forwarded headers;
//   - fetches the route's credential, checks the upstream against the
//     resource's allowed hosts and injects the credential;
//   - streams the response back, flushing as data arrives, with every secret
//     value of the credential redacted from headers and body (across chunk
//     boundaries, so server-sent events stay live).
//
// The caller's request body is streamed to the upstream and never replayed,
// so an OAuth2 route whose token is refused answers 401 once and fetches a
// fresh token for the next request.
package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/redact"
	"github.com/keyhole/keyhole/internal/tool"
)

// Record describes one request through a route, for the audit log. It holds
// no secret and no request or response body.
type Record struct {
	Route     string
	Method    string
	Path      string // upstream path, without the query
	Host      string // upstream host
	Resources []string
	Status    int   // status sent to the caller
	Bytes     int64 // response body bytes sent to the caller
	Started   time.Time
	Duration  time.Duration // until the response body was fully sent
	Err       error         // why keyhole refused or failed the request; nil otherwise
}

// Options tunes a [Proxy]. A nil *Options means defaults.
type Options struct {
	// Transport sends requests upstream; tool.NewTransport(nil) when nil.
	// Share one between proxies so connections are kept alive.
	Transport http.RoundTripper

	// Authenticator applies credentials and caches OAuth2 tokens; a new
	// one over Transport when nil.
	Authenticator *tool.Authenticator

	// Logger receives records of refused and failed requests; nil discards.
	Logger *slog.Logger

	// OnRequest, if set, is called once per request when it is done.
	OnRequest func(ctx context.Context, rec *Record)
}

// Proxy serves one route. It is safe for concurrent use.
type Proxy struct {
	def       *tool.Route
	upstream  *url.URL
	allow     []rule
	src       tool.CredentialSource
	transport http.RoundTripper
	auth      *tool.Authenticator
	redactors *redact.Cache
	buffers   bufferPool
	log       *slog.Logger
	errorLog  *log.Logger // for httputil.ReverseProxy, over log
	onRequest func(context.Context, *Record)
}

// New returns a Proxy for def that takes credentials from src.
func New(def *tool.Route, src tool.CredentialSource, opts *Options) (*Proxy, error) {
	upstream, allow, err := compile(def)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &Options{}
	}
	p := &Proxy{def: def, upstream: upstream, allow: allow, src: src,
		transport: opts.Transport, auth: opts.Authenticator, log: opts.Logger,
		onRequest: opts.OnRequest, redactors: redact.NewCache(0)}
	if p.transport == nil {
		p.transport = tool.NewTransport(nil)
	}
	if p.auth == nil {
		p.auth = tool.NewAuthenticator(p.transport)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.errorLog = slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)
	return p, nil
}

// Validate checks def as keyhole apply must before storing a route: its
// name, upstream, auth and allow rules, and that the upstream's host is among
// the allowed hosts of the resource its auth names.
func Validate(ctx context.Context, def *tool.Route, hosts tool.AllowedHostsFunc) error {
	upstream, _, err := compile(def)
	if err != nil {
		return err
	}
	if err := tool.CheckAuthHost(ctx, def.Auth, upstream, hosts); err != nil {
		return fmt.Errorf("route %s: %w", def.Name, err)
	}
	return nil
}

func compile(def *tool.Route) (*url.URL, []rule, error) {
	var errs []error
	errs = append(errs, tool.CheckName(def.Name))
	upstream, err := parseUpstream(def.Upstream)
	errs = append(errs, err)
	errs = append(errs, tool.CheckAuth("auth", def.Auth))
	allow, err := compileRules(def.Allow)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("route %s: %w", def.Name, err)
	}
	return upstream, allow, nil
}

func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("upstream %q: must be an absolute https URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: user information, query and fragment "+
			"are not allowed", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

// Name returns the route's name.
func (p *Proxy) Name() string { return p.def.Name }

// exchange is the state of one request through the proxy.
type exchange struct {
	rec  Record
	cred *tool.Credential
	red  *redact.Redactor
	set  http.Header // credential headers to add
	qset url.Values  // credential query parameters to add
}

// ServeHTTP proxies one request. r.URL.Path is the path below the route.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{rec: Record{Route: p.def.Name, Method: r.Method, Path: r.URL.Path,
		Host: p.upstream.Host, Resources: []string{p.def.Auth.Resource}, Started: time.Now()}}
	defer p.finish(r.Context(), ex)

	if status, err := p.check(r); err != nil {
		p.refuse(w, ex, status, err)
		return
	}
	if status, err := p.prepare(r.Context(), ex); err != nil {
		p.refuse(w, ex, status, err)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { p.rewrite(pr, ex) },
		Transport:      p.transport,
		FlushInterval:  -1,
		ErrorLog:       p.errorLog,
		BufferPool:     &p.buffers,
		ModifyResponse: func(resp *http.Response) error { return p.modify(resp, ex) },
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.refuse(w, ex, http.StatusBadGateway, p.upstreamError(err, ex))
		},
	}
	rp.ServeHTTP(w, r)
}

// check refuses paths that could escape the route's upstream path and
// requests no allow rule lets through.
func (p *Proxy) check(r *http.Request) (int, error) {
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "\\") ||
		hasControl(path) {
		return http.StatusBadRequest, fmt.Errorf("path %q is not allowed", path)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return http.StatusBadRequest, errors.New("paths with . or .. segments are not allowed")
		}
	}
	if r.Header.Get("Upgrade") != "" {
		return http.StatusBadRequest, errors.New("protocol upgrades cannot pass a route: " +
			"their data could not be redacted")
	}
	if !allowed(p.allow, r.Method, path) {
		return http.StatusForbidden, fmt.Errorf("%s %s is not allowed on route %s",
			r.Method, path, p.def.Name)
	}
	return 0, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// prepare fetches the credential, checks the upstream against its allowed
// hosts and works out what to inject.
func (p *Proxy) prepare(ctx context.Context, ex *exchange) (int, error) {
	cred, err := p.src.Credential(ctx, p.def.Auth.Resource)
	if err != nil || cred == nil {
		p.log.WarnContext(ctx, "route: credential unavailable", "route", p.def.Name,
			"resource", p.def.Auth.Resource, "error", err)
		return http.StatusServiceUnavailable, fmt.Errorf("%w: the credential of route %s "+
			"is unavailable", tool.ErrCredential, p.def.Name)
	}
	ex.cred = cred
	if err := tool.CheckURL(p.upstream, cred.AllowedHosts); err != nil {
		return http.StatusBadGateway, fmt.Errorf("route %s: %w", p.def.Name, err)
	}

	probe := &http.Request{Header: http.Header{}, URL: &url.URL{}}
	sent, err := p.auth.Apply(ctx, probe, p.def.Auth, cred)
	ex.red = p.redactors.Get(append(cred.Secrets(), sent...)...)
	if err != nil {
		return http.StatusBadGateway, fmt.Errorf("route %s: %w", p.def.Name, err)
	}
	ex.set, ex.qset = probe.Header, probe.URL.Query()
	return 0, nil
}

// inboundCredentials are request headers that carry credentials; a caller's
// are dropped so only keyhole's reach the upstream.
var inboundCredentials = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "Api-Key",
	"X-Auth-Token", "X-Goog-Api-Key",
}

// rewrite turns the caller's request into the upstream request.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest, ex *exchange) {
	pr.SetURL(p.upstream)
	out := pr.Out
	for _, h := range inboundCredentials {
		out.Header.Del(h)
	}
	if a := p.def.Auth; a.Header != nil {
		out.Header.Del(a.Header.Name)
	}
	// Without Accept-Encoding the transport asks for gzip itself and
	// decompresses it, so the body can be redacted.
	out.Header.Del("Accept-Encoding")

	for k, vs := range ex.set {
		out.Header[k] = vs
	}
	if len(ex.qset) > 0 || p.def.Auth.Query != nil {
		q := out.URL.Query()
		if a := p.def.Auth.Query; a != nil {
			q.Del(a.Name)
		}
		for k, vs := range ex.qset {
			q[k] = vs
		}
		out.URL.RawQuery = q.Encode()
	}
}

// modify redacts the response headers and wraps the body in a redacting,
// counting reader.
func (p *Proxy) modify(resp *http.Response, ex *exchange) error {
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		resp.Body.Close()
		return fmt.Errorf("%w: the upstream sent a %s-encoded body, which cannot be "+
			"checked for secrets", errEncoded, enc)
	}
	if resp.StatusCode == http.StatusUnauthorized && p.def.Auth.OAuth2 != nil {
		p.auth.Invalidate(ex.cred)
	}

	redactHeader(resp.Header, ex.red)
	resp.Header.Del("Trailer")
	resp.Trailer = nil
	if !ex.red.Empty() {
		// Redaction changes the length; the body goes out chunked.
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	resp.Body = &countingBody{r: ex.red.Reader(resp.Body), c: resp.Body, n: &ex.rec.Bytes}
	ex.rec.Status = resp.StatusCode
	return nil
}

var errEncoded = errors.New("encoded response")

func redactHeader(h http.Header, red *redact.Redactor) {
	if red.Empty() {
		return
	}
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = red.String(v)
		}
		h[k] = vs
	}
}

// countingBody counts what the caller is sent and closes the original body.
type countingBody struct {
	r io.Reader
	c io.Closer
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	*b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return b.c.Close() }

// upstreamError turns a transport failure into a message that names the
// host but not the URL, whose query may carry a credential.
func (p *Proxy) upstreamError(err error, ex *exchange) error {
	if errors.Is(err, errEncoded) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: the caller went away", tool.ErrUpstream)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%w: request to %s failed: %s", tool.ErrUpstream, p.upstream.Host,
		ex.red.String(err.Error()))
}

// refuse answers with a JSON error and records why.
func (p *Proxy) refuse(w http.ResponseWriter, ex *exchange, status int, err error) {
	ex.rec.Status, ex.rec.Err = status, err
	p.log.Info("route: request refused", "route", p.def.Name, "method", ex.rec.Method,
		"path", ex.rec.Path, "status", status, "error", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func (p *Proxy) finish(ctx context.Context, ex *exchange) {
	ex.rec.Duration = time.Since(ex.rec.Started)
	if p.onRequest != nil {
		p.onRequest(ctx, &ex.rec)
	}
}

// bufferPool lends the reverse proxy its copy buffers.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }
