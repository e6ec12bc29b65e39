package main_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/testpg"
)

// proc is a keyhole process started for a test.
type proc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProgram(t, binary, args...)
}

// startProgram starts the keyhole binary at path, stopped when the test ends.
func startProgram(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path, args...), logs: &syncBuffer{}}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
		}
	})
	return p
}

// newKeyURL returns a key service with a fresh random key, for servers and
// workers that must share one.
func newKeyURL() string {
	raw := make([]byte, 32)
	rand.Read(raw)
	return "base64key://" + base64.URLEncoding.EncodeToString(raw)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWorkersShareAPostgresQueue runs 1,000 jobs on a server and two
// keyhole worker processes sharing one PostgreSQL, kills a worker with
// SIGKILL in the middle, and checks that every job finished exactly once.
func TestWorkersShareAPostgresQueue(t *testing.T) {
	t.Parallel()
	dsn := testpg.DSN(t)
	keyURL := newKeyURL()

	// An upstream that counts the calls each job makes.
	var mu sync.Mutex
	calls := map[string]int{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond)
		mu.Lock()
		calls[r.URL.Query().Get("n")]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n": %q}`, r.URL.Query().Get("n"))
	}))
	defer up.Close()

	port := freePort(t)
	url := "http://127.0.0.1:" + port
	dir := t.TempDir()
	startProc(t, "server", "--listen", "127.0.0.1:"+port, "--data-dir", dir, "--db", dsn,
		"--key-url", keyURL, "--workers", "2")
	waitURL(t, url+"/healthz")
	token, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	c, err := client.New(url, strings.TrimSpace(string(token)), nil)
	if err != nil {
		t.Fatal(err)
	}

	// A worker started with the wrong key service refuses to start.
	wrong := exec.Command(binary, "worker", "--db", dsn, "--key-url",
		"base64key://"+base64.URLEncoding.EncodeToString(make([]byte, 32)), "--data-dir", t.TempDir())
	out, err := wrong.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot unwrap") {
		t.Fatalf("worker with the wrong key: %v\n%s", err, out)
	}

	ctx := context.Background()
	host := strings.TrimPrefix(up.URL, "http://")
	_, err = c.SetResource(ctx, "f/count", resource.SetRequest{Type: "http_bearer",
		AllowedHosts: []string{host}, Value: json.RawMessage(`{"token": "count-token"}`)})
	if err != nil {
		t.Fatal(err)
	}
	tool := "kind: tool\nname: count\ninput:\n  type: object\n  properties: {n: {type: string}}\n" +
		"http:\n  url: " + up.URL + "/count\n  query: {n: '{{ .n }}'}\n" +
		"  auth: {resource: f/count, bearer: token}\n"
	if _, err := c.Apply(ctx, []server.ApplyFile{{Name: "t.yaml", Content: tool}}, false); err != nil {
		t.Fatal(err)
	}

	w1 := startProc(t, "worker", "--db", dsn, "--key-url", keyURL, "--data-dir", t.TempDir(),
		"--concurrency", "4")
	startProc(t, "worker", "--db", dsn, "--key-url", keyURL, "--data-dir", t.TempDir(),
		"--concurrency", "4")

	// Queue the jobs while watching the first worker: once it has finished
	// some jobs and holds others, kill it with SIGKILL.
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := c.Enqueue(ctx, jobs.Request{Kind: "tool", Name: "count",
				Args: json.RawMessage(fmt.Sprintf(`{"n": "%d"}`, i))}, 0)
			if err != nil {
				errs <- err
			}
		})
	}
	victim := workerID(t, w1)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		done, _ := c.Jobs(ctx, "succeeded", "count", 10000)
		running, _ := c.Jobs(ctx, "running", "count", 10000)
		if countWorker(done, victim) >= 5 && countWorker(running, victim) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first worker never ran jobs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w1.cmd.Process.Kill()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	deadline := time.Now().Add(3 * time.Minute)
	for {
		done, err := c.Jobs(ctx, "succeeded", "count", 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(done) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs succeeded in 3 minutes", len(done), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	repeats := 0
	for i := range n {
		switch calls[fmt.Sprint(i)] {
		case 0:
			t.Errorf("job %d never ran", i)
		case 1:
		default:
			repeats++
		}
	}
	// Only jobs in flight on the killed worker (at most its concurrency)
	// may have run again.
	if repeats > 4 {
		t.Errorf("%d jobs ran more than once; at most the killed worker's 4 may", repeats)
	}
	if lost, _ := c.Jobs(ctx, "failed", "count", 10); len(lost) > 0 {
		t.Errorf("jobs failed: %+v", lost)
	}
	t.Logf("1000 jobs succeeded; %d re-ran after the SIGKILL", repeats)
}

// workerID reads a worker's identity from its log.
func workerID(t *testing.T, p *proc) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		for _, f := range strings.Fields(p.logs.String()) {
			if id, ok := strings.CutPrefix(f, "worker=w_"); ok {
				return "w_" + id
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no worker id in the log: %s", p.logs)
	return ""
}

func countWorker(list []server.JobInfo, worker string) int {
	n := 0
	for _, j := range list {
		if j.Worker == worker {
			n++
		}
	}
	return n
}

func waitURL(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}

// TestServerCrashLosesNoJob kills a SQLite server with SIGKILL while a job
// runs and checks that the job runs again after the restart.
func TestServerCrashLosesNoJob(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	p := startServer(t, dir)
	r := p.run(t, "", nil, "run", "--detach", "--timeout", "60s", "--",
		"sh", "-c", "sleep 2; echo done")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(id, "j_") {
		t.Fatalf("run --detach: %+v", r)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		r := p.run(t, "", nil, "job", "get", id, "-o", "json")
		if strings.Contains(r.stdout, `"state": "running"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never started: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()

	p2 := startServer(t, dir)
	for deadline := time.Now().Add(60 * time.Second); ; {
		r := p2.run(t, "", nil, "job", "get", id, "-o", "json")
		var j server.JobInfo
		json.Unmarshal([]byte(r.stdout), &j)
		if j.State == "succeeded" {
			if j.Attempt != 2 || string(j.Result) != `"done"` {
				t.Errorf("after the crash: %+v", j)
			}
			break
		}
		if j.State != "queued" && j.State != "running" || time.Now().After(deadline) {
			t.Fatalf("after the crash the job is %s: %+v", j.State, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p2.stop(t)
}
