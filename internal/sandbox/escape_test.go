package sandbox_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/keyhole/keyhole/internal/sandbox"
)

// Each test here runs the real keyhole binary and tries one way out of the
// sandbox; it passes when the attempt is contained, and its log shows how.

func TestEscapeReadHostFiles(t *testing.T) {
	requireSandbox(t)
	dataDir := t.TempDir()
	secret := filepath.Join(dataDir, ".keyhole", "key")
	os.MkdirAll(filepath.Dir(secret), 0o700)
	os.WriteFile(secret, []byte(canaryValue), 0o600)

	paths := []string{"/etc/shadow", "/root", "/root/.bash_history", secret,
		dataDir, fmt.Sprintf("/proc/%d/environ", os.Getpid()), "/home", "/var", "/sys"}
	res := probe(t, nil, "read", paths...)
	for _, p := range paths {
		if !strings.Contains(res.stdout, p+": ENOENT") {
			t.Errorf("%s: want ENOENT (not in the sandbox), got\n%s", p, res.stdout)
		}
	}
}

func TestEscapeParentEnvironment(t *testing.T) {
	requireSandbox(t)
	res := probe(t, []string{"--env", "GIVEN=1"}, "environ")
	if res.code != 0 {
		t.Fatalf("status %d", res.code)
	}
	// keyholeExec has asserted the canary is absent; check what is there.
	env := strings.SplitN(res.stdout, "/proc/", 2)[0]
	var got []string
	for line := range strings.Lines(env) {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			got = append(got, k)
		}
	}
	want := []string{"KEYHOLE_PROBE", "GIVEN", "PATH", "HOME", "TMPDIR", "LANG"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment names (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.stdout, "/proc/1/environ: EACCES") {
		t.Errorf("the init's environment is readable:\n%s", res.stdout)
	}
}

func TestEscapeSeeHostProcesses(t *testing.T) {
	requireSandbox(t)
	res := probe(t, nil, "procs")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	// The init (pid 1) and the probe itself; nothing of the host.
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "pid 1 ") {
		t.Errorf("want only pid 1 and the probe, got\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "pid "+strconv.Itoa(os.Getpid())+" ") {
		t.Errorf("the test process is visible")
	}
}

func TestEscapeHostLoopback(t *testing.T) {
	requireSandbox(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	broker := startBroker(t)
	modes := map[string][]string{
		"none":   {"--net", "none"},
		"broker": {"--net", "broker", "--broker-socket", broker},
	}
	for name, flags := range modes {
		t.Run(name, func(t *testing.T) {
			res := probe(t, flags, "connect", l.Addr().String())
			want := "connect " + l.Addr().String() + ": ECONNREFUSED"
			if !strings.Contains(res.stdout, want) {
				t.Errorf("want %q, got\n%s", want, res.stdout)
			}
		})
	}
}

func TestEscapeOutsideNetwork(t *testing.T) {
	requireSandbox(t)
	broker := startBroker(t)
	modes := map[string][]string{
		"none":   {"--net", "none"},
		"broker": {"--net", "broker", "--broker-socket", broker},
	}
	for name, flags := range modes {
		t.Run(name, func(t *testing.T) {
			// 192.0.2.1 is TEST-NET-1: no packet could leave anyway, and
			// the sandbox has no route to try.
			res := probe(t, flags, "connect", "192.0.2.1:80")
			if !strings.Contains(res.stdout, "connect 192.0.2.1:80: ENETUNREACH") {
				t.Errorf("want ENETUNREACH, got\n%s", res.stdout)
			}
			res = probe(t, flags, "resolve", "example.com")
			if !strings.Contains(res.stdout, "resolve example.com: [] ") {
				t.Errorf("want a failed lookup, got\n%s", res.stdout)
			}
		})
	}
}

func TestBrokerReachable(t *testing.T) {
	requireSandbox(t)
	broker := startBroker(t)
	res := probe(t, []string{"--net", "broker", "--broker-socket", broker}, "http", "/hello")
	if !strings.Contains(res.stdout, ": 200 broker saw /hello") {
		t.Errorf("want the broker's answer, got\n%s", res.stdout)
	}
}

// startBroker serves HTTP on a Unix socket, as keyhole's broker does, and
// returns the socket's path.
func startBroker(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "broker saw %s", r.URL.Path)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path
}

func TestEscapeSyscalls(t *testing.T) {
	requireSandbox(t)
	res := probe(t, nil, "syscalls")
	got := map[string]string{}
	for line := range strings.Lines(res.stdout) {
		if name, errno, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			got[name] = errno
		}
	}
	want := map[string]string{}
	for name := range syscallAttempts {
		want[name] = "EPERM"
	}
	// clone3 hides its flags from seccomp; ENOSYS sends callers to clone.
	want["clone3"] = "ENOSYS"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("syscall results (-want +got):\n%s", diff)
	}
}

func TestEscapeCapabilities(t *testing.T) {
	requireSandbox(t)
	res := probe(t, nil, "status")
	want := []string{"Uid: 1000 1000 1000 1000", "Gid: 1000 1000 1000 1000",
		"CapInh: 0000000000000000", "CapPrm: 0000000000000000",
		"CapEff: 0000000000000000", "CapBnd: 0000000000000000",
		"CapAmb: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "hostname sandbox"}
	for _, w := range want {
		if !strings.Contains(res.stdout, w+"\n") {
			t.Errorf("want %q in\n%s", w, res.stdout)
		}
	}
}

func TestEscapeForkBomb(t *testing.T) {
	requireSandbox(t)
	res := keyholeExec(t, []string{"--pids", "32", "--timeout", "30s"},
		"/bin/sh", "-c", "b() { b | b & }; b; sleep 30")
	// The shell may notice its failed forks and exit before keyhole ends
	// the tree; either way the breach is reported and the status is not 0.
	if res.code == 0 || !strings.Contains(res.stderr, "keyhole: killed: pids limit") {
		t.Errorf("status %d, stderr %q: want a failure reported as the pids limit",
			res.code, res.stderr)
	}
	if res.wall > 10*time.Second {
		t.Errorf("the fork bomb ran for %v", res.wall)
	}
}

func TestEscapeMemoryBomb(t *testing.T) {
	requireSandbox(t)
	res := probe(t, []string{"--memory", "64M", "--timeout", "30s"}, "membomb")
	assertKilled(t, res, "memory limit")
}

func TestEscapeFillTmp(t *testing.T) {
	requireSandbox(t)
	res := probe(t, []string{"--tmp-size", "4M"}, "fill", "/tmp/fill")
	var n int
	if _, err := fmt.Sscanf(res.stdout, "wrote %d: ENOSPC", &n); err != nil {
		t.Fatalf("want a write that ends in ENOSPC, got %q", res.stdout)
	}
	if n > 4<<20 {
		t.Errorf("wrote %d bytes into a 4 MiB /tmp", n)
	}
}

func TestEscapeMaxFileSize(t *testing.T) {
	requireSandbox(t)
	res := probe(t, []string{"--max-file-size", "1M"}, "fill", "/work/big")
	var n int
	if _, err := fmt.Sscanf(res.stdout, "wrote %d: EFBIG", &n); err != nil || n > 1<<20 {
		t.Errorf("want a write stopped by EFBIG at 1 MiB, got %q", res.stdout)
	}
}

func TestEscapeWriteReadOnly(t *testing.T) {
	requireSandbox(t)
	data := t.TempDir()
	res := probe(t, []string{"--mount", data + ":/data"}, "write",
		"/data/x", "/usr/x", "/etc/passwd", "/x", "/proc/sys/kernel/hostname")
	for _, p := range []string{"/data/x", "/usr/x", "/etc/passwd", "/x", "/proc/sys/kernel/hostname"} {
		if !strings.Contains(res.stdout, "write "+p+": EROFS") {
			t.Errorf("%s: want EROFS, got\n%s", p, res.stdout)
		}
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Errorf("the read-only mount was written: %v", entries)
	}
}

func TestEscapeOutliveTimeout(t *testing.T) {
	requireSandbox(t)
	marker := fmt.Sprintf("%d.25", 4000+time.Now().UnixNano()%1000)
	script := fmt.Sprintf("setsid sleep %[1]s & (sleep %[1]s &) & nohup sleep %[1]s & sleep %[1]s", marker)
	res := keyholeExec(t, []string{"--timeout", "1s"}, "/bin/sh", "-c", script)
	assertKilled(t, res, "timeout")
	if res.wall > 5*time.Second {
		t.Errorf("ran for %v past a 1s timeout", res.wall)
	}
	if left := hostProcessesWith(t, "sleep "+marker); len(left) > 0 {
		t.Errorf("processes outlived the sandbox: %v", left)
	}
}

func TestEscapeLeaveProcessesBehind(t *testing.T) {
	requireSandbox(t)
	marker := fmt.Sprintf("%d.75", 5000+time.Now().UnixNano()%1000)
	script := fmt.Sprintf("setsid sleep %[1]s & (sleep %[1]s &) & exit 0", marker)
	res := keyholeExec(t, nil, "/bin/sh", "-c", script)
	if res.code != 0 {
		t.Errorf("status %d, want 0", res.code)
	}
	if left := hostProcessesWith(t, "sleep "+marker); len(left) > 0 {
		t.Errorf("processes outlived the sandbox: %v", left)
	}
}

func assertKilled(t *testing.T, res execResult, reason string) {
	t.Helper()
	if res.code != 137 {
		t.Errorf("status %d, want 137 (SIGKILL)", res.code)
	}
	if !strings.Contains(res.stderr, "keyhole: killed: "+reason) {
		t.Errorf("stderr %q does not report %q", res.stderr, reason)
	}
}

func TestEscapeInheritedDescriptor(t *testing.T) {
	requireSandbox(t)
	// A caller that leaks a handle on a host folder into keyhole must not
	// leak it into the sandbox.
	secretDir := t.TempDir()
	os.WriteFile(filepath.Join(secretDir, "key"), []byte(canaryValue), 0o600)
	dir, err := os.Open(secretDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	c := exec.Command(keyholeBin, "sandbox", "exec", "--mount", testBin+":/probe",
		"--env", probeEnv+"=fds", "--", "/probe")
	c.ExtraFiles = []*os.File{dir, dir, dir}
	out, err := c.CombinedOutput()
	t.Logf("keyhole with inherited descriptors 3-5 on %s:\n%s", secretDir, out)
	if err != nil {
		t.Fatal(err)
	}
	assertNoCanary(t, string(out))
	for line := range strings.Lines(string(out)) {
		fd, target, _ := strings.Cut(strings.TrimPrefix(line, "fd "), " -> ")
		target = strings.TrimSpace(target)
		// An empty target is the listing's own, already closed, descriptor.
		if fd != "0" && fd != "1" && fd != "2" && target != "" {
			t.Errorf("descriptor %s -> %s reached the sandbox", fd, target)
		}
	}
}

func TestEscapeSignalInit(t *testing.T) {
	requireSandbox(t)
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0,
		unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 || abi < 6 {
		t.Skipf("skipping: Landlock signal scoping needs ABI 6, the kernel has %d (%v)", abi, errno)
	}
	// Landlock is on: the command may not signal the init outside its domain.
	res := probe(t, nil, "kill1")
	if !strings.Contains(res.stdout, "kill 1: EPERM") {
		t.Errorf("want EPERM, got %q", res.stdout)
	}
}

// TestEscapeWarm runs the containment probes through a Warm runner, the
// server's path: inits cloned by a zygote, spares that built their root
// ahead with the host's tree at /.host until the job's mounts are made.
func TestEscapeWarm(t *testing.T) {
	requireSandbox(t)
	r := &sandbox.Runner{Warm: true, Spares: 2}
	t.Cleanup(func() { r.Close() })
	dataDir := t.TempDir()
	secret := filepath.Join(dataDir, "key")
	os.WriteFile(secret, []byte(canaryValue), 0o600)
	run := func(action string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		res, err := r.Run(t.Context(), &sandbox.Spec{
			Command: append([]string{"/probe"}, args...),
			Env:     []string{probeEnv + "=" + action},
			Mounts:  []sandbox.Mount{{Source: testBin, Target: "/probe"}},
			Stdout:  &out, Stderr: &out,
		})
		if err != nil || res.Status() != 0 {
			t.Fatalf("probe %s: %v, %+v\n%s", action, err, res, out.String())
		}
		assertNoCanary(t, out.String())
		return out.String()
	}
	// Twice each: the first may take a fresh init, the second a spare.
	for range 2 {
		paths := []string{"/.host", "/.host/etc/shadow", "/etc/shadow", "/root", secret,
			dataDir, fmt.Sprintf("/proc/%d/environ", os.Getpid())}
		out := run("read", paths...)
		for _, p := range paths {
			if !strings.Contains(out, p+": ENOENT") {
				t.Errorf("%s: want ENOENT, got\n%s", p, out)
			}
		}
		if out := run("procs"); strings.Count(out, "pid ") != 2 {
			t.Errorf("want only pid 1 and the probe, got\n%s", out)
		}
		if out := run("environ"); !strings.Contains(out, "/proc/1/environ: EACCES") {
			t.Errorf("the init's environment is readable:\n%s", out)
		}
		for line := range strings.Lines(run("fds")) {
			fd, target, _ := strings.Cut(strings.TrimPrefix(line, "fd "), " -> ")
			if fd != "0" && fd != "1" && fd != "2" && strings.TrimSpace(target) != "" {
				t.Errorf("descriptor %s -> %s reached the sandbox", fd, strings.TrimSpace(target))
			}
		}
	}
	// The zygote holds nothing of this process's environment.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", r.ZygotePid()))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte(canaryValue)) || bytes.Contains(env, []byte(canaryName)) {
		t.Errorf("the zygote's environment holds the canary")
	}
}
