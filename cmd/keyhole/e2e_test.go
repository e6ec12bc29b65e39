package main_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/testpg"
)

// binary is the keyhole program built once for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyhole-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "keyhole")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build keyhole: %v\n%s", err, out)
		os.Exit(1)
	}
	code := testpg.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

const canary = "sk_live_CANARY_CLI_0b9e6a1c44"

// serverProc is a keyhole server started as a user would.
type serverProc struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	logs *syncBuffer
}

func startServer(t *testing.T, dir string) *serverProc {
	t.Helper()
	port := freePort(t)
	p := &serverProc{url: "http://127.0.0.1:" + port, dir: dir, logs: &syncBuffer{}}
	p.cmd = exec.Command(binary, "server", "--listen", "127.0.0.1:"+port, "--data-dir", dir)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("server did not become healthy; logs:\n%s", p.logs)
	return nil
}

// stop sends SIGTERM and expects a clean exit.
func (p *serverProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit after SIGTERM: %v; logs:\n%s", err, p.logs)
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		t.Fatal("server did not stop within 20s of SIGTERM")
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the CLI with args against p, with stdin and extra environment.
func (p *serverProc) run(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "KEYHOLE_URL=" + p.url,
		"KEYHOLE_DATA_DIR=" + p.dir}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func TestFirstRunAndTheCLI(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	p := startServer(t, dir)

	// First start: a private admin token whose path, not value, is logged.
	info, err := os.Stat(filepath.Join(dir, "admin.token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v, %v", info, err)
	}
	token, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	if !strings.Contains(p.logs.String(), "admin.token") ||
		strings.Contains(p.logs.String(), strings.TrimSpace(string(token))) {
		t.Errorf("the log must name the token file and never the token:\n%s", p.logs)
	}

	r := p.run(t, `{"apiKey": "`+canary+`"}`, nil, "resource", "set", "f/bot/stripe", "--type", "stripe")
	if r.code != 0 {
		t.Fatalf("resource set: %+v", r)
	}
	r = p.run(t, "", nil, "resource", "get", "f/bot/stripe", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, "********") || strings.Contains(r.stdout, canary) {
		t.Fatalf("resource get: %+v", r)
	}
	r = p.run(t, "", nil, "resource", "get", "f/bot/stripe", "--reveal")
	if r.code != 0 || !strings.Contains(r.stdout, canary) {
		t.Fatalf("resource get --reveal: %+v", r)
	}

	// token create prints the token alone on stdout.
	r = p.run(t, "", nil, "token", "create", "--name", "reader", "--scope", "resources:read")
	reader := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(reader, "kh_") || strings.Contains(reader, "\n") ||
		!strings.Contains(r.stderr, "reader") {
		t.Fatalf("token create: %+v", r)
	}
	r = p.run(t, "", []string{"KEYHOLE_TOKEN=" + reader}, "resource", "get", "f/bot/stripe", "--reveal")
	if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, "secrets:reveal") {
		t.Fatalf("reveal without scope: %+v", r)
	}

	for _, args := range [][]string{
		{"audit", "list"}, {"audit", "verify"}, {"token", "list"}, {"resource", "list"},
		{"resource", "types"}, {"workspace", "list"},
	} {
		if r := p.run(t, "", nil, args...); r.code != 0 {
			t.Errorf("%v: %+v", args, r)
		} else if strings.Contains(r.stdout+r.stderr, canary) {
			t.Errorf("%v shows the canary", args)
		}
	}
	if r := p.run(t, "", nil, "key", "rotate"); r.code != 0 || !strings.Contains(r.stdout, "version 2") {
		t.Errorf("key rotate: %+v", r)
	}
	p.stop(t)

	// Nothing in the data directory or the logs holds the canary.
	forms := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			for _, f := range forms {
				if bytes.Contains(data, []byte(f)) {
					t.Errorf("%s holds the canary", path)
				}
			}
		}
		return nil
	})
	if strings.Contains(p.logs.String(), canary) {
		t.Error("server logs hold the canary")
	}

	// A restart keeps everything.
	p2 := startServer(t, dir)
	if r := p2.run(t, "", nil, "resource", "get", "f/bot/stripe", "--reveal"); !strings.Contains(r.stdout, canary) {
		t.Errorf("after restart: %+v", r)
	}
	p2.stop(t)
}

func TestCLIBadInput(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	p := startServer(t, dir)
	token := func(args ...string) string {
		r := p.run(t, "", nil, append([]string{"token", "create"}, args...)...)
		if r.code != 0 {
			t.Fatalf("token create: %+v", r)
		}
		return "KEYHOLE_TOKEN=" + strings.TrimSpace(r.stdout)
	}
	expired := token("--name", "short", "--scope", "resources:read", "--expires", "1s")
	revoked := token("--name", "gone", "--scope", "resources:read")
	reader := token("--name", "reader", "--scope", "resources:read")
	if r := p.run(t, "", nil, "token", "revoke", "gone"); r.code != 0 {
		t.Fatalf("token revoke: %+v", r)
	}
	time.Sleep(1100 * time.Millisecond)
	cases := []struct {
		name  string
		stdin string
		env   []string
		args  []string
		want  string
	}{
		{"no token", ``, []string{"KEYHOLE_DATA_DIR=" + t.TempDir()}, []string{"resource", "list"}, "no token"},
		{"expired token", ``, []string{expired}, []string{"resource", "list"}, "expired"},
		{"revoked token", ``, []string{revoked}, []string{"resource", "list"}, "revoked"},
		{"under-scoped token", `{"value": "v"}`, []string{reader},
			[]string{"resource", "set", "a", "--type", "secret"}, "lacks the scope resources:write"},
		{"malformed JSON", `{"apiKey": `, nil, []string{"resource", "set", "a", "--type", "stripe"}, "not valid JSON"},
		{"schema", `{"key": "x"}`, nil, []string{"resource", "set", "a", "--type", "stripe"}, "apiKey"},
		{"unknown type", `{}`, nil, []string{"resource", "set", "a", "--type", "nope"}, "unknown resource type"},
		{"bad path", `{"value": "v"}`, nil, []string{"resource", "set", "a/../b", "--type", "secret"}, "not valid"},
		{"no value", ``, nil, []string{"resource", "set", "a", "--type", "secret"}, "empty"},
		{"bad token", ``, []string{"KEYHOLE_TOKEN=kh_x"}, []string{"resource", "list"}, "not valid"},
		{"bad flag", ``, nil, []string{"resource", "list", "--nope"}, "unknown flag"},
		{"no server", ``, []string{"KEYHOLE_URL=http://127.0.0.1:1"}, []string{"resource", "list"}, "cannot reach"},
		{"missing file", ``, nil, []string{"apply", "-f", "/nonexistent.yaml"}, "nonexistent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := p.run(t, tc.stdin, tc.env, tc.args...)
			msg := strings.TrimSpace(r.stderr)
			if r.code == 0 || !strings.HasPrefix(msg, "keyhole: ") || strings.Contains(msg, "\n") ||
				!strings.Contains(msg, tc.want) || strings.Contains(msg, "goroutine") {
				t.Errorf("got exit %d, stderr %q; want non-zero and one line with %q", r.code, msg, tc.want)
			}
		})
	}
	p.stop(t)
}
