package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/route"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
)

// RoutesHandler serves the routes of a grant under prefix: a request for
// prefix+"stripe/v1/customers" goes through route stripe to /v1/customers.
func (b *Broker) RoutesHandler(prefix string, g *Grant) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		name, _, _ := strings.Cut(rest, "/")
		p, err := b.routeProxy(r.Context(), g, name)
		if err != nil {
			status := fault.KindOf(err).Status()
			if fault.KindOf(err) == fault.Internal {
				b.logger.ErrorContext(r.Context(), "broker: route failed", "route", name, "error", err)
			}
			http.Error(w, `{"error": `+quote(err.Error())+`}`, status)
			return
		}
		http.StripPrefix(prefix+name, p).ServeHTTP(w, r)
	})
}

// routeProxy returns the proxy of a granted route's current version.
func (b *Broker) routeProxy(ctx context.Context, g *Grant, name string) (*route.Proxy, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	if !slices.Contains(g.Routes, name) {
		b.recordRoute(g, &route.Record{Route: name, Err: errors.New("route not granted")}, audit.Denied)
		return nil, fault.New(fault.Forbidden, "route_not_granted",
			"route %q is not granted here; granted routes: %v", name, g.Routes)
	}
	obj, err := b.object(ctx, g.Workspace.ID, tool.KindRoute, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "", "route %q does not exist", name)
	}
	if err != nil {
		return nil, err
	}

	// A proxy is cheap to build and carries the grant's audit hook, so each
	// request gets its own; OAuth tokens are cached in the shared
	// authenticator.
	def, err := tool.DecodeRoute([]byte(obj.Spec))
	if err != nil {
		return nil, fmt.Errorf("stored route %s: %w", name, err)
	}
	p, err := route.New(def, b.credentials(g.Workspace), b.routeOptions(g))
	if err != nil {
		return nil, fmt.Errorf("stored route %s: %w", name, err)
	}
	return p, nil
}

func (b *Broker) routeOptions(g *Grant) *route.Options {
	return &route.Options{Transport: b.transport, Authenticator: b.auth, Logger: b.logger,
		OnRequest: func(_ context.Context, rec *route.Record) {
			outcome := audit.OK
			if rec.Err != nil || rec.Status >= 400 {
				outcome = audit.Failed
			}
			b.recordRoute(g, rec, outcome)
		}}
}

func (b *Broker) recordRoute(g *Grant, rec *route.Record, outcome string) {
	b.metrics.observeRoute(g.Workspace.Name, rec.Route, rec.Status)
	detail := map[string]any{"method": rec.Method, "path": rec.Path, "host": rec.Host,
		"resources": rec.Resources, "status": rec.Status, "bytes": rec.Bytes,
		"duration_ms": float64(rec.Duration.Microseconds()) / 1000}
	if rec.Err != nil {
		detail["error"] = rec.Err.Error()
	}
	for k, v := range g.Detail {
		detail[k] = v
	}
	b.audit.Enqueue(audit.Record{Workspace: g.Workspace.Name, Actor: g.Actor,
		Action: "route.request", Target: rec.Route, Outcome: outcome, Detail: detail})
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
