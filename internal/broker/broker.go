// Package broker is the only part of keyhole that uses a credential at call
// time. It runs tools and routes on behalf of a [Grant] — a token's toolset
// over MCP, a job's toolset and routes, an agent's toolset — opening each
// credential in the trusted process, sending it only where its resource
// allows, redacting it from what comes back, and auditing every call.
//
// The broker serves MCP over Streamable HTTP with the official Go SDK
// ([Broker.MCPHandler]) and routes as streaming reverse proxies
// ([Broker.RouteHandler]). What is granted is checked on every call, against
// the configuration as it is at that moment.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/ttlcache"
)

// Grant is what a caller may use: the tools of one toolset and a list of
// routes, in one workspace.
type Grant struct {
	Workspace *store.Workspace
	// Actor names the caller in audit records: "token:bot", "job:j_…".
	Actor string
	// Toolset is the toolset whose tools may be called; "" for none.
	Toolset string
	// AnyTool allows every tool of the workspace (the tools:call scope).
	AnyTool bool
	// Routes are the routes that may be used.
	Routes []string
	// Expires, if set, ends the grant.
	Expires time.Time
	// Detail is added to every audit record the grant's calls produce.
	Detail map[string]any
}

// ErrGrantExpired reports use of a grant after it ended.
var ErrGrantExpired = errors.New("broker: grant expired")

func (g *Grant) check() error {
	if !g.Expires.IsZero() && time.Now().After(g.Expires) {
		return fault.Wrap(fault.Forbidden, "grant_expired", ErrGrantExpired, "this grant has ended")
	}
	return nil
}

// Options configures a Broker. Nil fields take defaults.
type Options struct {
	// Transport sends upstream requests; tool.NewTransport(nil) when nil.
	Transport http.RoundTripper
	// Registerer receives the broker's metrics; none are registered when nil.
	Registerer prometheus.Registerer
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
}

// Broker runs tool calls and route requests for grants.
type Broker struct {
	db        *store.DB
	resources *resource.Service
	audit     *audit.Log
	logger    *slog.Logger
	transport http.RoundTripper
	auth      *tool.Authenticator
	exec      *tool.Executor
	metrics   *metrics

	mu    sync.Mutex
	tools map[objectKey]*tool.Tool

	// objects caches configuration rows for a second; Invalidate clears a
	// workspace's when this server changes its configuration.
	objects *ttlcache.Cache[objectRef, *store.Object]
}

// objectRef names a configuration object of a workspace.
type objectRef struct {
	workspace  int64
	kind, name string
}

// objectKey names one version of a configuration object.
type objectKey struct {
	workspace int64
	name      string
	version   int64
}

// New returns a Broker.
func New(db *store.DB, resources *resource.Service, log *audit.Log, opts *Options) *Broker {
	if opts == nil {
		opts = &Options{}
	}
	b := &Broker{db: db, resources: resources, audit: log, logger: opts.Logger,
		transport: opts.Transport, tools: map[objectKey]*tool.Tool{},
		objects: ttlcache.New[objectRef, *store.Object](time.Second, 10000)}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	if b.transport == nil {
		b.transport = tool.NewTransport(nil)
	}
	b.auth = tool.NewAuthenticator(b.transport)
	b.exec = tool.NewExecutor(&tool.ExecutorOptions{Transport: b.transport, Logger: b.logger})
	b.metrics = newMetrics(opts.Registerer)
	return b
}

// object returns a configuration object, from the cache when it is fresh.
func (b *Broker) object(ctx context.Context, wsID int64, kind, name string) (*store.Object, error) {
	ref := objectRef{wsID, kind, name}
	if o, ok := b.objects.Get(ref); ok {
		return o, nil
	}
	o, err := b.db.Direct().Object(ctx, wsID, kind, name)
	if err != nil {
		return nil, err
	}
	b.objects.Put(ref, o)
	return o, nil
}

// Invalidate forgets the cached configuration of a workspace, after it
// changed.
func (b *Broker) Invalidate(wsID int64) {
	b.objects.DeleteFunc(func(r objectRef) bool { return r.workspace == wsID })
}

// credentials returns the source of decrypted credentials for a workspace.
func (b *Broker) credentials(ws *store.Workspace) tool.CredentialSource {
	return tool.CredentialFunc(func(ctx context.Context, path string) (*tool.Credential, error) {
		c, err := b.resources.Open(ctx, ws.ID, path)
		if err != nil {
			return nil, err
		}
		return &tool.Credential{Path: c.Path, Type: c.Type, Fields: c.Fields,
			SecretFields: c.SecretFields, AllowedHosts: c.AllowedHosts}, nil
	})
}

// Tools returns the tools a grant may call, in the toolset's order.
func (b *Broker) Tools(ctx context.Context, g *Grant) ([]*tool.Tool, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	names, err := b.toolNames(ctx, g)
	if err != nil {
		return nil, err
	}
	out := make([]*tool.Tool, 0, len(names))
	for _, n := range names {
		t, err := b.tool(ctx, g.Workspace, n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// toolNames lists the names of the tools a grant covers.
func (b *Broker) toolNames(ctx context.Context, g *Grant) ([]string, error) {
	if g.AnyTool {
		objs, err := b.db.Direct().Objects(ctx, g.Workspace.ID, tool.KindTool)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(objs))
		for i, o := range objs {
			names[i] = o.Name
		}
		return names, nil
	}
	if g.Toolset == "" {
		return nil, nil
	}
	obj, err := b.object(ctx, g.Workspace.ID, tool.KindToolset, g.Toolset)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "", "toolset %q does not exist in workspace %s",
			g.Toolset, g.Workspace.Name)
	}
	if err != nil {
		return nil, err
	}
	ts, err := tool.DecodeToolset([]byte(obj.Spec))
	if err != nil {
		return nil, fmt.Errorf("stored toolset %s: %w", g.Toolset, err)
	}
	return ts.Tools, nil
}

// tool returns the compiled current version of a tool.
func (b *Broker) tool(ctx context.Context, ws *store.Workspace, name string) (*tool.Tool, error) {
	obj, err := b.object(ctx, ws.ID, tool.KindTool, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "unknown_tool", "tool %q does not exist", name)
	}
	if err != nil {
		return nil, err
	}
	key := objectKey{ws.ID, name, obj.Version}
	b.mu.Lock()
	t := b.tools[key]
	b.mu.Unlock()
	if t != nil {
		return t, nil
	}

	def, err := tool.DecodeTool([]byte(obj.Spec))
	if err != nil {
		return nil, fmt.Errorf("stored tool %s: %w", name, err)
	}
	if t, err = tool.Compile(def); err != nil {
		return nil, fmt.Errorf("stored tool %s: %w", name, err)
	}
	b.mu.Lock()
	b.tools[key] = t
	b.mu.Unlock()
	return t, nil
}

// granted reports whether a grant covers the tool called name.
func (b *Broker) granted(ctx context.Context, g *Grant, name string) error {
	if g.AnyTool {
		return nil
	}
	names, err := b.toolNames(ctx, g)
	if err != nil {
		return err
	}
	if !slices.Contains(names, name) {
		if g.Toolset == "" {
			return fault.New(fault.Forbidden, "tool_not_granted", "no tools are granted here")
		}
		return fault.New(fault.NotFound, "unknown_tool",
			"tool %q is not in toolset %s; its tools are %v", name, g.Toolset, names)
	}
	return nil
}
