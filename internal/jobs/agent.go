package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyhole/keyhole/internal/agent"
	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/broker"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
)

// AgentArgs are the arguments of an agent job.
type AgentArgs struct {
	// Message is the user's message that starts the run.
	Message string `json:"message"`
}

// ResolveAgent freezes an agent's current definition into its job and checks
// that the arguments carry a message.
func ResolveAgent(ctx context.Context, tx *store.Tx, ws *store.Workspace, req *Request) (*Plan, error) {
	obj, err := tx.Object(ctx, ws.ID, agent.Kind, req.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "unknown_agent",
			"agent %q does not exist in workspace %s (keyhole get agents lists them)", req.Name, ws.Name)
	}
	if err != nil {
		return nil, err
	}
	def, err := agent.Decode([]byte(obj.Spec))
	if err != nil {
		return nil, fmt.Errorf("stored agent %s: %w", req.Name, err)
	}
	var args AgentArgs
	if err := json.Unmarshal(req.Args, &args); err != nil || args.Message == "" {
		return nil, fault.New(fault.Invalid, "invalid_args",
			"an agent job's args need a message: {\"message\": \"did Acme pay?\"}")
	}
	return &Plan{Spec: def}, nil
}

// AgentExecutor runs agent jobs: the model loop in this trusted process,
// every tool call through the broker, the model's key opened here and sent
// only to the model.
type AgentExecutor struct {
	Runner    *agent.Runner
	Broker    *broker.Broker
	Resources *resource.Service
	Audit     *audit.Log
}

// Execute runs one agent job.
func (e *AgentExecutor) Execute(ctx context.Context, r *Run) store.JobOutcome {
	def, err := agent.Decode([]byte(r.Job.Spec))
	if err != nil {
		return failed("stored agent does not decode: " + err.Error())
	}
	var args AgentArgs
	if err := json.Unmarshal([]byte(r.Job.Args), &args); err != nil || args.Message == "" {
		return failed("the job's args have no message")
	}
	caller := oidc.JobClaims{Workspace: r.Workspace.Name, JobID: r.Job.ID, JobKind: agent.Kind,
		JobName: def.Name, Trigger: r.Job.Trigger}
	ctx = oidc.WithClaims(ctx, caller)

	llm, err := e.Resources.Open(ctx, r.Workspace.ID, def.LLM)
	if err != nil {
		return failed(fmt.Sprintf("open the model's resource %s: %v", def.LLM, err))
	}
	grant := &broker.Grant{Workspace: r.Workspace, Actor: "job:" + r.Job.ID, Toolset: def.Toolset,
		Caller: caller, Detail: map[string]any{"job_id": r.Job.ID, "agent": def.Name}}
	in := &agent.Input{Agent: def, Message: args.Message, LLM: &tool.Credential{Path: llm.Path,
		Type: llm.Type, Fields: llm.Fields, SecretFields: llm.SecretFields, AllowedHosts: llm.AllowedHosts},
		OnStep: func(s agent.Step) { logStep(r, s) }}
	if def.Toolset != "" {
		in.Tools = agent.ToolFuncs{
			ListTools: func(ctx context.Context) ([]*tool.Tool, error) { return e.Broker.Tools(ctx, grant) },
			CallTool: func(ctx context.Context, name string, a json.RawMessage) (*tool.Result, error) {
				return e.Broker.Call(ctx, grant, name, a)
			},
		}
		in.Secrets = e.toolSecrets(ctx, grant)
	}

	tr, err := e.Runner.Run(ctx, in)
	clear(llm.Fields)
	return e.outcome(r, def, tr, err)
}

// toolSecrets collects the secrets of the resources the toolset's tools use,
// so that the transcript and the model never carry one.
func (e *AgentExecutor) toolSecrets(ctx context.Context, g *broker.Grant) []string {
	tools, err := e.Broker.Tools(ctx, g)
	if err != nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, t := range tools {
		for _, p := range t.Resources() {
			if seen[p] {
				continue
			}
			seen[p] = true
			c, err := e.Resources.Open(ctx, g.Workspace.ID, p)
			if err != nil {
				continue
			}
			tc := tool.Credential{Fields: c.Fields, SecretFields: c.SecretFields}
			out = append(out, tc.Secrets()...)
		}
	}
	return out
}

// outcome turns a finished run into the job's outcome: the answer as the
// result, the transcript kept with the job.
func (e *AgentExecutor) outcome(r *Run, def *agent.Definition, tr *agent.Transcript, err error) store.JobOutcome {
	o := store.JobOutcome{State: store.JobSucceeded, ExitCode: 0}
	if tr != nil {
		b, _ := json.Marshal(tr)
		o.Transcript = string(b)
		answer, _ := json.Marshal(tr.Answer)
		o.Result = string(answer)
		usage, _ := json.Marshal(map[string]any{"turns": tr.Turns, "input_tokens": tr.Usage.InputTokens,
			"output_tokens": tr.Usage.OutputTokens, "wall_ms": time.Duration(tr.Duration).Milliseconds()})
		o.Usage = string(usage)
	}
	var rerr *agent.RunError
	switch {
	case err == nil:
	case errors.As(err, &rerr) && rerr.Reason == agent.StopTimeout:
		o.State, o.Reason, o.ExitCode = store.JobTimedOut, "the agent ran past its timeout", 1
	case errors.As(err, &rerr) && rerr.Reason == agent.StopCancelled:
		o.State, o.Reason, o.ExitCode = store.JobCancelled, "cancelled", 1
	case errors.As(err, &rerr):
		o.State, o.ExitCode = store.JobFailed, 1
		o.Reason = fmt.Sprintf("the agent stopped: %s", rerr.Reason)
		if tr != nil && tr.Error != "" {
			o.Reason += ": " + tr.Error
		}
	default:
		o.State, o.Reason, o.ExitCode = store.JobFailed, err.Error(), 1
	}
	rec := audit.Record{Workspace: r.Workspace.Name, Actor: "job:" + r.Job.ID, Action: "agent.run",
		Target: def.Name, Outcome: audit.OK, Detail: map[string]any{"llm": def.LLM,
			"provider": def.Provider, "model": def.Model, "state": o.State}}
	if tr != nil {
		rec.Detail["turns"], rec.Detail["tokens"] = tr.Turns, tr.Usage.Total()
	}
	if o.State != store.JobSucceeded {
		rec.Outcome = audit.Failed
	}
	e.Audit.Enqueue(rec)
	return o
}

// logStep writes one step of the run to the job's log, one line each, so
// that keyhole agent run --follow can show the run as it goes.
func logStep(r *Run, s agent.Step) {
	switch s.Kind {
	case agent.StepModel:
		names := make([]string, 0, len(s.ToolCalls))
		for _, c := range s.ToolCalls {
			names = append(names, c.Name)
		}
		if len(names) > 0 {
			r.Notef("turn %d: the model calls %v (%s)", s.Turn, names, s.Duration)
		} else {
			r.Notef("turn %d: the model answers (%s)", s.Turn, s.Duration)
		}
	case agent.StepTool:
		status := "ok"
		if s.IsError {
			status = "error"
		}
		if s.Call != nil {
			r.Notef("turn %d: %s %s (%s)", s.Turn, s.Call.Name, status, s.Duration)
		}
	case agent.StepEnd:
		r.Notef("stopped: %s", s.Stop)
	}
}
