package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/store"
)

// Lease timing. A worker renews its leases every heartbeat; a job whose
// lease lapses (its worker stopped) is reaped by any worker.
const (
	leaseFor  = 15 * time.Second
	heartbeat = time.Second
	reapEvery = 5 * time.Second
)

// Executor runs one kind of job.
type Executor interface {
	Execute(ctx context.Context, r *Run) store.JobOutcome
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, r *Run) store.JobOutcome

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, r *Run) store.JobOutcome { return f(ctx, r) }

// Run is one attempt of a job, as an executor sees it.
type Run struct {
	Job       *store.Job
	Workspace *store.Workspace
	// Stdout and Stderr are the job's log streams.
	Stdout, Stderr *streamWriter
	logs           *logSink
	heldVolumes    bool // the run leased volumes, to release when it ends
}

// Notef writes a line of keyhole's own to the job's log.
func (r *Run) Notef(format string, args ...any) { r.logs.notef(format, args...) }

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Concurrency is how many jobs run at once; default 4.
	Concurrency int
	// MaxLogBytes caps each job's kept output; DefaultMaxLogBytes when 0.
	MaxLogBytes int64
	// Retention is how long finished jobs are kept; 7 days when 0.
	Retention time.Duration
	// SoleWorker says this is the only worker of its database (SQLite):
	// jobs still marked running at start belong to a previous run of this
	// process and are handed back at once.
	SoleWorker bool
	// Logger receives the worker's logs; nil discards them.
	Logger *slog.Logger
}

// Worker claims jobs and runs them with the executors of their kinds.
type Worker struct {
	id        string
	db        *store.DB
	hub       *Hub
	cfg       WorkerConfig
	logger    *slog.Logger
	executors map[string]Executor

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
}

// errCancelled and errShutdown say why a job's context ended.
var (
	errCancelled = fmt.Errorf("cancelled")
	errShutdown  = fmt.Errorf("worker shutting down")
)

// NewWorker returns a worker with a fresh identity.
func NewWorker(db *store.DB, hub *Hub, cfg WorkerConfig) *Worker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxLogBytes <= 0 {
		cfg.MaxLogBytes = DefaultMaxLogBytes
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{id: auth.NewID("w_"), db: db, hub: hub, cfg: cfg, logger: cfg.Logger,
		executors: map[string]Executor{}, running: map[string]context.CancelCauseFunc{}}
}

// ID is the worker's identity in the jobs table.
func (w *Worker) ID() string { return w.id }

// Handle sets the executor of a job kind.
func (w *Worker) Handle(kind string, e Executor) { w.executors[kind] = e }

// Run claims and runs jobs until ctx ends, then waits for the jobs it is
// running to stop: they are told to stop and put back in the queue.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfg.SoleWorker {
		if err := w.db.Direct().RequeueWorkerJobs(ctx); err != nil {
			return fmt.Errorf("hand back the jobs of the previous run: %w", err)
		}
		w.reap(ctx)
	}
	w.logger.InfoContext(ctx, "jobs: worker started", "worker", w.id, "concurrency", w.cfg.Concurrency)

	var bg sync.WaitGroup
	bg.Go(func() { w.heartbeats(ctx) })
	bg.Go(func() { w.reaper(ctx) })

	var jobs sync.WaitGroup
	w.claimLoop(ctx, &jobs)

	w.mu.Lock()
	for _, cancel := range w.running {
		cancel(errShutdown)
	}
	w.mu.Unlock()
	jobs.Wait()
	bg.Wait()
	w.logger.Info("jobs: worker stopped", "worker", w.id)
	return nil
}

// claimLoop claims jobs while there are free slots, sleeping until the queue
// is notified or a poll interval passes.
func (w *Worker) claimLoop(ctx context.Context, jobs *sync.WaitGroup) {
	wake, unsubscribe := w.hub.Subscribe(topicQueued)
	defer unsubscribe()
	slots := make(chan struct{}, w.cfg.Concurrency)
	freed := make(chan struct{}, 1)
	for ctx.Err() == nil {
		free := w.cfg.Concurrency - len(slots)
		if free > 0 {
			claimed, err := w.db.ClaimJobs(ctx, w.id, free, time.Now().Add(leaseFor))
			if err != nil && ctx.Err() == nil {
				w.logger.ErrorContext(ctx, "jobs: claim failed", "error", err)
			}
			for _, j := range claimed {
				slots <- struct{}{}
				jobs.Go(func() {
					defer func() { <-slots }()
					w.execute(ctx, j)
					select {
					case freed <- struct{}{}:
					default:
					}
				})
			}
			if len(claimed) == free {
				continue
			}
		}
		select {
		case <-wake:
		case <-freed:
		case <-time.After(time.Second + time.Duration(rand.IntN(200))*time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// execute runs one claimed job and records its outcome.
func (w *Worker) execute(parent context.Context, j *store.Job) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer cancel(nil)
	w.mu.Lock()
	w.running[j.ID] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, j.ID)
		w.mu.Unlock()
	}()
	w.hub.Notify(ctx, jobTopic(j.ID))

	logs := newLogSink(w.db, w.hub, j.ID, w.cfg.MaxLogBytes, w.logger)
	run := &Run{Job: j, Workspace: &store.Workspace{ID: j.WorkspaceID, Name: j.Workspace},
		Stdout: logs.writer(StreamStdout), Stderr: logs.writer(StreamStderr), logs: logs}
	out := w.outcome(ctx, run)
	logs.close()

	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fcancel()
	ok, err := w.db.Direct().FinishJob(fctx, j.ID, w.id, out)
	switch {
	case err != nil:
		w.logger.ErrorContext(fctx, "jobs: recording the outcome failed", "job_id", j.ID, "error", err)
	case !ok:
		w.logger.WarnContext(fctx, "jobs: job was taken over after its lease lapsed; outcome dropped",
			"job_id", j.ID)
	}
	if run.heldVolumes {
		w.db.Direct().ReleaseVolumes(fctx, j.ID)
	}
	w.hub.Notify(fctx, jobTopic(j.ID))
	if out.Retry {
		w.hub.Notify(fctx, topicQueued)
	}
}

// outcome runs the job's executor and turns how its context ended into the
// job's state.
func (w *Worker) outcome(ctx context.Context, run *Run) store.JobOutcome {
	exec := w.executors[run.Job.Kind]
	if exec == nil {
		return store.JobOutcome{State: store.JobFailed, ExitCode: -1,
			Reason: fmt.Sprintf("this worker cannot run %s jobs", run.Job.Kind)}
	}
	out := exec.Execute(ctx, run)
	switch context.Cause(ctx) {
	case errCancelled:
		out.State, out.Reason, out.Retry = store.JobCancelled, "cancelled while running", false
	case errShutdown:
		out = store.JobOutcome{Retry: true, Uncounted: true, Reason: "its worker shut down; queued again"}
	}
	if out.Retry && out.RetryAt.IsZero() {
		out.RetryAt = time.Now()
	}
	return out
}

// heartbeats renews this worker's leases and stops jobs whose cancellation
// was asked for.
func (w *Worker) heartbeats(ctx context.Context) {
	cancels, unsubscribe := w.hub.Subscribe(cancelTopic)
	defer unsubscribe()
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-cancels:
		case <-ctx.Done():
			return
		}
		ids, err := w.db.Direct().ExtendLeases(ctx, w.id, time.Now().Add(leaseFor))
		if err != nil {
			w.logger.WarnContext(ctx, "jobs: lease renewal failed", "error", err)
			continue
		}
		w.mu.Lock()
		for _, id := range ids {
			if cancel := w.running[id]; cancel != nil {
				cancel(errCancelled)
			}
		}
		w.mu.Unlock()
	}
}

// reaper hands back jobs whose workers died, and deletes finished jobs past
// their retention.
func (w *Worker) reaper(ctx context.Context) {
	last := time.Time{}
	for {
		select {
		case <-time.After(reapEvery + time.Duration(rand.IntN(1000))*time.Millisecond):
		case <-ctx.Done():
			return
		}
		w.reap(ctx)
		if time.Since(last) > 10*time.Minute {
			last = time.Now()
			n, err := w.db.Direct().DeleteJobsBefore(ctx, time.Now().Add(-w.cfg.Retention))
			if err == nil && n > 0 {
				w.logger.InfoContext(ctx, "jobs: deleted finished jobs past retention", "jobs", n)
			}
		}
	}
}

func (w *Worker) reap(ctx context.Context) {
	requeued, failed, err := w.db.Direct().ReapJobs(ctx, time.Now())
	if err != nil {
		w.logger.WarnContext(ctx, "jobs: reaping failed", "error", err)
		return
	}
	if requeued+failed > 0 {
		w.logger.WarnContext(ctx, "jobs: took back jobs of a stopped worker",
			"requeued", requeued, "failed", failed)
		w.hub.Notify(ctx, topicQueued)
	}
}
