package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhole/keyhole/internal/agent"
	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/broker"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/oidc"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/ttlcache"
	"github.com/keyhole/keyhole/internal/vaultref"
)

// Config is what a server needs to start. Zero values take the defaults
// documented on each field.
type Config struct {
	// Listen is the TCP address to serve on; default 127.0.0.1:8080.
	Listen string
	// DataDir holds the SQLite database, the generated master key and the
	// first admin token; default ./.keyhole.
	DataDir string
	// DB is the database address: empty for SQLite in DataDir, or a
	// postgres:// URL.
	DB string
	// KeyURL names the key service that wraps data keys; empty for the
	// master key file in DataDir.
	KeyURL string
	// PreviousKeyURL names the key service data keys were wrapped with before
	// a move to KeyURL; "keyhole key rotate --kek" finishes the move.
	PreviousKeyURL string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// ShutdownTimeout bounds a graceful shutdown; default 15s.
	ShutdownTimeout time.Duration
	// Transport sends the broker's upstream requests; nil for keyhole's
	// guarded default. Tests pass one that trusts a local TLS server.
	Transport http.RoundTripper

	// ExternalURL is how others reach this server, such as
	// https://keyhole.example.com: the issuer of its identity tokens.
	// Default http://LISTEN.
	ExternalURL string

	// Workers is how many jobs this process runs at once; 0 runs none.
	Workers int
	// WorkerOnly runs jobs and nothing else: no API, no first-start setup
	// (keyhole worker).
	WorkerOnly bool
	// MountAllow lists the host folders scripts may mount.
	MountAllow []string
	// JobRetention is how long finished jobs are kept; 7 days when 0.
	JobRetention time.Duration
	// MaxJobLogBytes caps each job's kept output; 10 MiB when 0.
	MaxJobLogBytes int64
	// AgentStream makes agents' model calls streamed ones.
	AgentStream bool
	// SandboxInit is a keyhole-sandbox-init program run as every
	// sandbox's init instead of this binary, which starts faster; empty
	// runs this binary. It must come from the same keyhole version.
	SandboxInit string
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = ".keyhole"
	}
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ExternalURL == "" {
		c.ExternalURL = "http://" + c.Listen
	}
	c.ExternalURL = strings.TrimSuffix(c.ExternalURL, "/")
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
}

// tokenCacheTTL bounds how long a token revoked on another server keeps
// working here.
const tokenCacheTTL = time.Second

// AdminTokenFile is the name of the file, in the data directory, that holds
// the admin token created on first start.
const AdminTokenFile = "admin.token"

// DefaultWorkspace is the workspace created on first start.
const DefaultWorkspace = "default"

// Server is a running keyhole server.
type Server struct {
	cfg    Config
	logger *slog.Logger

	kek       secrets.KeyService
	previous  secrets.KeyService
	db        *store.DB
	keys      *secrets.Keyring
	audit     *audit.Log
	resources *resource.Service
	broker    *broker.Broker
	issuer    *oidc.Issuer
	vault     *vaultref.Resolver
	hub       *jobs.Hub
	jobs      *jobs.Service
	worker    *jobs.Worker
	runner    *sandbox.Runner
	mcp       mcpHandlers
	triggers  *triggers
	metrics   *metrics
	kinds     map[string]*Kind

	handler http.Handler
	ready   atomic.Bool

	// tokens caches token records by hash for a second: a revocation on
	// this server clears it at once, one on another server takes effect
	// within tokenCacheTTL.
	tokens *ttlcache.Cache[string, *store.Token]

	wsMu       sync.RWMutex
	workspaces map[string]*store.Workspace // by name; workspaces are never renamed

	closers []func()
}

// New opens the key service and the database, checks that the stored data
// keys open, and creates the default workspace and admin token on first
// start. The returned server is not serving yet; call Run.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	s := &Server{cfg: cfg, logger: cfg.Logger, workspaces: map[string]*store.Workspace{},
		tokens: ttlcache.New[string, *store.Token](tokenCacheTTL, 10000)}
	if err := s.open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) open(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", s.cfg.DataDir, err)
	}

	kek, desc, err := secrets.OpenKeyService(ctx, s.cfg.KeyURL, s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.kek = kek
	s.closers = append(s.closers, func() { kek.Close() })
	opts := &secrets.KeyringOptions{Description: desc}
	if s.cfg.PreviousKeyURL != "" {
		prev, _, err := secrets.OpenKeyService(ctx, s.cfg.PreviousKeyURL, s.cfg.DataDir)
		if err != nil {
			return fmt.Errorf("previous key service: %w", err)
		}
		s.previous, opts.Previous = prev, prev
		s.closers = append(s.closers, func() { prev.Close() })
	}

	s.db, err = store.Open(ctx, s.cfg.DB, &store.Options{DataDir: s.cfg.DataDir, Logger: s.logger})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() { s.db.Close() })
	s.logger.InfoContext(ctx, "server: database ready", "database", s.db.String())

	s.keys, err = secrets.NewKeyring(ctx, s.db, kek, opts)
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "server: key service ready", "key_service", desc)

	s.audit = audit.New(s.db, s.logger)
	s.closers = append(s.closers, s.audit.Close)
	s.resources = resource.NewService(s.db, s.keys, s.audit, s.logger)
	s.issuer, err = oidc.NewIssuer(s.db, kek, s.cfg.ExternalURL,
		&oidc.Options{PreviousKEK: s.previous, Logger: s.logger})
	if err != nil {
		return err
	}
	s.vault = vaultref.NewResolver(s.issuer, &vaultref.Options{Logger: s.logger})
	s.resources.SetExternal(s.openVaultValue)
	s.resources.SetReferenceCheck(s.checkVaultReference)
	s.metrics = newMetrics()
	s.broker = broker.New(s.db, s.resources, s.audit, &broker.Options{
		Transport: s.cfg.Transport, Registerer: s.metrics.registry, Logger: s.logger})
	s.kinds = s.configKinds()
	s.hub = jobs.NewHub(s.db, s.logger)
	s.jobs = jobs.NewService(s.db, s.hub, s.audit, s.cfg.MountAllow, s.logger)
	s.jobs.Register(jobs.KindAgent, jobs.ResolveAgent)
	if err := s.openWorker(ctx); err != nil {
		return err
	}
	if s.cfg.WorkerOnly {
		return nil
	}

	if err := s.bootstrap(ctx); err != nil {
		return err
	}
	s.triggers = newTriggers(s)
	s.handler = s.routes()
	return nil
}

// openWorker prepares the job worker, when this process runs jobs.
func (s *Server) openWorker(ctx context.Context) error {
	if s.cfg.Workers <= 0 {
		return nil
	}
	runDir, err := os.MkdirTemp("", "keyhole-run-")
	if err != nil {
		return fmt.Errorf("create the brokers' socket folder: %w", err)
	}
	s.closers = append(s.closers, func() { os.RemoveAll(runDir) })
	// Inits started ahead take the init's start-up and the cgroup join off
	// a job's path; one per job slot covers a burst as wide as the pool.
	s.runner = &sandbox.Runner{Logger: s.logger, Warm: true, Spares: s.cfg.Workers}
	s.closers = append(s.closers, func() { s.runner.Close() })
	if err := s.chooseSandboxInit(ctx); err != nil {
		return err
	}

	s.worker = jobs.NewWorker(s.db, s.hub, jobs.WorkerConfig{Concurrency: s.cfg.Workers,
		MaxLogBytes: s.cfg.MaxJobLogBytes, Retention: s.cfg.JobRetention,
		SoleWorker: s.db.Dialect() == store.SQLite, Logger: s.logger})
	script := &jobs.ScriptExecutor{DataDir: s.cfg.DataDir, RunDir: runDir, Runner: s.runner,
		Broker: s.broker, DB: s.db, MountAllow: s.cfg.MountAllow, Logger: s.logger,
		IDToken: s.jobIDToken}
	s.worker.Handle(jobs.KindScript, script)
	s.worker.Handle(jobs.KindCommand, script)
	s.worker.Handle(jobs.KindTool, &jobs.ToolExecutor{Broker: s.broker})
	s.worker.Handle(jobs.KindAgent, &jobs.AgentExecutor{Broker: s.broker, Resources: s.resources,
		Audit: s.audit, Runner: agent.NewRunner(&agent.RunnerOptions{Transport: s.cfg.Transport,
			Stream: s.cfg.AgentStream, Logger: s.logger})})
	return nil
}

// Handler returns the server's HTTP handler, for tests that serve it
// themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves HTTP on cfg.Listen until ctx ends, then shuts down gracefully:
// it stops accepting connections and waits for requests in flight.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// background runs the job worker and the notification hub until ctx ends,
// and returns a function that waits for them to stop.
func (s *Server) background(ctx context.Context) func() {
	var wg sync.WaitGroup
	wg.Go(func() { s.hub.Run(ctx) })
	if s.worker != nil {
		wg.Go(func() {
			if err := s.worker.Run(ctx); err != nil {
				s.logger.ErrorContext(ctx, "server: job worker stopped", "error", err)
			}
		})
	}
	return wg.Wait
}

// RunWorker runs jobs until ctx ends: keyhole worker.
func (s *Server) RunWorker(ctx context.Context) error {
	if s.worker == nil {
		return errors.New("this process runs no workers: give --concurrency 1 or more")
	}
	wait := s.background(ctx)
	<-ctx.Done()
	wait()
	return nil
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bgctx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	waitBackground := s.background(bgctx)
	var triggersDone sync.WaitGroup
	triggersDone.Go(func() { s.triggers.run(bgctx) })
	defer func() {
		stopBackground()
		triggersDone.Wait()
		waitBackground()
	}()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.ready.Store(true)
	s.logger.InfoContext(ctx, "server: listening", "address", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	s.ready.Store(false)
	s.logger.Info("server: shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down: %w", err)
	}
	s.logger.Info("server: stopped")
	return nil
}

// Close releases what New opened, in reverse order.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// AdminTokenPath is where the first admin token is written.
func (s *Server) AdminTokenPath() string {
	return filepath.Join(s.cfg.DataDir, AdminTokenFile)
}

// chooseSandboxInit picks the program sandboxes start from: --sandbox-init
// when given (refusing to start if it does not work), else a
// keyhole-sandbox-init installed beside this binary (ignored, with a
// warning, if it does not work), else this binary.
func (s *Server) chooseSandboxInit(ctx context.Context) error {
	path, explicit := s.cfg.SandboxInit, s.cfg.SandboxInit != ""
	if !explicit {
		if path = sandbox.SiblingInit(); path == "" {
			s.logger.InfoContext(ctx, "server: sandboxes start from keyhole's own binary, "+
				"about 15 ms more per sandbox; build keyhole-sandbox-init beside it "+
				"(go build -o DIR ./cmd/...) or name one with --sandbox-init")
			return nil
		}
	}
	if err := checkSandboxInit(ctx, path); err != nil {
		if explicit {
			return err
		}
		s.logger.WarnContext(ctx, "server: not using the sandbox init beside keyhole", "error", err)
		return nil
	}
	s.runner.InitPath = path
	s.logger.InfoContext(ctx, "server: sandboxes start from a separate init", "sandbox_init", path)
	return nil
}

// checkSandboxInit refuses an init program that others could replace, and
// runs one sandbox through it, so that a wrong path or an init of another
// keyhole version stops the start instead of every job.
func checkSandboxInit(ctx context.Context, path string) error {
	bad := func(why string) error {
		return fmt.Errorf("--sandbox-init %s: %s; build it with "+
			"go build -o PATH ./cmd/keyhole-sandbox-init from this keyhole's source", path, why)
	}
	if err := sandbox.CheckInitProgram(path); err != nil {
		return fmt.Errorf("--sandbox-init: %w", err)
	}
	if sandbox.Probe() != nil {
		return nil // jobs will report that the kernel refuses sandboxes
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r := &sandbox.Runner{InitPath: path} // its own: no spare of a bad init stays behind
	defer r.Close()
	res, err := r.Run(ctx, &sandbox.Spec{Command: []string{"/bin/true"}})
	if err != nil {
		return bad(fmt.Sprintf("a sandbox does not start with it: %v", err))
	}
	if res.ExitCode != 0 {
		return bad(fmt.Sprintf("/bin/true exited %d in a sandbox started with it", res.ExitCode))
	}
	return nil
}
