package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/agent"
	fakeanthropic "github.com/keyhole/keyhole/internal/fake/anthropic"
	fakeopenai "github.com/keyhole/keyhole/internal/fake/openai"
	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/tool"
)

// Canary secrets: none may appear in a request body sent to a model or
// anywhere in a transcript.
const (
	stripeKey = "sk_test_CANARY_stripe_5b1f0c9e8d7a6b5c4d3e"
	llmKey    = "sk-CANARY-llm-key-9a8b7c6d5e4f3a2b1c0d"
)

// runTimeout bounds every run a test makes, so nothing hangs.
const runTimeout = 20 * time.Second

// result is a tool result as a script turn sees it, whichever provider.
type result struct {
	Name    string
	Text    string
	IsError bool // Anthropic's is_error; always false for OpenAI
}

// call is a tool call a script turn asks for. Args is sent as it is when
// a string (OpenAI only), and as JSON otherwise.
type call struct {
	Name string
	Args any
}

// answer is a script turn's reply, whichever provider.
type answer struct {
	Text   string
	Calls  []call
	Tokens int64 // input tokens to report, with as many output tokens; estimated when 0
	Delay  time.Duration
	Status int // answer with an API error of this status
}

// turn is one step of a provider-neutral script.
type turn func(seen []result) answer

// provider starts a fake of one provider playing a script and returns
// what a run needs to reach it.
type provider struct {
	name  string
	start func(t *testing.T, turns []turn, rest turn) *fakeLLM
}

// fakeLLM is a running fake model server.
type fakeLLM struct {
	cred     *tool.Credential
	requests func() []recorded
}

// recorded is what the fake received in one request.
type recorded struct {
	Header      http.Header
	Body        []byte
	System      string
	Tools       []string
	Temperature *float64
}

var providers = []provider{
	{agent.ProviderAnthropic, startAnthropic},
	{agent.ProviderOpenAI, startOpenAI},
}

func credFor(provider, rawURL string) *tool.Credential {
	u, _ := url.Parse(rawURL)
	return &tool.Credential{Path: "f/bot/" + provider, Type: provider,
		Fields:       map[string]any{"apiKey": llmKey, "baseURL": rawURL},
		SecretFields: []string{"apiKey"}, AllowedHosts: []string{u.Host}}
}

func startAnthropic(t *testing.T, turns []turn, rest turn) *fakeLLM {
	t.Helper()
	conv := func(tn turn) fakeanthropic.Turn {
		if tn == nil {
			return nil
		}
		return func(r *fakeanthropic.Request) fakeanthropic.Reply {
			var seen []result
			for _, res := range r.ToolResults() {
				seen = append(seen, result{res.Name, res.Text, res.IsError})
			}
			a := tn(seen)
			rep := fakeanthropic.Reply{Text: a.Text, Delay: a.Delay}
			for _, c := range a.Calls {
				rep.ToolCalls = append(rep.ToolCalls, fakeanthropic.ToolCall{Name: c.Name,
					Input: c.Args})
			}
			if a.Tokens > 0 {
				rep.Usage = &fakeanthropic.Usage{InputTokens: a.Tokens, OutputTokens: a.Tokens}
			}
			if a.Status != 0 {
				rep.Error = &fakeanthropic.APIError{Status: a.Status, Message: "scripted"}
			}
			return rep
		}
	}
	opts := &fakeanthropic.Options{Key: llmKey, Rest: conv(rest)}
	for _, tn := range turns {
		opts.Turns = append(opts.Turns, conv(tn))
	}
	srv := fakeanthropic.NewServer(opts)
	t.Cleanup(srv.Close)
	return &fakeLLM{cred: credFor(agent.ProviderAnthropic, srv.URL),
		requests: func() []recorded {
			var out []recorded
			for _, r := range srv.Requests() {
				out = append(out, recorded{r.Header, r.Body, r.System, r.ToolNames(),
					r.Temperature})
			}
			return out
		}}
}

func startOpenAI(t *testing.T, turns []turn, rest turn) *fakeLLM {
	t.Helper()
	conv := func(tn turn) fakeopenai.Turn {
		if tn == nil {
			return nil
		}
		return func(r *fakeopenai.Request) fakeopenai.Reply {
			var seen []result
			for _, res := range r.ToolResults() {
				seen = append(seen, result{Name: res.Name, Text: res.Content})
			}
			a := tn(seen)
			rep := fakeopenai.Reply{Text: a.Text, Delay: a.Delay}
			for _, c := range a.Calls {
				rep.ToolCalls = append(rep.ToolCalls, fakeopenai.ToolCall{Name: c.Name,
					Arguments: c.Args})
			}
			if a.Tokens > 0 {
				rep.Usage = &fakeopenai.Usage{PromptTokens: a.Tokens, CompletionTokens: a.Tokens}
			}
			if a.Status != 0 {
				rep.Error = &fakeopenai.APIError{Status: a.Status, Message: "scripted"}
			}
			return rep
		}
	}
	opts := &fakeopenai.Options{Key: llmKey, Rest: conv(rest)}
	for _, tn := range turns {
		opts.Turns = append(opts.Turns, conv(tn))
	}
	srv := fakeopenai.NewServer(opts)
	t.Cleanup(srv.Close)
	return &fakeLLM{cred: credFor(agent.ProviderOpenAI, srv.URL+"/v1"),
		requests: func() []recorded {
			var out []recorded
			for _, r := range srv.Requests() {
				out = append(out, recorded{r.Header, r.Body, r.System(), r.ToolNames(),
					r.Temperature})
			}
			return out
		}}
}

// definition returns a valid agent for provider, changed by edit.
func definition(provider string, edit func(d *agent.Definition)) *agent.Definition {
	d := &agent.Definition{Kind: agent.Kind, Name: "billing-assistant", Provider: provider,
		LLM: "f/bot/" + provider, Model: "test-model", Toolset: "billing",
		System: "You answer billing questions."}
	if edit != nil {
		edit(d)
	}
	return d
}

// stripeTools is a toolset whose tools are the examples' get_customer and
// search_invoices, called through the real executor against a fake
// Stripe, as a broker would. It counts the calls that reach it.
type stripeTools struct {
	agent.ToolFuncs
	calls atomic.Int32
}

const exampleDir = "../../examples/stripe-billing"

func newStripeTools(t testing.TB) *stripeTools {
	t.Helper()
	s := stripe.NewServer(&stripe.Options{Key: stripeKey})
	t.Cleanup(s.Close)
	cred := &tool.Credential{Path: "f/bot/stripe", Type: "stripe",
		Fields: map[string]any{"apiKey": stripeKey}, SecretFields: []string{"apiKey"},
		AllowedHosts: []string{strings.TrimPrefix(s.URL, "http://")}}
	src := tool.CredentialFunc(func(context.Context, string) (*tool.Credential, error) {
		return cred, nil
	})
	set, err := tool.DecodeToolset(readExample(t, "billing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tools []*tool.Tool
	for _, name := range set.Tools {
		doc := strings.ReplaceAll(string(readExample(t, name+".yaml")),
			"https://api.stripe.com", s.URL)
		d, err := tool.DecodeTool([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		tl, err := tool.Compile(d)
		if err != nil {
			t.Fatal(err)
		}
		tools = append(tools, tl)
	}

	st := &stripeTools{}
	ex := tool.NewExecutor(nil)
	st.ListTools = func(context.Context) ([]*tool.Tool, error) { return tools, nil }
	st.CallTool = func(ctx context.Context, name string, args json.RawMessage) (*tool.Result,
		error) {
		st.calls.Add(1)
		for _, tl := range tools {
			if tl.Name() == name {
				return ex.Call(ctx, tl, src, args), nil
			}
		}
		return nil, fmt.Errorf("tool %s is not granted", name)
	}
	return st
}

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs def against llm with tools, within runTimeout.
func run(t *testing.T, runner *agent.Runner, llm *fakeLLM, def *agent.Definition,
	tools agent.Tools, message string) (*agent.Transcript, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	return runner.Run(ctx, &agent.Input{Agent: def, LLM: llm.cred, Tools: tools,
		Message: message, Secrets: []string{stripeKey}})
}
