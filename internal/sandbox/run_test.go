package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/sandbox"
)

// These tests drive the Go API from this process; the test binary is the
// init, as keyhole's binary is in production.

func runSpec(t *testing.T, ctx context.Context, spec *sandbox.Spec) (*sandbox.Result, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errOut
	var r sandbox.Runner
	res, err := r.Run(ctx, spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertNoCanary(t, out.String()+errOut.String())
	return res, out.String(), errOut.String()
}

func TestRunStatus(t *testing.T) {
	requireSandbox(t)
	tests := []struct {
		name       string
		script     string
		wantStatus int
		wantSignal syscall.Signal
		wantOut    string
		wantErr    string
	}{
		{"exit zero", "echo out; echo err >&2", 0, 0, "out\n", "err\n"},
		{"exit code", "exit 3", 3, 0, "", ""},
		{"signal", "kill -TERM $$", 128 + 15, syscall.SIGTERM, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &sandbox.Spec{Command: []string{"/bin/sh", "-c", tt.script}}
			res, out, errOut := runSpec(t, t.Context(), spec)
			got := []any{res.Status(), res.Signal, out, errOut, res.Killed}
			want := []any{tt.wantStatus, tt.wantSignal, tt.wantOut, tt.wantErr, sandbox.KilledNone}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunStdinAndWorkDir(t *testing.T) {
	requireSandbox(t)
	dir := t.TempDir()
	spec := &sandbox.Spec{
		Command: []string{"/bin/sh", "-c", "pwd; cat > note; cat note"},
		Dir:     dir,
		Stdin:   strings.NewReader("from stdin\n"),
	}
	_, out, _ := runSpec(t, t.Context(), spec)
	if diff := cmp.Diff("/work\nfrom stdin\n", out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(dir + "/note")
	if err != nil || string(data) != "from stdin\n" {
		t.Errorf("job folder file: %q, %v", data, err)
	}
}

func TestRunEnvironment(t *testing.T) {
	requireSandbox(t)
	spec := &sandbox.Spec{Command: []string{"/usr/bin/env"},
		Env: []string{"A=1", "LANG=en_US.UTF-8"}}
	_, out, _ := runSpec(t, t.Context(), spec)
	want := "A=1\nLANG=en_US.UTF-8\nPATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:" +
		"/usr/sbin:/sbin\nHOME=/work\nTMPDIR=/tmp\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
}

func TestRunCancel(t *testing.T) {
	requireSandbox(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var r sandbox.Runner
	sb, err := r.Start(ctx, &sandbox.Spec{Command: []string{"/bin/sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	res, err := sb.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Killed != sandbox.KilledCancelled || res.Status() != 137 {
		t.Errorf("got killed %q status %d, want cancelled and 137", res.Killed, res.Status())
	}
	if res.Wall > 5*time.Second {
		t.Errorf("cancel took %v", res.Wall)
	}
}

func TestRunTimeout(t *testing.T) {
	requireSandbox(t)
	spec := &sandbox.Spec{Command: []string{"/bin/sleep", "30"},
		Limits: sandbox.Limits{Timeout: 300 * time.Millisecond}}
	res, _, _ := runSpec(t, t.Context(), spec)
	if res.Killed != sandbox.KilledTimeout || res.Status() != 137 {
		t.Errorf("got killed %q status %d, want timeout and 137", res.Killed, res.Status())
	}
}

func TestRunUsage(t *testing.T) {
	requireSandbox(t)
	spec := &sandbox.Spec{Command: []string{"/bin/sh", "-c",
		"i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}}
	res, _, _ := runSpec(t, t.Context(), spec)
	if res.CPU <= 0 || res.PeakMemory <= 0 || res.Wall < res.CPU/2 {
		t.Errorf("usage wall %v cpu %v peak %d: want all positive", res.Wall, res.CPU, res.PeakMemory)
	}
}

func TestRunBroker(t *testing.T) {
	requireSandbox(t)
	broker := startBroker(t)
	var out bytes.Buffer
	spec := &sandbox.Spec{
		Command: []string{"/probe", "/tool"}, Net: sandbox.NetBroker, BrokerSocket: broker,
		Env:    []string{"KEYHOLE_PROBE=http"},
		Mounts: []sandbox.Mount{{Source: testBin, Target: "/probe"}},
		Stdout: &out, Stderr: &out,
	}
	var r sandbox.Runner
	sb, err := r.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sb.BrokerURL(), "http://127.0.0.1:") {
		t.Errorf("BrokerURL %q", sb.BrokerURL())
	}
	res, err := sb.Wait()
	if err != nil || res.Status() != 0 {
		t.Fatalf("Wait: %v, status %v", err, res)
	}
	want := "get " + sb.BrokerURL() + "/tool: 200 broker saw /tool\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestStartErrors(t *testing.T) {
	requireSandbox(t)
	tests := []struct {
		name string
		spec sandbox.Spec
		kind sandbox.StartKind
	}{
		{"not found", sandbox.Spec{Command: []string{"no-such-program"}}, sandbox.StartNotFound},
		{"not executable", sandbox.Spec{Command: []string{"/etc/passwd"}}, sandbox.StartPermission},
		{"missing mount", sandbox.Spec{Command: []string{"/bin/true"},
			Mounts: []sandbox.Mount{{Source: "/no/such/dir", Target: "/x"}}}, sandbox.StartSetup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sandbox.Run(t.Context(), &tt.spec)
			var se *sandbox.StartError
			if !errors.As(err, &se) || se.Kind != tt.kind {
				t.Errorf("got %v, want a StartError of kind %q", err, tt.kind)
			}
		})
	}
}

func TestRunWarm(t *testing.T) {
	requireSandbox(t)
	r := &sandbox.Runner{Warm: true}
	t.Cleanup(func() { r.Close() })
	broker := startBroker(t)
	for i := range 4 {
		var out bytes.Buffer
		spec := &sandbox.Spec{
			Command: []string{"/bin/sh", "-c", "cat; echo $N; echo err >&2; exit 7"},
			Env:     []string{fmt.Sprintf("N=%d", i)},
			Stdin:   strings.NewReader("in\n"),
			Stdout:  &out, Stderr: &out,
			Net: sandbox.NetBroker, BrokerSocket: broker,
			Limits: sandbox.Limits{Memory: 64 << 20},
		}
		res, err := r.Run(t.Context(), spec)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		want := fmt.Sprintf("in\n%d\nerr\n", i)
		if diff := cmp.Diff(want, out.String()); diff != "" || res.Status() != 7 {
			t.Errorf("run %d: status %d, output (-want +got):\n%s", i, res.Status(), diff)
		}
		assertNoCanary(t, out.String())
	}
	// A warm start still honours limits set for the job.
	res, err := r.Run(t.Context(), &sandbox.Spec{Command: []string{"/bin/sleep", "30"},
		Limits: sandbox.Limits{Timeout: 200 * time.Millisecond}})
	if err != nil || res.Killed != sandbox.KilledTimeout {
		t.Errorf("got %v, %+v; want a timeout", err, res)
	}
}

func TestRunWarmPool(t *testing.T) {
	requireSandbox(t)
	// Long enough that a slow machine fills the pool before any expires.
	r := &sandbox.Runner{Warm: true, Spares: 2, SpareIdle: 3 * time.Second}
	t.Cleanup(func() { r.Close() })

	// Two jobs at once take both spares; the pool fills back to two.
	if _, err := r.Run(t.Context(), &sandbox.Spec{Command: []string{"/bin/true"}}); err != nil {
		t.Fatal(err)
	}
	waitSpares(t, r, 2)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := r.Run(t.Context(), &sandbox.Spec{Command: []string{"/bin/true"}})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitSpares(t, r, 2)

	// A memory limit below what a spare already holds still runs.
	var out bytes.Buffer
	res, err := r.Run(t.Context(), &sandbox.Spec{Command: []string{"/bin/echo", "small"},
		Stdout: &out, Limits: sandbox.Limits{Memory: 8 << 20}})
	if err != nil || res.Status() != 0 || out.String() != "small\n" {
		t.Errorf("small memory limit: %v, %+v, %q", err, res, out.String())
	}

	// Spares nobody takes are ended.
	waitSpares(t, r, 0)
}

// waitSpares waits until r holds n spare inits.
func waitSpares(t *testing.T, r *sandbox.Runner, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for r.SparesReady() != n {
		if time.Now().After(deadline) {
			t.Fatalf("runner holds %d spare inits, want %d", r.SparesReady(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunWarmZygoteLost(t *testing.T) {
	requireSandbox(t)
	r := &sandbox.Runner{Warm: true}
	t.Cleanup(func() { r.Close() })
	var out bytes.Buffer
	sb, err := r.Start(t.Context(), &sandbox.Spec{Command: []string{"/bin/sh", "-c", "read x; echo got $x"},
		Stdin: strings.NewReader("it\n"), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	// The zygote that started the init dies; the sandbox runs on, and
	// Wait still learns how it ended.
	pid := r.ZygotePid()
	if pid == 0 {
		t.Fatal("a warm runner started no zygote")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Wait()
	if err != nil || res.Status() != 0 || out.String() != "got it\n" {
		t.Fatalf("after the zygote died: %v, %+v, %q", err, res, out.String())
	}
	// The next sandbox starts from a new zygote.
	res, err = r.Run(t.Context(), &sandbox.Spec{Command: []string{"/bin/true"}})
	if err != nil || res.Status() != 0 {
		t.Fatalf("after the zygote died: %v, %+v", err, res)
	}
	if got := r.ZygotePid(); got == pid || got == 0 {
		t.Errorf("zygote pid %d after %d died", got, pid)
	}
	// The first init, orphaned, is seen to exit through its pidfd, so
	// Close, which waits for every init to exit, returns.
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waits for the orphaned init after 10s")
	}
}

func TestStaleCgroupsSwept(t *testing.T) {
	requireSandbox(t)
	// A keyhole killed before it removed its cgroups left them behind. The
	// next keyhole sweeps them: otherwise one whose pid is reused would
	// find its first cgroup's name taken.
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, dir := range sandbox.CgroupDirs() {
		p := filepath.Join(dir, fmt.Sprintf("keyhole-%d-1", dead.Process.Pid))
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		stale = append(stale, p)
	}
	if out, err := exec.Command(keyholeBin, "sandbox", "exec", "--", "/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("keyhole sandbox exec: %v\n%s", err, out)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("stale cgroup %s is still there", p)
		}
	}
}

func TestRunWarmCloseWhileRunning(t *testing.T) {
	requireSandbox(t)
	r := &sandbox.Runner{Warm: true}
	sb, err := r.Start(t.Context(), &sandbox.Spec{Command: []string{"/bin/sleep", "0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	zygote := r.ZygotePid()
	// Closing the runner ends its spares but not a sandbox still running,
	// nor the zygote that must report how that sandbox's init ended.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Wait()
	if err != nil || res.Status() != 0 {
		t.Fatalf("Wait after Close: %v, %+v", err, res)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(zygote, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("zygote %d still running after its last sandbox ended", zygote)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
