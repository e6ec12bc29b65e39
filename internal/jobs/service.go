package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// Job kinds.
const (
	KindTool    = "tool"    // one tool call
	KindCommand = "command" // an ad-hoc command in the sandbox
	KindAgent   = "agent"   // an agent run
)

// crashAttempts is how many times a job whose worker died is run again, on
// top of the retries its definition asks for.
const crashAttempts = 2

// Resolver turns a request to run a named thing into the job's frozen spec.
// It runs inside the transaction that queues the job.
type Resolver func(ctx context.Context, tx *store.Tx, ws *store.Workspace, req *Request) (*Plan, error)

// Plan is what a Resolver decides about a job.
type Plan struct {
	Spec    any // marshalled to JSON and stored with the job
	Retries int
}

// Request asks to queue a job.
type Request struct {
	Kind    string          `json:"kind"`
	Name    string          `json:"name,omitempty"`
	Args    json.RawMessage `json:"args,omitempty"`
	Script  *Script         `json:"script,omitempty"` // for kind command
	Trigger string          `json:"trigger,omitempty"`
	Actor   string          `json:"-"`
}

// Service queues jobs and reads them back, for the API. Workers run them.
type Service struct {
	db         *store.DB
	hub        *Hub
	audit      *audit.Log
	logger     *slog.Logger
	resolvers  map[string]Resolver
	mountAllow []string
}

// NewService returns a Service. mountAllow is the operator's --mount-allow.
func NewService(db *store.DB, hub *Hub, log *audit.Log, mountAllow []string, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: db, hub: hub, audit: log, logger: logger, mountAllow: mountAllow,
		resolvers: map[string]Resolver{}}
	s.resolvers[KindScript] = s.resolveScript
	s.resolvers[KindCommand] = s.resolveCommand
	s.resolvers[KindTool] = resolveTool
	return s
}

// Register adds a resolver for a job kind, such as agent.
func (s *Service) Register(kind string, r Resolver) { s.resolvers[kind] = r }

// Enqueue checks a request and queues its job.
func (s *Service) Enqueue(ctx context.Context, ws *store.Workspace, req *Request) (*store.Job, error) {
	var j *store.Job
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		j, err = s.EnqueueTx(ctx, tx, ws, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.NotifyQueued(ctx)
	return j, nil
}

// EnqueueTx queues a job inside tx, so that it is queued if and only if tx
// commits. The caller calls NotifyQueued after the commit.
func (s *Service) EnqueueTx(ctx context.Context, tx *store.Tx, ws *store.Workspace,
	req *Request) (*store.Job, error) {
	resolve := s.resolvers[req.Kind]
	if resolve == nil {
		return nil, fault.New(fault.Invalid, "unknown_kind",
			"unknown job kind %q: use script, tool, command or agent", req.Kind)
	}
	if len(req.Args) == 0 {
		req.Args = json.RawMessage("{}")
	}
	if !json.Valid(req.Args) {
		return nil, fault.New(fault.Invalid, "invalid_args", "args must be a JSON value")
	}

	j := &store.Job{ID: auth.NewID("j_"), WorkspaceID: ws.ID, Workspace: ws.Name,
		Kind: req.Kind, Name: req.Name, Args: string(req.Args), Trigger: req.Trigger,
		CreatedBy: req.Actor}
	plan, err := resolve(ctx, tx, ws, req)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(plan.Spec)
	if err != nil {
		return nil, err
	}
	j.Spec, j.MaxAttempts, j.Name = string(spec), 1+plan.Retries+crashAttempts, req.Name
	if err := tx.InsertJob(ctx, j); err != nil {
		return nil, err
	}
	err = s.audit.AppendTx(ctx, tx, audit.Record{Workspace: ws.Name, Actor: req.Actor,
		Action: "job.queue", Target: j.ID,
		Detail: map[string]any{"kind": j.Kind, "name": j.Name, "trigger": j.Trigger}})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// NotifyQueued wakes the workers after jobs were queued.
func (s *Service) NotifyQueued(ctx context.Context) { s.hub.Notify(ctx, topicQueued) }

// resolveScript freezes a script's current definition into the job and
// checks the arguments against its input schema.
func (s *Service) resolveScript(ctx context.Context, tx *store.Tx, ws *store.Workspace, req *Request) (*Plan, error) {
	obj, err := tx.Object(ctx, ws.ID, KindScript, req.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "unknown_script",
			"script %q does not exist in workspace %s (keyhole get scripts lists them)", req.Name, ws.Name)
	}
	if err != nil {
		return nil, err
	}
	sc, err := DecodeScript([]byte(obj.Spec))
	if err != nil {
		return nil, fmt.Errorf("stored script %s: %w", req.Name, err)
	}
	if err := checkArgs(sc, req.Args); err != nil {
		return nil, err
	}
	return &Plan{Spec: sc, Retries: sc.Retries}, nil
}

// resolveCommand checks an ad-hoc command.
func (s *Service) resolveCommand(ctx context.Context, tx *store.Tx, ws *store.Workspace, req *Request) (*Plan, error) {
	sc := req.Script
	if sc == nil {
		return nil, fault.New(fault.Invalid, "", "a command job needs a command")
	}
	sc.Kind = KindScript
	if sc.Name == "" {
		sc.Name = "command"
	}
	if len(sc.Mounts) > 0 || len(sc.Volumes) > 0 {
		return nil, fault.New(fault.Invalid, "",
			"ad-hoc commands take no mounts or volumes; define a script for that")
	}
	if err := sc.Check(nil); err != nil {
		return nil, fault.Wrap(fault.Invalid, "invalid_command", err, err.Error())
	}
	if err := checkGrants(ctx, tx, ws, sc); err != nil {
		return nil, err
	}
	req.Name = sc.Name
	return &Plan{Spec: sc}, nil
}

// checkGrants checks that a script's toolset and routes exist.
func checkGrants(ctx context.Context, tx *store.Tx, ws *store.Workspace, sc *Script) error {
	check := func(kind, name string) error {
		_, err := tx.Object(ctx, ws.ID, kind, name)
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.Invalid, "", "%s %q does not exist", kind, name)
		}
		return err
	}
	if sc.Toolset != "" {
		if err := check("toolset", sc.Toolset); err != nil {
			return err
		}
	}
	for _, r := range sc.Routes {
		if err := check("route", r); err != nil {
			return err
		}
	}
	return nil
}

func checkArgs(sc *Script, args json.RawMessage) error {
	in, err := sc.InputSchema()
	if err != nil || in == nil {
		return err
	}
	if err := in.ValidateJSON(args); err != nil {
		return fault.Wrap(fault.Invalid, "invalid_args", err,
			fmt.Sprintf("args do not match script %s's input: %v", sc.Name, err))
	}
	return nil
}

// toolSpec is the frozen spec of a tool job.
type toolSpec struct {
	Tool string `json:"tool"`
}

func resolveTool(ctx context.Context, tx *store.Tx, ws *store.Workspace, req *Request) (*Plan, error) {
	if _, err := tx.Object(ctx, ws.ID, "tool", req.Name); errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "unknown_tool", "tool %q does not exist", req.Name)
	} else if err != nil {
		return nil, err
	}
	return &Plan{Spec: toolSpec{Tool: req.Name}}, nil
}

// Get returns a job of a workspace.
func (s *Service) Get(ctx context.Context, ws *store.Workspace, id string) (*store.Job, error) {
	j, err := s.db.Direct().Job(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.WorkspaceID != ws.ID) {
		return nil, fault.New(fault.NotFound, "", "job %s does not exist in workspace %s", id, ws.Name)
	}
	return j, err
}

// Wait returns a job once it has finished, or as it is when max has passed
// or ctx ends.
func (s *Service) Wait(ctx context.Context, ws *store.Workspace, id string, max time.Duration) (*store.Job, error) {
	ch, unsubscribe := s.hub.Subscribe(jobTopic(id))
	defer unsubscribe()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for {
		j, err := s.Get(ctx, ws, id)
		if err != nil || store.JobDone(j.State) {
			return j, err
		}
		select {
		case <-ch:
		case <-time.After(250 * time.Millisecond):
		case <-deadline.C:
			return j, nil
		case <-ctx.Done():
			return j, nil
		}
	}
}

// List lists a workspace's jobs, newest first.
func (s *Service) List(ctx context.Context, ws *store.Workspace, f store.JobFilter) ([]*store.Job, error) {
	f.WorkspaceID = ws.ID
	return s.db.Direct().Jobs(ctx, f)
}

// Cancel cancels a queued job at once, or asks its worker to stop a running
// one; it returns the job as it is then.
func (s *Service) Cancel(ctx context.Context, ws *store.Workspace, id, actor string) (*store.Job, error) {
	if _, err := s.Get(ctx, ws, id); err != nil {
		return nil, err
	}
	if _, err := s.db.Direct().CancelJob(ctx, id); err != nil {
		return nil, err
	}
	s.audit.Enqueue(audit.Record{Workspace: ws.Name, Actor: actor, Action: "job.cancel", Target: id})
	s.hub.Notify(ctx, cancelTopic)
	s.hub.Notify(ctx, jobTopic(id))
	return s.Get(ctx, ws, id)
}

// cancelTopic wakes workers to look for cancel requests at once.
const cancelTopic = "cancel"

// Logs returns a job's log chunks after seq.
func (s *Service) Logs(ctx context.Context, ws *store.Workspace, id string, after int64) ([]store.JobLog, error) {
	if _, err := s.Get(ctx, ws, id); err != nil {
		return nil, err
	}
	return s.db.Direct().JobLogs(ctx, id, after, 1000)
}

// Follow calls emit with each log chunk of a job as it arrives, until the
// job has finished and every chunk was sent, or ctx ends. It returns the
// job as it last saw it.
func (s *Service) Follow(ctx context.Context, ws *store.Workspace, id string, after int64,
	emit func(store.JobLog) error) (*store.Job, error) {
	ch, unsubscribe := s.hub.Subscribe(jobTopic(id))
	defer unsubscribe()
	for {
		j, err := s.Get(ctx, ws, id)
		if err != nil {
			return nil, err
		}
		logs, err := s.db.Direct().JobLogs(ctx, id, after, 1000)
		if err != nil {
			return j, err
		}
		for _, l := range logs {
			if err := emit(l); err != nil {
				return j, err
			}
			after = l.Seq
		}
		if len(logs) == 1000 {
			continue
		}
		if store.JobDone(j.State) {
			return j, nil
		}
		select {
		case <-ch:
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return j, ctx.Err()
		}
	}
}
