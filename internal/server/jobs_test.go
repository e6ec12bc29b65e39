package server_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/testpg"
)

// startJobs runs a server with job workers, skipping where the kernel
// refuses the sandbox.
func startJobs(t *testing.T, dsn string, cfg server.Config) *bundle {
	t.Helper()
	if err := sandbox.Probe(); err != nil {
		t.Skipf("the sandbox cannot run here: %v", err)
	}
	cfg.DataDir, cfg.DB = t.TempDir(), dsn
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	b, err := startConfig(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func TestScriptJobSeesItsGrantAndNothingMore(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			dsn := ""
			if db == "postgres" {
				dsn = testpg.DSN(t)
			}
			testGrant(t, startJobs(t, dsn, server.Config{}))
		})
	}
}

func testGrant(t *testing.T, b *bundle) {
	ctx := context.Background()
	fake := billing(t, b)
	probe, err := os.ReadFile("testdata/grant_probe.py")
	if err != nil {
		t.Fatal(err)
	}
	other := "kind: route\nname: other\nupstream: " + fake.URL + "\n" +
		"auth: {resource: f/bot/stripe, bearer: apiKey}\n---\n" +
		"kind: tool\nname: admin_tool\nhttp:\n  url: " + fake.URL + "/v1/customers/cus_Acme0001\n" +
		"  auth: {resource: f/bot/stripe, bearer: apiKey}\n---\n" +
		"kind: toolset\nname: admin\ntools: [admin_tool]\n---\n"
	script, _ := json.Marshal(map[string]any{"kind": "script", "name": "probe",
		"command": []string{"python3", "probe.py"}, "files": map[string]string{"probe.py": string(probe)},
		"toolset": "billing", "routes": []string{"stripe"}, "timeout": "60s"})
	_, err = b.admin.Apply(ctx, []server.ApplyFile{{Name: "other.yaml", Content: other},
		{Name: "probe.json", Content: string(script)}}, false)
	if err != nil {
		t.Fatal(err)
	}

	args, _ := json.Marshal(map[string]string{"canary_reversed": reverse(canary)})
	j, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: "probe", Args: args}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != "succeeded" {
		logs, _ := b.admin.JobLogs(ctx, j.ID, 0)
		t.Fatalf("probe job %s: %s; logs: %+v", j.State, j.Reason, logs)
	}
	var got struct {
		Route struct {
			Status int
			Acme   bool
		}
		UngrantedRoute int `json:"ungranted_route"`
		Tools          []string
		ToolCall       struct {
			IsError bool `json:"is_error"`
			Acme    bool
		} `json:"tool_call"`
		UngrantedTool   bool     `json:"ungranted_tool"`
		EnvHasCanary    bool     `json:"env_has_canary"`
		FilesWithCanary []string `json:"files_with_canary"`
		ProcWithCanary  []string `json:"proc_with_canary"`
	}
	if err := json.Unmarshal(j.Result, &got); err != nil {
		t.Fatalf("result %s: %v", j.Result, err)
	}
	if got.Route.Status != 200 || !got.Route.Acme {
		t.Errorf("granted route: %+v", got.Route)
	}
	if got.UngrantedRoute != http.StatusForbidden {
		t.Errorf("ungranted route answered %d", got.UngrantedRoute)
	}
	if strings.Join(got.Tools, ",") != "get_customer,search_invoices" {
		t.Errorf("tools offered: %v", got.Tools)
	}
	if got.ToolCall.IsError || !got.ToolCall.Acme {
		t.Errorf("granted tool: %+v", got.ToolCall)
	}
	if !got.UngrantedTool {
		t.Error("an ungranted tool was callable")
	}
	if got.EnvHasCanary || len(got.FilesWithCanary) > 0 || len(got.ProcWithCanary) > 0 {
		t.Errorf("the secret reached the sandbox: env %v, files %v, proc %v",
			got.EnvHasCanary, got.FilesWithCanary, got.ProcWithCanary)
	}
	assertNoCanary(t, "job result", j.Result)
	logs, _ := b.admin.JobLogs(ctx, j.ID, 0)
	raw, _ := json.Marshal(logs)
	assertNoCanary(t, "job logs", raw)
}

func TestGrantDiesWithTheJob(t *testing.T) {
	t.Parallel()
	b := startJobs(t, "", server.Config{})
	billing(t, b)
	ctx := context.Background()
	j, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "command", Script: &jobs.Script{
		Command: []string{"sleep", "3"}, Routes: []string{"stripe"}, Toolset: "billing"}}, 0)
	if err != nil {
		t.Fatal(err)
	}

	// Reach the job's broker from outside, as something that stole its
	// socket would.
	var sock string
	deadline := time.Now().Add(10 * time.Second)
	for sock == "" && time.Now().Before(deadline) {
		m, _ := filepath.Glob(filepath.Join(os.TempDir(), "keyhole-run-*", j.ID+".sock"))
		if len(m) > 0 {
			sock = m[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sock == "" {
		t.Fatal("no broker socket for the running job")
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	url := "http://job/routes/stripe/v1/customers/search?query=email:%27billing@acme.example%27"
	resp, err := hc.Get(url)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("during the job: %v %v", resp, err)
	}
	resp.Body.Close()
	mcpInit := func() (*http.Response, error) {
		req, _ := http.NewRequest("POST", "http://job/mcp", strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",`+
				`"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		return hc.Do(req)
	}
	if resp, err := mcpInit(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("MCP during the job: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if j, err = b.admin.Job(ctx, j.ID, time.Minute); err != nil || j.State != "succeeded" {
		t.Fatalf("job = %+v, %v", j, err)
	}
	if resp, err := hc.Get(url); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the route grant still works after the job ended")
		}
	}
	if resp, err := mcpInit(); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the MCP grant still works after the job ended")
		}
	}
}

func TestJobBadInputAndLimits(t *testing.T) {
	t.Parallel()
	allowed := t.TempDir()
	b := startJobs(t, "", server.Config{MountAllow: []string{allowed}})
	ctx := context.Background()
	scripts := "kind: script\nname: typed\nrun: echo ok\ninput:\n  type: object\n" +
		"  properties: {n: {type: integer}}\n  required: [n]\n---\n" +
		"kind: script\nname: chatty\nrun: head -c 12000000 /dev/zero | tr '\\\\0' x\n---\n" +
		"kind: script\nname: forever\nrun: sleep 600\ntimeout: 2s\n"
	if _, err := b.admin.Apply(ctx, []server.ApplyFile{{Name: "s.yaml", Content: scripts}}, false); err != nil {
		t.Fatal(err)
	}

	// A mount outside --mount-allow is refused at apply, naming the path.
	bad := "kind: script\nname: peek\nrun: cat /host/shadow\nmounts:\n" +
		"  - {source: /etc, target: /host}\n"
	_, err := b.admin.Apply(ctx, []server.ApplyFile{{Name: "bad.yaml", Content: bad}}, false)
	if e := apiError(err); e == nil || !strings.Contains(e.Message, "/etc") {
		t.Fatalf("mount outside --mount-allow: %v", err)
	}

	_, err = b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: "nope"}, 0)
	if e := apiError(err); e == nil || e.Status != 404 {
		t.Errorf("unknown script: %v", err)
	}
	_, err = b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: "typed",
		Args: json.RawMessage(`{"n": "x"}`)}, 0)
	if e := apiError(err); e == nil || e.Status != 400 || !strings.Contains(e.Message, "/n") {
		t.Errorf("bad args: %v", err)
	}

	j, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: "chatty"}, time.Minute)
	if err != nil || j.State != "succeeded" {
		t.Fatalf("chatty: %+v, %v", j, err)
	}
	logs := allLogs(t, b, j.ID)
	if n := strings.Count(logs, "x"); n > jobs.DefaultMaxLogBytes || !strings.Contains(logs, "dropped") {
		t.Errorf("12 MB of output kept %d bytes and said %q", n, logs[max(0, len(logs)-200):])
	}

	j, err = b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: "forever"}, time.Minute)
	if err != nil || j.State != "timed_out" {
		t.Fatalf("forever: %+v, %v", j, err)
	}

	j, err = b.admin.Enqueue(ctx, jobs.Request{Kind: "command",
		Script: &jobs.Script{Run: "exit 7"}}, time.Minute)
	if err != nil || j.State != "failed" || *j.ExitCode != 7 || j.Reason != "exit status 7" {
		t.Fatalf("exit 7: %+v, %v", j, err)
	}
}

func allLogs(t *testing.T, b *bundle, id string) string {
	t.Helper()
	var out strings.Builder
	var after int64
	for {
		logs, err := b.admin.JobLogs(context.Background(), id, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range logs {
			out.WriteString(l.Data)
			after = l.Seq
		}
		if len(logs) < 1000 {
			return out.String()
		}
	}
}

func TestCancelQueuedAndRunningJobs(t *testing.T) {
	t.Parallel()
	b := startJobs(t, "", server.Config{Workers: 1})
	ctx := context.Background()
	long := &jobs.Script{Run: "sleep 60", Timeout: 0}
	running, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "command", Script: long}, 0)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "command", Script: long}, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, running.ID, "running")

	if j, err := b.admin.CancelJob(ctx, queued.ID); err != nil || j.State != "cancelled" {
		t.Fatalf("cancel queued: %+v, %v", j, err)
	}
	if _, err := b.admin.CancelJob(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	j, err := b.admin.Job(ctx, running.ID, 30*time.Second)
	if err != nil || j.State != "cancelled" {
		t.Fatalf("cancel running: %+v, %v", j, err)
	}
}

func waitState(t *testing.T, b *bundle, id, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		j, err := b.admin.Job(context.Background(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == state {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %s", id, state)
}

func TestFollowLogsOverSSE(t *testing.T) {
	t.Parallel()
	b := startJobs(t, "", server.Config{})
	ctx := context.Background()
	j, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "command", Script: &jobs.Script{
		Run: "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	final, err := b.admin.FollowJobLogs(ctx, j.ID, 0, func(l server.LogChunk) {
		if l.Stream == "stdout" {
			out.WriteString(l.Data)
		} else {
			errs.WriteString(l.Data)
		}
	})
	if err != nil || final.State != "succeeded" {
		t.Fatalf("follow: %+v, %v", final, err)
	}
	if out.String() != "line 1\nline 2\nline 3\n" || errs.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errs.String())
	}
	if string(final.Result) != `"line 1\nline 2\nline 3"` {
		t.Errorf("result %s", final.Result)
	}
}

func TestScriptIdentityToken(t *testing.T) {
	t.Parallel()
	b := startJobs(t, "", server.Config{})
	ctx := context.Background()
	def := "kind: script\nname: federate\nrun: cat /work/.keyhole/id_token\n" +
		"id_token: {audience: sts.example.com}\n"
	if _, err := b.admin.Apply(ctx, []server.ApplyFile{{Name: "s.yaml", Content: def}}, false); err != nil {
		t.Fatal(err)
	}
	j, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: "federate"}, time.Minute)
	if err != nil || j.State != "succeeded" {
		t.Fatalf("job: %+v, %v", j, err)
	}
	var raw string
	json.Unmarshal(j.Result, &raw)

	provider, err := gooidc.NewProvider(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := provider.Verifier(&gooidc.Config{ClientID: "sts.example.com"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("the job's token does not verify: %v", err)
	}
	var claims struct {
		JobID   string `json:"job_id"`
		JobName string `json:"job_name"`
	}
	tok.Claims(&claims)
	if tok.Subject != "workspace:default:script:federate" || claims.JobID != j.ID {
		t.Errorf("token for %s with claims %+v", tok.Subject, claims)
	}
}
