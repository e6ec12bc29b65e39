package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	fakeanthropic "github.com/keyhole/keyhole/internal/fake/anthropic"
	fakeopenai "github.com/keyhole/keyhole/internal/fake/openai"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
)

// llmCanary is the model provider's key: it must reach the model only as
// the x-api-key header keyhole sends.
const llmCanary = "sk-ant-api03-LLMCANARY-9f8e7d6c5b4a"

// modelServer is a local stand-in for a model provider.
type modelServer struct {
	baseURL  string
	keyIn    func(h http.Header) string // where the key arrived
	requests func() []recorded
}

type recorded struct {
	header http.Header
	body   []byte
}

// billingModel plays "did Acme pay?" in a provider's protocol: look the
// customer up, search the invoices, answer from the result.
func billingModel(t *testing.T, provider string) *modelServer {
	t.Helper()
	answer := func(results []string) string {
		if len(results) > 0 && strings.Contains(results[0], `"paid"`) {
			return "Yes, Acme paid."
		}
		return "No payment found."
	}
	email := map[string]any{"email": "billing@acme.example"}
	if provider == "openai" {
		m := fakeopenai.NewServer(&fakeopenai.Options{Key: llmCanary, Turns: []fakeopenai.Turn{
			fakeopenai.CallTool("get_customer", email), fakeopenai.CallTool("search_invoices", email),
			func(r *fakeopenai.Request) fakeopenai.Reply {
				var texts []string
				for _, res := range r.ToolResults() {
					texts = append([]string{res.Content}, texts...)
				}
				return fakeopenai.Reply{Text: answer(texts)}
			}}})
		t.Cleanup(m.Close)
		return &modelServer{baseURL: m.URL + "/v1",
			keyIn: func(h http.Header) string { return strings.TrimPrefix(h.Get("Authorization"), "Bearer ") },
			requests: func() []recorded {
				var out []recorded
				for _, r := range m.Requests() {
					out = append(out, recorded{r.Header, r.Body})
				}
				return out
			}}
	}
	m := fakeanthropic.NewServer(&fakeanthropic.Options{Key: llmCanary, Turns: []fakeanthropic.Turn{
		fakeanthropic.CallTool("get_customer", email), fakeanthropic.CallTool("search_invoices", email),
		func(r *fakeanthropic.Request) fakeanthropic.Reply {
			var texts []string
			for _, res := range r.ToolResults() {
				texts = append(texts, res.Text)
			}
			return fakeanthropic.Reply{Text: answer(texts)}
		}}})
	t.Cleanup(m.Close)
	return &modelServer{baseURL: m.URL, keyIn: func(h http.Header) string { return h.Get("x-api-key") },
		requests: func() []recorded {
			var out []recorded
			for _, r := range m.Requests() {
				out = append(out, recorded{r.Header, r.Body})
			}
			return out
		}}
}

// setupAgent stores the model's key and the billing agent for provider.
func setupAgent(t *testing.T, b *bundle, provider string) *modelServer {
	t.Helper()
	ctx := context.Background()
	model := billingModel(t, provider)
	_, err := b.admin.SetResource(ctx, "f/bot/llm", resource.SetRequest{Type: provider,
		Value: json.RawMessage(`{"apiKey": "` + llmCanary + `", "baseURL": "` + model.baseURL + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	def := "kind: agent\nname: billing-assistant\nprovider: " + provider + "\nllm: f/bot/llm\n" +
		"model: test-model\nsystem: Answer billing questions.\ntoolset: billing\nmax_turns: 6\n"
	if _, err := b.admin.Apply(ctx, []server.ApplyFile{{Name: "agent.yaml", Content: def}}, false); err != nil {
		t.Fatal(err)
	}
	return model
}

// TestAgentJob runs the billing agent as a job against local servers that
// speak the Anthropic Messages API and the OpenAI Chat Completions API, with
// tools calling the Stripe stand-in.
func TestAgentJob(t *testing.T) {
	for _, provider := range []string{"anthropic", "openai"} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			testAgentJob(t, provider)
		})
	}
}

func testAgentJob(t *testing.T, provider string) {
	b := startJobs(t, "", server.Config{})
	billing(t, b)
	ctx := context.Background()
	model := setupAgent(t, b, provider)
	var err error

	args, _ := json.Marshal(jobs.AgentArgs{Message: "Did Acme pay?"})
	j, err := b.admin.Enqueue(ctx, jobs.Request{Kind: "agent", Name: "billing-assistant", Args: args}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != "succeeded" || string(j.Result) != `"Yes, Acme paid."` {
		t.Fatalf("agent job: %s %s %s", j.State, j.Reason, j.Result)
	}
	if len(j.Transcript) == 0 || !strings.Contains(string(j.Transcript), "search_invoices") {
		t.Errorf("transcript: %s", j.Transcript)
	}

	reqs := model.requests()
	if len(reqs) != 3 {
		t.Errorf("the model got %d requests, want 3", len(reqs))
	}
	assertModelRequests(t, model, reqs, llmCanary, canary)
	for _, secret := range []string{llmCanary, canary} {
		if strings.Contains(string(j.Transcript), secret) || strings.Contains(allLogs(t, b, j.ID), secret) {
			t.Error("a secret is in the transcript or the job log")
		}
	}

	// A message is required.
	_, err = b.admin.Enqueue(ctx, jobs.Request{Kind: "agent", Name: "billing-assistant"}, 0)
	if e := apiError(err); e == nil || e.Status != 400 {
		t.Errorf("agent job without a message: %v", err)
	}
}

// assertModelRequests checks that every request the model got carries the
// key keyhole sends, in its header, and no secret anywhere else.
func assertModelRequests(t *testing.T, model *modelServer, reqs []recorded, secrets ...string) {
	t.Helper()
	for _, r := range reqs {
		if model.keyIn(r.header) != llmCanary {
			t.Error("a model request came without the key keyhole sends")
		}
		hdr := r.header.Clone()
		hdr.Del("x-api-key")
		hdr.Del("Authorization")
		raw, _ := json.Marshal(hdr)
		assertNone(t, "a model request", secrets, string(r.body), string(raw))
	}
}
