package broker

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/tool"
)

// Call runs the tool called name with args for a grant. Failures of the call
// itself — bad arguments, a refused host, an upstream error — come back as a
// Result with IsError set, which the caller shows to the model or user; an
// error return means the call could not be attempted (unknown tool, tool not
// granted, grant expired). Every attempt is audited.
func (b *Broker) Call(ctx context.Context, g *Grant, name string, args json.RawMessage) (*tool.Result, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	if err := b.granted(ctx, g, name); err != nil {
		b.record(g, name, audit.Denied, map[string]any{"error": err.Error()})
		return nil, err
	}
	t, err := b.tool(ctx, g.Workspace, name)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}

	res := b.exec.Call(ctx, t, b.credentials(g.Workspace), args)
	outcome := audit.OK
	if res.IsError {
		outcome = audit.Failed
	}
	b.metrics.observeCall(g.Workspace.Name, name, outcome, res.Duration)
	b.record(g, name, outcome, callDetail(t, res, args))
	return res, nil
}

// callDetail is what the audit log keeps of a call: never a secret, and
// arguments with sensitive properties masked.
func callDetail(t *tool.Tool, res *tool.Result, args json.RawMessage) map[string]any {
	d := map[string]any{
		"resources":   res.Resources,
		"host":        res.Host,
		"method":      res.Method,
		"status":      res.Status,
		"duration_ms": float64(res.Duration.Microseconds()) / 1000,
		"arguments":   json.RawMessage(t.MaskArguments(args)),
	}
	if res.Err != nil {
		d["error"] = errorClass(res.Err)
	}
	return d
}

// errorClass names a call's failure without repeating upstream text.
func errorClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{tool.ErrInvalidArguments, "invalid_arguments"}, {tool.ErrUnsafeValue, "unsafe_value"},
		{tool.ErrHostNotAllowed, "host_not_allowed"}, {tool.ErrCredential, "credential"},
		{tool.ErrUpstream, "upstream"}, {tool.ErrTimeout, "timeout"},
		{tool.ErrResponseTooLarge, "response_too_large"}, {tool.ErrOutput, "output"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "error"
}

// record appends a tool call to the audit log without making the caller wait
// for the commit; records are committed in batches within milliseconds.
func (b *Broker) record(g *Grant, name string, outcome string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	if g.Toolset != "" {
		detail["toolset"] = g.Toolset
	}
	for k, v := range g.Detail {
		detail[k] = v
	}
	rec := audit.Record{Workspace: g.Workspace.Name, Actor: g.Actor, Action: "tool.call",
		Target: name, Outcome: outcome, Detail: detail}
	b.audit.Enqueue(rec)
}

// Wait returns once every audit record enqueued so far is committed, or ctx
// ends. Tests and shutdown use it.
func (b *Broker) Wait(ctx context.Context) error { return b.audit.Flush(ctx) }
