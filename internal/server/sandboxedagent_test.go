package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	fakeanthropic "github.com/keyhole/keyhole/internal/fake/anthropic"
	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
)

// agentExample is the example this test runs, relative to this package.
const agentExample = "../../examples/sandboxed-agent"

// exampleMountSource is the mount source the example's script names; the
// test points it at the example's folder in this checkout.
const exampleMountSource = "/opt/keyhole/sandboxed-agent"

// agentKeys are the Stripe and Anthropic keys of one run. They are made at
// run time, so no binary or file on disk holds them before the test.
type agentKeys struct {
	stripe, anthropic string
	created           time.Time
}

func newAgentKeys() agentKeys {
	return agentKeys{stripe: "sk_live_" + rand.Text(), anthropic: "sk-ant-api03-" + rand.Text(),
		created: time.Now()}
}

// each returns every form of every key a leak might take, by name.
func (k agentKeys) each() map[string]string {
	out := map[string]string{}
	for name, key := range map[string]string{"stripe": k.stripe, "anthropic": k.anthropic} {
		for i, form := range secretForms(key) {
			out[name+[]string{"", " (base64)", " (base64url)"}[i]] = form
		}
	}
	return out
}

// needles describe the keys to the probe without handing it a copy: a public
// prefix, the length and a SHA-256 of each form.
func (k agentKeys) needles() []map[string]any {
	var out []map[string]any
	for name, form := range k.each() {
		sum := sha256.Sum256([]byte(form))
		out = append(out, map[string]any{"name": name, "prefix": form[:8], "length": len(form),
			"sha256": hex.EncodeToString(sum[:])})
	}
	return out
}

// assertNoKey fails if data holds any form of either key.
func (k agentKeys) assertNoKey(t *testing.T, where string, data []byte) {
	t.Helper()
	for name, form := range k.each() {
		if bytes.Contains(data, []byte(form)) {
			t.Errorf("the %s key appears in %s", name, where)
		}
	}
}

// agentExampleDir returns the example's folder, skipping the test (or
// failing it, with KEYHOLE_TEST_NODE=require) when node or the example's
// node_modules are missing.
func agentExampleDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(agentExample)
	if err != nil {
		t.Fatal(err)
	}
	_, nodeErr := exec.LookPath("node")
	sdk := filepath.Join(dir, "node_modules", "@anthropic-ai", "claude-agent-sdk")
	_, sdkErr := os.Stat(sdk)
	if nodeErr != nil || sdkErr != nil {
		if os.Getenv("KEYHOLE_TEST_NODE") == "require" {
			t.Fatalf("node or the Claude Agent SDK is missing (run npm ci --prefix %s)", dir)
		}
		t.Skipf("node or the Claude Agent SDK is missing; run npm ci --prefix %s "+
			"(KEYHOLE_TEST_NODE=require fails instead)", dir)
	}
	return dir
}

// billingTurn plays "did Acme pay?" from the conversation alone, so that it
// answers any number of runs: look the customer up, search the invoices,
// then answer quoting what search_invoices returned. The tools reach the
// model named mcp__keyhole__get_customer and so on.
func billingTurn(r *fakeanthropic.Request) fakeanthropic.Reply {
	tool := func(suffix string) string {
		for _, name := range r.ToolNames() {
			if strings.HasSuffix(name, "__"+suffix) || name == suffix {
				return name
			}
		}
		return ""
	}
	lookup, search := tool("get_customer"), tool("search_invoices")
	if lookup == "" || search == "" {
		return fakeanthropic.Reply{Text: "I was offered no billing tools: " +
			strings.Join(r.ToolNames(), ", ")}
	}
	email := map[string]any{"email": "billing@acme.example"}
	results := r.ToolResults()
	switch {
	case len(results) == 0:
		return fakeanthropic.Reply{Text: "Let me look Acme up.",
			ToolCalls: []fakeanthropic.ToolCall{{Name: lookup, Input: email}}}
	case results[0].Name == lookup:
		return fakeanthropic.Reply{
			ToolCalls: []fakeanthropic.ToolCall{{Name: search, Input: email}}}
	}
	// The pause keeps Claude Code running a little longer, for the probe
	// to read its /proc files.
	return fakeanthropic.Reply{Text: invoiceAnswer(results[0].Text),
		Delay: 300 * time.Millisecond}
}

// invoiceAnswer words an answer from a search_invoices result. Claude Code
// may append its own text after the tool's JSON.
func invoiceAnswer(result string) string {
	var invoices []struct{ Number, Status string }
	err := json.NewDecoder(strings.NewReader(result)).Decode(&invoices)
	if err != nil || len(invoices) == 0 {
		return "I could not read the invoices: " + result
	}
	var parts []string
	for _, in := range invoices {
		parts = append(parts, "invoice "+in.Number+" is "+in.Status)
	}
	return "Acme's " + strings.Join(parts, "; ") + "."
}

// agentSetup is a server with the example applied, against local stand-ins
// for Stripe and the Messages API.
type agentSetup struct {
	b      *bundle
	keys   agentKeys
	stripe *stripe.Server
	model  *fakeanthropic.Server
	app    string // the example's folder, mounted at /app
}

func setupAgentExample(t *testing.T) *agentSetup {
	t.Helper()
	app := agentExampleDir(t)
	s := &agentSetup{b: startJobs(t, "", server.Config{MountAllow: []string{app}}),
		keys: newAgentKeys(), app: app}
	s.stripe = stripe.NewServer(&stripe.Options{Key: s.keys.stripe})
	t.Cleanup(s.stripe.Close)
	s.model = fakeanthropic.NewServer(&fakeanthropic.Options{Key: s.keys.anthropic,
		Rest: billingTurn})
	t.Cleanup(s.model.Close)

	ctx := context.Background()
	for _, r := range []struct{ path, typ, key, url string }{
		{"f/bot/stripe", "stripe", s.keys.stripe, s.stripe.URL},
		{"f/bot/anthropic", "anthropic", s.keys.anthropic, s.model.URL},
	} {
		_, err := s.b.admin.SetResource(ctx, r.path, resource.SetRequest{Type: r.typ,
			AllowedHosts: []string{"api." + r.typ + ".com", strings.TrimPrefix(r.url, "http://")},
			Value:        json.RawMessage(`{"apiKey": "` + r.key + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.b.admin.Apply(ctx, s.files(t), false); err != nil {
		t.Fatal(err)
	}
	return s
}

// files are the billing tools of examples/stripe-billing and the example's
// own files, pointed at the stand-ins and at this checkout.
func (s *agentSetup) files(t *testing.T) []server.ApplyFile {
	t.Helper()
	def, err := os.ReadFile(filepath.Join(agentExample, "keyhole.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := append(exampleFiles(t), server.ApplyFile{Name: "keyhole.yaml", Content: string(def)})
	r := strings.NewReplacer("https://api.stripe.com", s.stripe.URL,
		"https://api.anthropic.com", s.model.URL, exampleMountSource, s.app)
	for i := range files {
		files[i].Content = r.Replace(files[i].Content)
	}
	return files
}

// run runs a script job to its end, within limit.
func (s *agentSetup) run(t *testing.T, name string, args any, limit time.Duration) *server.JobInfo {
	t.Helper()
	ctx := context.Background()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.b.admin.Enqueue(ctx, jobs.Request{Kind: "script", Name: name, Args: raw}, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		wait := min(time.Until(deadline), 30*time.Second).Round(time.Second) + time.Second
		if j, err = s.b.admin.Job(ctx, j.ID, wait); err != nil {
			t.Fatal(err)
		}
		if j.FinishedAt != nil {
			return j
		}
	}
	s.b.admin.CancelJob(ctx, j.ID)
	t.Fatalf("job %s did not finish within %s; its log:\n%s", name, limit, allLogs(t, s.b, j.ID))
	return nil
}

// TestSandboxedAgentExample runs examples/sandboxed-agent: the Claude Agent
// SDK in keyhole's sandbox, with the billing tools over MCP through the
// job's broker and the model behind the anthropic route. It answers "did
// Acme pay?" from the Stripe stand-in's invoices, while the model gets the
// key only from keyhole and nothing the sandbox can read holds either key.
//
// The probe reads every file in the sandbox but for the contents of files
// under /usr and the other system folders bound read-only from the host
// that are older than the keys: those cannot hold keys made after them.
//
// It needs node and the example's node_modules (npm ci --prefix
// examples/sandboxed-agent; .ci/run does it and sets KEYHOLE_TEST_NODE=require).
func TestSandboxedAgentExample(t *testing.T) {
	t.Parallel()
	s := setupAgentExample(t)

	j := s.run(t, "sandboxed-agent", map[string]string{"question": "Did Acme pay?"}, 2*time.Minute)
	logs := allLogs(t, s.b, j.ID)
	if j.State != "succeeded" {
		t.Fatalf("the agent job %s (%s); its log:\n%s\nmodel requests:\n%s",
			j.State, j.Reason, logs, s.modelTraffic())
	}
	var got struct {
		Answer    string
		ToolCalls []string `json:"tool_calls"`
	}
	if err := json.Unmarshal(j.Result, &got); err != nil {
		t.Fatalf("result %s: %v", j.Result, err)
	}
	if got.Answer != "Acme's invoice ACME-0001 is paid." {
		t.Errorf("answer %q, want it from the invoice search", got.Answer)
	}
	want := []string{"mcp__keyhole__get_customer", "mcp__keyhole__search_invoices"}
	if !slices.Equal(got.ToolCalls, want) {
		t.Errorf("tool calls %v, want %v", got.ToolCalls, want)
	}
	s.checkUpstreams(t)
	for where, data := range map[string][]byte{"the job's result": j.Result,
		"the job's log": []byte(logs)} {
		s.keys.assertNoKey(t, where, data)
	}

	s.probe(t)
}

// checkUpstreams checks what reached the stand-ins: the model got the key
// only as x-api-key, set by keyhole, and never the Stripe key; Stripe got
// both searches.
func (s *agentSetup) checkUpstreams(t *testing.T) {
	t.Helper()
	reqs := s.model.Requests()
	if len(reqs) < 3 {
		t.Errorf("the model got %d requests, want at least 3:\n%s", len(reqs), s.modelTraffic())
	}
	for i, r := range reqs {
		if r.Header.Get("x-api-key") != s.keys.anthropic {
			t.Errorf("model request %d came without keyhole's x-api-key", i)
		}
		hdr := r.Header.Clone()
		hdr.Del("x-api-key")
		raw, _ := json.Marshal(hdr)
		s.keys.assertNoKey(t, "a model request's other headers", raw)
		s.keys.assertNoKey(t, "a model request's body", r.Body)
		if bytes.Contains(raw, []byte("placeholder")) {
			t.Errorf("the sandbox's placeholder key reached the model")
		}
	}

	var paths []string
	for _, r := range s.stripe.Requests() {
		paths = append(paths, r.Path)
	}
	if !slices.Contains(paths, "/v1/customers/search") ||
		!slices.Contains(paths, "/v1/invoices/search") {
		t.Errorf("Stripe got %v, want both searches", paths)
	}
}

// exampleScript returns the example's script as the test applied it.
func (s *agentSetup) exampleScript(t *testing.T) *jobs.Script {
	t.Helper()
	for _, f := range s.files(t) {
		if f.Name != "keyhole.yaml" {
			continue
		}
		for _, doc := range strings.Split(f.Content, "\n---\n") {
			if sc, err := jobs.DecodeScript([]byte(doc)); err == nil {
				return sc
			}
		}
	}
	t.Fatal("examples/sandboxed-agent/keyhole.yaml holds no script")
	return nil
}

// modelTraffic lists the model's requests, for failure messages.
func (s *agentSetup) modelTraffic() string {
	var b strings.Builder
	for _, r := range s.model.Requests() {
		b.WriteString(r.Model + " tools " + strings.Join(r.ToolNames(), ",") + "\n")
	}
	return b.String()
}

// probe runs the example again under the probe in testdata, as a script
// with the example's mounts, environment, toolset and routes, and checks
// what the probe found.
func (s *agentSetup) probe(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	sc := s.exampleScript(t)
	code, err := os.ReadFile("testdata/sandboxed_agent_probe.mjs")
	if err != nil {
		t.Fatal(err)
	}
	sc.Name, sc.Input = "sandboxed-agent-probe", nil
	sc.Command = []string{"node", "/work/probe.mjs"}
	sc.Files = map[string]string{"probe.mjs": string(code)}
	raw, _ := json.Marshal(sc)
	probe := server.ApplyFile{Name: "probe.json", Content: string(raw)}
	if _, err := s.b.admin.Apply(ctx, []server.ApplyFile{probe}, false); err != nil {
		t.Fatal(err)
	}

	j := s.run(t, sc.Name, map[string]any{"question": "Did Acme pay?",
		"needles": s.keys.needles(), "keys_created_ms": s.keys.created.UnixMilli()}, 2*time.Minute)
	if j.State != "succeeded" {
		t.Fatalf("the probe job %s (%s); its log:\n%s", j.State, j.Reason, allLogs(t, s.b, j.ID))
	}
	var got struct {
		AgentExit   int                     `json:"agent_exit"`
		AgentResult struct{ Answer string } `json:"agent_result"`
		Leaks       []string
		ProcReads   int      `json:"proc_reads"`
		Environs    []string `json:"environs_read"`
		Files       struct {
			Searched, Bytes int64
			Older           int64 `json:"older_system_files"`
		}
	}
	if err := json.Unmarshal(j.Result, &got); err != nil {
		t.Fatalf("probe result %s: %v", j.Result, err)
	}
	if got.AgentExit != 0 || !strings.Contains(got.AgentResult.Answer, "ACME-0001") {
		t.Errorf("under the probe the agent exited %d with %+v", got.AgentExit, got.AgentResult)
	}
	if len(got.Leaks) > 0 {
		t.Errorf("a key reached the sandbox: %v", got.Leaks)
	}
	// The probe must have read Claude Code's own environment, and more than
	// a handful of files, for its silence to mean anything.
	sawClaude := slices.ContainsFunc(got.Environs, func(c string) bool {
		return strings.Contains(c, "claude")
	})
	if !sawClaude || got.Files.Searched < 100 {
		t.Errorf("the probe saw too little: environments of %q, %d files",
			got.Environs, got.Files.Searched)
	}
	t.Logf("probe: %d /proc reads; %d files (%d MB) searched, %d system files older than "+
		"the keys; environments of %q", got.ProcReads, got.Files.Searched, got.Files.Bytes>>20,
		got.Files.Older, got.Environs)
}
