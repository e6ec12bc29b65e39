package sandbox_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/sandbox"
)

// The test binary plays three parts: the test suite, the sandbox's init
// (for the Go API tests, which run sandboxes from this process) and, mounted
// at /probe inside a sandbox, the probe that tries each escape.
var (
	keyholeBin  string // the real keyhole binary, built once
	testBin     string // this test binary, mounted as /probe
	nsErr       error  // why namespaces are unavailable, if they are
	canaryValue = "kh-canary-" + fmt.Sprint(time.Now().UnixNano())
)

const canaryName = "KEYHOLE_TEST_CANARY_SECRET"

func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		os.Exit(sandbox.InitMain())
	}
	if action := os.Getenv(probeEnv); action != "" {
		os.Exit(runProbe(action, os.Args[1:]))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// The canary sits in the environment of this process and so of every
	// keyhole it starts; no sandbox may see it.
	os.Setenv(canaryName, canaryValue)
	var err error
	if testBin, err = filepath.Abs(os.Args[0]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	nsErr = sandbox.Probe()
	dir, err := os.MkdirTemp("", "keyhole-sandbox-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// keyhole-sandbox-init beside keyhole, as installed: the CLI's escape
	// tests run through it, and the Go API tests through this test binary
	// as the init.
	keyholeBin = filepath.Join(dir, "keyhole")
	build := exec.Command("go", "build", "-o", dir+"/",
		"github.com/keyhole/keyhole/cmd/keyhole", "github.com/keyhole/keyhole/cmd/keyhole-sandbox-init")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build keyhole: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// requireSandbox skips t where the kernel refuses user namespaces, the one
// case in which the escape tests cannot run.
func requireSandbox(t *testing.T) {
	t.Helper()
	if errors.Is(nsErr, sandbox.ErrNoUserNamespaces) {
		t.Skipf("skipping: user namespaces are unavailable here: %v", nsErr)
	}
	if nsErr != nil {
		t.Fatalf("probe namespaces: %v", nsErr)
	}
}

// execResult is how one run of "keyhole sandbox exec" ended.
type execResult struct {
	stdout, stderr string
	code           int
	wall           time.Duration
}

// keyholeExec runs "keyhole sandbox exec FLAGS -- CMD..." with the probe
// binary mounted at /probe.
func keyholeExec(t *testing.T, flags []string, cmd ...string) execResult {
	t.Helper()
	args := append([]string{"sandbox", "exec", "--mount", testBin + ":/probe"}, flags...)
	args = append(append(args, "--"), cmd...)
	c := exec.Command(keyholeBin, args...)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	start := time.Now()
	err := c.Run()
	res := execResult{stdout: out.String(), stderr: errOut.String(), wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run keyhole: %v", err)
	}
	t.Logf("keyhole %s\n-> status %d in %v\nstdout: %s\nstderr: %s",
		strings.Join(args, " "), res.code, res.wall.Round(time.Millisecond), res.stdout, res.stderr)
	assertNoCanary(t, res.stdout+res.stderr)
	return res
}

// probe runs the probe action inside a sandbox made with flags.
func probe(t *testing.T, flags []string, action string, args ...string) execResult {
	t.Helper()
	flags = append([]string{"--env", probeEnv + "=" + action}, flags...)
	return keyholeExec(t, flags, append([]string{"/probe"}, args...)...)
}

func assertNoCanary(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, canaryValue) {
		t.Errorf("the canary secret leaked into the sandbox's output")
	}
}

// hostProcessesWith lists host processes whose command line contains s.
func hostProcessesWith(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			found = append(found, e.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}
