package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/server"
)

// buildSandboxInit builds cmd/keyhole-sandbox-init into a temporary folder.
func buildSandboxInit(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not installed")
	}
	path := filepath.Join(t.TempDir(), "keyhole-sandbox-init")
	out, err := exec.Command("go", "build", "-o", path, "../../cmd/keyhole-sandbox-init").CombinedOutput()
	if err != nil {
		t.Fatalf("build keyhole-sandbox-init: %v\n%s", err, out)
	}
	return path
}

// TestSeparateSandboxInit runs jobs with sandboxes started from
// keyhole-sandbox-init: the job sees its grant and nothing more, exactly as
// with keyhole's own binary as the init. An init that is not one, or that
// others may write, stops the server at start.
func TestSeparateSandboxInit(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	if err := sandbox.Probe(); err != nil {
		t.Skipf("the sandbox cannot run here: %v", err)
	}
	path := buildSandboxInit(t)
	testGrant(t, startJobs(t, "", server.Config{SandboxInit: path}))

	writable := filepath.Join(t.TempDir(), "init")
	data, _ := os.ReadFile(path)
	os.WriteFile(writable, data, 0o777)
	os.Chmod(writable, 0o777)
	for _, c := range []struct{ init, want string }{
		{"keyhole-sandbox-init", "absolute path"},
		{"/nonexistent/keyhole-sandbox-init", "no such file"},
		{writable, "others may write"},
		{"/bin/true", "does not start"},
	} {
		_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(),
			Workers: 1, SandboxInit: c.init})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--sandbox-init %s: got %v, want an error containing %q", c.init, err, c.want)
		}
	}
}
