package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/sandbox"
)

// TestSandboxInitBesideTheBinary: a keyhole-sandbox-init installed beside
// keyhole is used for every sandbox; one that others may write is ignored
// with a warning, and jobs still run from keyhole's own binary.
func TestSandboxInitBesideTheBinary(t *testing.T) {
	t.Parallel()
	if err := sandbox.Probe(); err != nil {
		t.Skipf("the sandbox cannot run here: %v", err)
	}
	for _, tc := range []struct {
		name string
		mode os.FileMode
		want string
	}{
		{"installed", 0o755, "sandboxes start from a separate init"},
		{"writable by others", 0o777, "not using the sandbox init beside keyhole"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			self, _ := os.ReadFile(binary)
			os.WriteFile(filepath.Join(bin, "keyhole"), self, 0o755)
			init := filepath.Join(bin, "keyhole-sandbox-init")
			out, err := exec.Command("go", "build", "-o", init, "../keyhole-sandbox-init").CombinedOutput()
			if err != nil {
				t.Fatalf("build keyhole-sandbox-init: %v\n%s", err, out)
			}
			os.Chmod(init, tc.mode)

			port, dir := freePort(t), t.TempDir()
			p := startProgram(t, filepath.Join(bin, "keyhole"), "server", "--listen", "127.0.0.1:"+port,
				"--data-dir", dir, "--workers", "1")
			waitURL(t, "http://127.0.0.1:"+port+"/healthz")
			token, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
			c, err := client.New("http://127.0.0.1:"+port, strings.TrimSpace(string(token)), nil)
			if err != nil {
				t.Fatal(err)
			}
			j, err := c.Enqueue(context.Background(), jobs.Request{Kind: "command",
				Script: &jobs.Script{Command: []string{"echo", "hello"}}}, 30*time.Second)
			if err != nil || j.State != "succeeded" || string(j.Result) != `"hello"` {
				t.Fatalf("job: %+v %v\n%s", j, err, p.logs)
			}
			if !strings.Contains(p.logs.String(), tc.want) {
				t.Errorf("server log lacks %q:\n%s", tc.want, p.logs)
			}
		})
	}
}
