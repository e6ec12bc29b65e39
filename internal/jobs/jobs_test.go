package jobs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/latency"
	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		os.Exit(sandbox.InitMain())
	}
	os.Exit(testpg.Run(m))
}

func TestScriptCheck(t *testing.T) {
	t.Parallel()
	allow := []string{"/opt/agents"}
	cases := []struct {
		name string
		s    jobs.Script
		want string
	}{
		{"ok", jobs.Script{Name: "a", Run: "true"}, ""},
		{"no command", jobs.Script{Name: "a"}, "give run"},
		{"both", jobs.Script{Name: "a", Run: "x", Command: []string{"y"}}, "not both"},
		{"escaping file", jobs.Script{Name: "a", Run: "x", Files: map[string]string{"../x": ""}}, "relative path"},
		{"keyhole file", jobs.Script{Name: "a", Run: "x", Files: map[string]string{"result.json": ""}}, "written by keyhole"},
		{"bad env", jobs.Script{Name: "a", Run: "x", Env: map[string]string{"KEYHOLE_X": "1"}}, "env name"},
		{"grants without net", jobs.Script{Name: "a", Run: "x", Toolset: "t", Net: "none"}, "net: none"},
		{"mount outside", jobs.Script{Name: "a", Run: "x", Mounts: []jobs.Mount{{Source: "/etc", Target: "/x"}}}, "/etc"},
		{"mount over /proc", jobs.Script{Name: "a", Run: "x",
			Mounts: []jobs.Mount{{Source: "/opt/agents", Target: "/proc/x"}}}, "/proc"},
		{"mount inside", jobs.Script{Name: "a", Run: "x",
			Mounts: []jobs.Mount{{Source: "/opt/agents/billing", Target: "/app"}}}, ""},
		{"bad limit", jobs.Script{Name: "a", Run: "x", Limits: jobs.Limits{Memory: "lots"}}, "limits"},
		{"bad schema", jobs.Script{Name: "a", Run: "x", Input: map[string]any{"type": "objekt"}}, "input"},
	}
	for _, tc := range cases {
		err := tc.s.Check(allow)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// bench is a queue with a worker on one database.
type bench struct {
	db  *store.DB
	ws  *store.Workspace
	svc *jobs.Service
}

func newBench(b *testing.B, dsn string, executors map[string]jobs.Executor) *bench {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, dsn, &store.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ws, err := db.Direct().CreateWorkspace(ctx, "default")
	if err != nil {
		b.Fatal(err)
	}
	log := audit.New(db, nil)
	hub := jobs.NewHub(db, nil)
	svc := jobs.NewService(db, hub, log, nil, nil)
	w := jobs.NewWorker(db, hub, jobs.WorkerConfig{Concurrency: 8, SoleWorker: dsn == ""})
	for kind, e := range executors {
		w.Handle(kind, e)
	}
	svc.Register("noop", func(context.Context, *store.Tx, *store.Workspace, *jobs.Request) (*jobs.Plan, error) {
		return &jobs.Plan{Spec: map[string]any{}}, nil
	})
	var wg sync.WaitGroup
	wg.Go(func() { hub.Run(ctx) })
	wg.Go(func() { w.Run(ctx) })
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		log.Close()
		db.Close()
	})
	return &bench{db: db, ws: ws, svc: svc}
}

var noop = jobs.ExecutorFunc(func(context.Context, *jobs.Run) store.JobOutcome {
	return store.JobOutcome{State: store.JobSucceeded, Result: `{}`}
})

// BenchmarkJobs measures jobs end to end (queued → run → outcome stored) on
// SQLite and PostgreSQL, without a sandbox (a no-op executor) and in the
// sandbox (/bin/true), with keyhole's binary or keyhole-sandbox-init as the
// sandbox's init: throughput with 8 concurrent jobs, and the latency of one
// job at a time.
//
//	go test -run '^$' -bench Jobs -benchtime 2000x ./internal/jobs/
func BenchmarkJobs(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		for _, kind := range []string{"noop", "sandboxed", "sandboxed-init"} {
			b.Run(db+"/"+kind+"/throughput", func(b *testing.B) { benchThroughput(b, db, kind) })
			b.Run(db+"/"+kind+"/latency", func(b *testing.B) { benchLatency(b, db, kind) })
		}
	}
}

func setupKind(b *testing.B, db, kind string) (*bench, *jobs.Request) {
	dsn := ""
	if db == "postgres" {
		dsn = testpg.DSN(b)
	}
	if kind == "noop" {
		return newBench(b, dsn, map[string]jobs.Executor{"noop": noop}), &jobs.Request{Kind: "noop"}
	}
	if err := sandbox.Probe(); err != nil {
		b.Skipf("no sandbox here: %v", err)
	}
	runDir := b.TempDir()
	// As the server sets it up: inits started ahead, one per job slot.
	runner := &sandbox.Runner{Warm: true, Spares: 8}
	if kind == "sandboxed-init" {
		// Sandboxes started from keyhole-sandbox-init (--sandbox-init).
		runner.InitPath = filepath.Join(b.TempDir(), "keyhole-sandbox-init")
		out, err := exec.Command("go", "build", "-o", runner.InitPath,
			"github.com/keyhole/keyhole/cmd/keyhole-sandbox-init").CombinedOutput()
		if err != nil {
			b.Fatalf("build keyhole-sandbox-init: %v\n%s", err, out)
		}
	}
	b.Cleanup(func() { runner.Close() })
	exec := &jobs.ScriptExecutor{DataDir: b.TempDir(), RunDir: runDir, Runner: runner}
	bb := newBench(b, dsn, map[string]jobs.Executor{jobs.KindCommand: exec})
	exec.DB = bb.db
	return bb, &jobs.Request{Kind: jobs.KindCommand, Script: &jobs.Script{Command: []string{"/bin/true"}}}
}

func benchThroughput(b *testing.B, db, kind string) {
	bb, req := setupKind(b, db, kind)
	ctx := context.Background()
	ids := make([]string, 0, b.N)
	b.ResetTimer()
	for range b.N {
		r := *req
		j, err := bb.svc.Enqueue(ctx, bb.ws, &r)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		j, err := bb.svc.Wait(ctx, bb.ws, id, time.Minute)
		if err != nil || j.State != store.JobSucceeded {
			b.Fatalf("job %s: %v %v", id, j, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func benchLatency(b *testing.B, db, kind string) {
	bb, req := setupKind(b, db, kind)
	ctx := context.Background()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r := *req
		j, err := bb.svc.Enqueue(ctx, bb.ws, &r)
		if err != nil {
			b.Fatal(err)
		}
		if j, err = bb.svc.Wait(ctx, bb.ws, j.ID, time.Minute); err != nil || j.State != store.JobSucceeded {
			b.Fatal(fmt.Sprint(j, err))
		}
		durations = append(durations, time.Since(start))
	}
	b.ReportMetric(float64(latency.Percentile(durations, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latency.Percentile(durations, 99).Microseconds())/1000, "p99-ms")
}
