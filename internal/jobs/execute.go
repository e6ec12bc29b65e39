package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyhole/keyhole/internal/broker"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/store"
)

// maxResultBytes caps a job's result.
const maxResultBytes = 1 << 20

// ScriptExecutor runs script and command jobs in the sandbox.
type ScriptExecutor struct {
	// DataDir holds job folders (jobs/) and volumes (volumes/).
	DataDir string
	// RunDir holds the brokers' Unix sockets; private to this process.
	RunDir     string
	Runner     *sandbox.Runner
	Broker     *broker.Broker
	DB         *store.DB
	MountAllow []string
	Logger     *slog.Logger
	// IDToken signs a job's identity token for an audience; scripts that ask
	// for one fail without it.
	IDToken func(ctx context.Context, r *Run, audience string) (string, error)
}

// Execute runs one script job.
func (e *ScriptExecutor) Execute(ctx context.Context, r *Run) store.JobOutcome {
	sc, err := DecodeScript([]byte(r.Job.Spec))
	if err != nil {
		return failed(fmt.Sprintf("stored script does not decode: %v", err))
	}
	if err := sc.Check(e.MountAllow); err != nil {
		return failed("this worker refuses the script: " + err.Error())
	}
	if busy, err := e.leaseVolumes(ctx, r, sc); err != nil || busy != "" {
		if err != nil {
			return failed(err.Error())
		}
		return store.JobOutcome{Retry: true, Uncounted: true, RetryAt: time.Now().Add(time.Second),
			Reason: "waiting for volume " + busy + ", which another job is using"}
	}

	dir, err := e.prepareDir(r, sc)
	if err != nil {
		return failed(err.Error())
	}
	defer os.RemoveAll(dir)
	if err := e.writeIDToken(ctx, r, sc, dir); err != nil {
		return failed(err.Error())
	}

	spec, err := e.spec(r, sc, dir)
	if err != nil {
		return failed(err.Error())
	}
	if spec.Net == sandbox.NetBroker {
		stop, err := e.startBroker(ctx, r, sc, spec)
		if err != nil {
			return failed("start the job's broker: " + err.Error())
		}
		defer stop()
	}

	out := &tail{n: maxResultBytes}
	spec.Stdout = io.MultiWriter(r.Stdout, out)
	spec.Stderr = r.Stderr
	res, err := e.Runner.Run(ctx, spec)
	if err != nil {
		return startFailure(err)
	}
	o := outcomeOf(res)
	if o.State == store.JobSucceeded || o.State == store.JobFailed {
		result, rerr := readResult(dir, out.String())
		if rerr != nil {
			o.State, o.Reason = store.JobFailed, rerr.Error()
		}
		o.Result = result
	}
	if o.State == store.JobFailed && r.Job.Attempt <= sc.Retries {
		o.Retry, o.RetryAt = true, time.Now().Add(backoff(r.Job.Attempt))
		r.Notef("keyhole: attempt %d failed (%s); retrying", r.Job.Attempt, o.Reason)
	}
	return o
}

func failed(reason string) store.JobOutcome {
	return store.JobOutcome{State: store.JobFailed, Reason: reason, ExitCode: -1}
}

func backoff(attempt int) time.Duration {
	return min(time.Duration(1<<min(attempt, 8))*time.Second, 5*time.Minute)
}

// startFailure describes a sandbox that could not start.
func startFailure(err error) store.JobOutcome {
	o := failed("the sandbox could not start the command: " + err.Error())
	var se *sandbox.StartError
	if errors.As(err, &se) {
		o.ExitCode = se.ExitStatus()
	}
	return o
}

// outcomeOf turns a sandbox result into a job outcome.
func outcomeOf(res *sandbox.Result) store.JobOutcome {
	usage, _ := json.Marshal(map[string]any{"wall_ms": res.Wall.Milliseconds(),
		"cpu_ms": res.CPU.Milliseconds(), "peak_memory_bytes": res.PeakMemory})
	o := store.JobOutcome{ExitCode: res.Status(), Usage: string(usage)}
	switch {
	case res.Killed == sandbox.KilledTimeout:
		o.State, o.Reason = store.JobTimedOut, "killed: timeout"
	case res.Killed == sandbox.KilledCancelled:
		o.State, o.Reason = store.JobCancelled, "cancelled"
	case res.Killed != sandbox.KilledNone:
		o.State, o.Reason = store.JobFailed, "killed: "+string(res.Killed)
	case res.ExitCode == 0:
		o.State = store.JobSucceeded
	case res.Signal != 0:
		o.State, o.Reason = store.JobFailed, "killed by signal "+res.Signal.String()
	default:
		o.State, o.Reason = store.JobFailed, "exit status "+strconv.Itoa(res.ExitCode)
	}
	return o
}

// readResult returns the job's result: result.json if the script wrote
// one, else its trimmed standard output as a JSON string.
func readResult(dir, stdout string) (string, error) {
	f, err := os.Open(filepath.Join(dir, "result.json"))
	if errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(strings.TrimSpace(stdout))
		return string(b), nil
	}
	if err != nil {
		return "", fmt.Errorf("read result.json: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxResultBytes+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("read result.json: %w", err)
	case len(b) > maxResultBytes:
		return "", fmt.Errorf("result.json is larger than %d bytes", maxResultBytes)
	case !json.Valid(b):
		return "", errors.New("result.json is not valid JSON")
	}
	return string(b), nil
}

// prepareDir makes the job folder with the script's files and args.json.
func (e *ScriptExecutor) prepareDir(r *Run, sc *Script) (string, error) {
	dir := filepath.Join(e.DataDir, "jobs", r.Job.ID)
	os.RemoveAll(dir) // a previous attempt's
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create job folder: %w", err)
	}
	for name, content := range sc.Files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "args.json"), []byte(r.Job.Args), 0o600); err != nil {
		return "", err
	}
	return dir, nil
}

// writeIDToken gives a job that asked for it its identity token, in a file
// only the job can read.
func (e *ScriptExecutor) writeIDToken(ctx context.Context, r *Run, sc *Script, dir string) error {
	if sc.IDToken == nil {
		return nil
	}
	if e.IDToken == nil {
		return errors.New("this worker cannot sign identity tokens")
	}
	tok, err := e.IDToken(ctx, r, sc.IDToken.Audience)
	if err != nil {
		return fmt.Errorf("sign the job's identity token: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".keyhole"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ".keyhole", "id_token"), []byte(tok), 0o600)
}

// spec builds the sandbox spec of a run.
func (e *ScriptExecutor) spec(r *Run, sc *Script, dir string) (*sandbox.Spec, error) {
	limits, err := sc.SandboxLimits()
	if err != nil {
		return nil, err
	}
	env := []string{"KEYHOLE_JOB_ID=" + r.Job.ID, "KEYHOLE_WORKSPACE=" + r.Workspace.Name}
	for k, v := range sc.Env {
		env = append(env, k+"="+v)
	}
	spec := &sandbox.Spec{Command: sc.CommandLine(), Dir: dir, Env: env, Limits: limits,
		Net: sc.NetMode()}
	for _, m := range sc.Mounts {
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Source: m.Source, Target: m.Target,
			Writable: m.Mode == "rw"})
	}
	for _, v := range sc.Volumes {
		host := filepath.Join(e.DataDir, "volumes", strconv.FormatInt(r.Workspace.ID, 10), v.Name)
		if err := os.MkdirAll(host, 0o700); err != nil {
			return nil, fmt.Errorf("create volume %s: %w", v.Name, err)
		}
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Source: host, Target: v.Target,
			Writable: v.Mode != "ro"})
	}
	return spec, nil
}

// leaseVolumes takes the job's read-write volumes for itself. It returns the
// name of a volume another job holds, if any.
func (e *ScriptExecutor) leaseVolumes(ctx context.Context, r *Run, sc *Script) (string, error) {
	if !slices.ContainsFunc(sc.Volumes, func(v Volume) bool { return v.Mode != "ro" }) {
		return "", nil
	}
	until := time.Now().Add(time.Duration(sc.timeout()) + time.Minute)
	busy := ""
	err := e.DB.InTx(ctx, func(tx *store.Tx) error {
		for _, v := range sc.Volumes {
			if v.Mode == "ro" {
				continue
			}
			ok, err := tx.AcquireVolume(ctx, r.Workspace.ID, v.Name, r.Job.ID, until)
			if err != nil {
				return err
			}
			if !ok {
				busy = v.Name
				return errVolumeBusy
			}
		}
		return nil
	})
	if errors.Is(err, errVolumeBusy) {
		return busy, nil
	}
	if busy == "" && err == nil {
		r.heldVolumes = true
	}
	return "", err
}

var errVolumeBusy = errors.New("volume busy")

// startBroker serves the job's grant on a private Unix socket and returns a
// function that ends the grant and the server.
func (e *ScriptExecutor) startBroker(ctx context.Context, r *Run, sc *Script, spec *sandbox.Spec) (func(), error) {
	sock := filepath.Join(e.RunDir, r.Job.ID+".sock")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	os.Chmod(sock, 0o600)

	var ended atomic.Bool
	grant := &broker.Grant{Workspace: r.Workspace, Actor: "job:" + r.Job.ID, Toolset: sc.Toolset,
		Routes: sc.Routes, Expires: time.Now().Add(sc.timeout() + time.Minute),
		Detail: map[string]any{"job_id": r.Job.ID}}
	current := func() (*broker.Grant, error) {
		if ended.Load() {
			return nil, fault.New(fault.Forbidden, "grant_ended", "job %s has ended; its grant is gone", r.Job.ID)
		}
		return grant, nil
	}

	mux := http.NewServeMux()
	mux.Handle("/mcp", e.Broker.MCPHandler(func(context.Context, http.Header) (*broker.Grant, error) {
		return current()
	}))
	routes := e.Broker.RoutesHandler("/routes/", grant)
	mux.Handle("/routes/", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := current(); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		routes.ServeHTTP(w, req)
	}))
	logger := e.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	go srv.Serve(ln)

	spec.BrokerSocket = sock
	return func() {
		ended.Store(true)
		srv.Close()
		os.Remove(sock)
	}, nil
}

// ToolExecutor runs tool jobs: one call through the broker.
type ToolExecutor struct {
	Broker *broker.Broker
}

// Execute runs one tool job.
func (e *ToolExecutor) Execute(ctx context.Context, r *Run) store.JobOutcome {
	var spec toolSpec
	if err := json.Unmarshal([]byte(r.Job.Spec), &spec); err != nil {
		return failed("stored tool job does not decode: " + err.Error())
	}
	g := &broker.Grant{Workspace: r.Workspace, Actor: "job:" + r.Job.ID, AnyTool: true,
		Detail: map[string]any{"job_id": r.Job.ID}}
	res, err := e.Broker.Call(ctx, g, spec.Tool, json.RawMessage(r.Job.Args))
	if err != nil {
		return failed(err.Error())
	}
	o := store.JobOutcome{State: store.JobSucceeded, Result: string(res.Content), ExitCode: 0}
	if res.IsError {
		o.State, o.ExitCode = store.JobFailed, 1
		o.Reason = "the tool call failed"
		if res.Err != nil {
			o.Reason += ": " + res.Err.Error()
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		o.State = store.JobCancelled
	}
	return o
}
