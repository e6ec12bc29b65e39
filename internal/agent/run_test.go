package agent_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/agent"
	"github.com/keyhole/keyhole/internal/redact"
	"github.com/keyhole/keyhole/internal/tool"
)

// canaries matches both canary secrets in every encoded form the
// redactor knows (raw, URL-escaped, JSON-escaped, base64).
var canaries = redact.New(stripeKey, llmKey)

// acmeScript is the "did Acme pay?" conversation: find the customer, then
// search the invoices by the email the first tool returned, then answer
// quoting both results.
func acmeScript() []turn {
	return []turn{
		func([]result) answer {
			return answer{Text: "Looking up Acme.", Calls: []call{
				{"get_customer", map[string]string{"email": "billing@acme.example"}}}}
		},
		func(seen []result) answer {
			var c struct{ ID, Email string }
			if len(seen) != 1 || json.Unmarshal([]byte(seen[0].Text), &c) != nil {
				return answer{Text: fmt.Sprintf("unexpected results %v", seen)}
			}
			return answer{Calls: []call{{"search_invoices", map[string]string{"email": c.Email}}}}
		},
		func(seen []result) answer {
			var invs []struct{ ID, Status, Customer string }
			if len(seen) != 1 || json.Unmarshal([]byte(seen[0].Text), &invs) != nil ||
				len(invs) == 0 {
				return answer{Text: fmt.Sprintf("unexpected results %v", seen)}
			}
			return answer{Text: fmt.Sprintf("Yes: %s's invoice %s is %s.", invs[0].Customer,
				invs[0].ID, invs[0].Status)}
		},
	}
}

func TestDidAcmePay(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		for _, stream := range []bool{false, true} {
			name := p.name + map[bool]string{false: "/json", true: "/stream"}[stream]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testDidAcmePay(t, p, stream)
			})
		}
	}
}

func testDidAcmePay(t *testing.T, p provider, stream bool) {
	llm := p.start(t, acmeScript(), nil)
	tools := newStripeTools(t)
	var steps []agent.Step
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	def := exampleAgent(t, p.name)
	runner := agent.NewRunner(&agent.RunnerOptions{Stream: stream})
	tr, err := runner.Run(ctx, &agent.Input{Agent: def, LLM: llm.cred,
		Tools: tools, Message: "did Acme pay?", Secrets: []string{stripeKey},
		OnStep: func(s agent.Step) { steps = append(steps, s) }})
	if err != nil {
		t.Fatal(err)
	}

	if want := "Yes: cus_Acme0001's invoice in_Acme0001 is paid."; tr.Answer != want ||
		tr.Stop != agent.StopFinal || tr.Turns != 3 {
		t.Errorf("answer %q, stop %s after %d turns", tr.Answer, tr.Stop, tr.Turns)
	}
	var kinds []string
	for _, s := range tr.Steps {
		kinds = append(kinds, string(s.Kind))
	}
	want := []string{"input", "model", "tool", "model", "tool", "model", "end"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(tr.Steps, steps); diff != "" {
		t.Errorf("OnStep saw other steps than the transcript (-transcript +OnStep):\n%s", diff)
	}
	checkAcmeSteps(t, tr)
	checkRequests(t, p.name, def.System, llm.requests())
	checkClean(t, tr)
}

// exampleAgent returns the example's agent, set to use provider.
func exampleAgent(t *testing.T, provider string) *agent.Definition {
	t.Helper()
	d, err := agent.Decode(readExample(t, "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d.Provider, d.LLM, d.Model = provider, "f/bot/"+provider, "test-model"
	return d
}

// checkAcmeSteps checks the tool steps and the usage of the Acme run.
func checkAcmeSteps(t *testing.T, tr *agent.Transcript) {
	t.Helper()
	customer, invoices := tr.Steps[2], tr.Steps[4]
	if customer.Call.Name != "get_customer" ||
		string(customer.Call.Arguments) != `{"email":"billing@acme.example"}` ||
		!strings.Contains(customer.Result, `"id":"cus_Acme0001"`) || customer.IsError {
		t.Errorf("get_customer step: %+v", customer)
	}
	if invoices.Call.Name != "search_invoices" ||
		!strings.Contains(invoices.Result, `"status":"paid"`) || invoices.Turn != 2 {
		t.Errorf("search_invoices step: %+v", invoices)
	}
	var sum agent.Usage
	for _, s := range tr.Steps {
		if s.Kind == agent.StepModel {
			if s.Usage == nil || s.Usage.InputTokens == 0 || s.Duration <= 0 {
				t.Errorf("model step without usage or timing: %+v", s)
				continue
			}
			sum.InputTokens += s.Usage.InputTokens
			sum.OutputTokens += s.Usage.OutputTokens
		}
	}
	if sum != tr.Usage {
		t.Errorf("usage %+v, steps sum to %+v", tr.Usage, sum)
	}
}

// checkRequests checks that the key reached the model only in the header
// its API reads it from, and that no secret is in any body.
func checkRequests(t *testing.T, provider, system string, reqs []recorded) {
	t.Helper()
	if len(reqs) != 3 {
		t.Fatalf("the model got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if canaries.Contains(string(r.Body)) {
			t.Errorf("request %d: a canary secret is in the body:\n%s", i, r.Body)
		}
		for name, values := range r.Header {
			keyHeader := map[string]string{agent.ProviderAnthropic: "X-Api-Key",
				agent.ProviderOpenAI: "Authorization"}[provider]
			for _, v := range values {
				if name != keyHeader && canaries.Contains(v) {
					t.Errorf("request %d: header %s holds a secret", i, name)
				}
			}
		}
		switch provider {
		case agent.ProviderAnthropic:
			if r.Header.Get("X-Api-Key") != llmKey || r.Header.Get("Authorization") != "" {
				t.Errorf("request %d: x-api-key %q, authorization %q", i,
					r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"))
			}
		case agent.ProviderOpenAI:
			if r.Header.Get("Authorization") != "Bearer "+llmKey ||
				r.Header.Get("X-Api-Key") != "" {
				t.Errorf("request %d: authorization %q", i, r.Header.Get("Authorization"))
			}
		}
		if r.System != system {
			t.Errorf("request %d: system prompt %q", i, r.System)
		}
		if diff := cmp.Diff([]string{"search_invoices", "get_customer"}, r.Tools); diff != "" {
			t.Errorf("request %d: tools (-want +got):\n%s", i, diff)
		}
	}
}

// checkClean fails the test if a canary shows anywhere in the transcript.
func checkClean(t *testing.T, tr *agent.Transcript) {
	t.Helper()
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatalf("transcript does not marshal: %v", err)
	}
	if canaries.Contains(string(b)) {
		t.Errorf("a canary secret is in the transcript:\n%s", b)
	}
}

// leakyTools returns, in every result, both canaries raw and base64
// encoded, as a careless tool might.
type leakyTools struct{}

func (leakyTools) List(context.Context) ([]agent.ToolSpec, error) {
	return []agent.ToolSpec{{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)}}, nil
}

func (leakyTools) Call(context.Context, string, json.RawMessage) agent.ToolOutcome {
	b64 := base64.StdEncoding.EncodeToString([]byte("key=" + llmKey))
	return agent.ToolOutcome{Content: fmt.Sprintf(`{"stripe":%q,"llm":%q,"b64":%q}`,
		stripeKey, llmKey, b64)}
}

// TestSecretsNeverReachTheModel feeds secrets in through a tool result,
// the message and the system prompt, and checks that neither the model
// nor the transcript sees them.
func TestSecretsNeverReachTheModel(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			var got []result
			llm := p.start(t, []turn{
				func([]result) answer { return answer{Calls: []call{{"echo", map[string]any{}}}} },
				func(seen []result) answer { got = seen; return answer{Text: "done"} },
			}, nil)
			def := definition(p.name, func(d *agent.Definition) {
				d.System = "Never say " + llmKey
			})
			tr, err := run(t, agent.NewRunner(nil), llm, def, leakyTools{},
				"is "+stripeKey+" my key?")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !strings.Contains(got[0].Text, redact.Mask) {
				t.Errorf("the model saw %+v", got)
			}
			for i, r := range llm.requests() {
				if canaries.Contains(string(r.Body)) {
					t.Errorf("request %d: a canary secret is in the body:\n%s", i, r.Body)
				}
			}
			checkClean(t, tr)
		})
	}
}

// countingTools records calls and answers each with its own name and
// arguments; with a barrier it holds every call until n are in flight.
type countingTools struct {
	mu      sync.Mutex
	names   []string
	barrier *barrier
}

func (c *countingTools) List(context.Context) ([]agent.ToolSpec, error) {
	schema := json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}}}`)
	return []agent.ToolSpec{{Name: "slow", Description: "waits", InputSchema: schema}}, nil
}

func (c *countingTools) Call(ctx context.Context, name string,
	args json.RawMessage) agent.ToolOutcome {
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
	if c.barrier != nil && !c.barrier.wait(ctx) {
		return agent.ToolOutcome{Content: "the other calls never came", IsError: true}
	}
	return agent.ToolOutcome{Content: name + string(args)}
}

// barrier releases its waiters once n have arrived, or gives up after a
// few seconds.
type barrier struct {
	mu      sync.Mutex
	n       int
	release chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, release: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) bool {
	b.mu.Lock()
	if b.n--; b.n == 0 {
		close(b.release)
	}
	b.mu.Unlock()
	select {
	case <-b.release:
		return true
	case <-time.After(5 * time.Second):
		return false
	case <-ctx.Done():
		return false
	}
}

func TestConcurrentToolCallsKeepTheirOrder(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			llm := p.start(t, []turn{
				func([]result) answer {
					return answer{Calls: []call{{"slow", map[string]int{"n": 1}},
						{"slow", map[string]int{"n": 2}}, {"slow", map[string]int{"n": 3}}}}
				},
				func(seen []result) answer {
					for _, r := range seen {
						got = append(got, r.Text)
					}
					return answer{Text: "all back"}
				},
			}, nil)
			tools := &countingTools{barrier: newBarrier(3)}
			tr, err := run(t, agent.NewRunner(nil), llm, definition(p.name, nil), tools, "go")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{`slow{"n":1}`, `slow{"n":2}`, `slow{"n":3}`}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("results the model saw (-want +got):\n%s", diff)
			}
			if tr.Answer != "all back" {
				t.Errorf("answer %q", tr.Answer)
			}
		})
	}
}

func TestBadToolCallsGetErrorResults(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			calls := []call{
				{"delete_everything", map[string]any{}},
				{"get_customer", map[string]string{"email": "not-an-email"}},
				{"get_customer", []int{1}},
			}
			if p.name == agent.ProviderOpenAI {
				calls = append(calls, call{"get_customer", `{"email": `})
			}
			var got []result
			llm := p.start(t, []turn{
				func([]result) answer { return answer{Calls: calls} },
				func(seen []result) answer { got = seen; return answer{Text: "sorry"} },
			}, nil)
			tools := newStripeTools(t)
			tr, err := run(t, agent.NewRunner(nil), llm, definition(p.name, nil), tools, "hi")
			if err != nil {
				t.Fatal(err)
			}

			wantIn := []string{`unknown tool \"delete_everything\"`, "is not valid email",
				"must be a JSON object", "must be a JSON object"}
			if len(got) != len(calls) {
				t.Fatalf("the model saw %d results, want %d", len(got), len(calls))
			}
			for i, r := range got {
				if !strings.Contains(r.Text, wantIn[i]) {
					t.Errorf("result %d: %q lacks %q", i, r.Text, wantIn[i])
				}
				if p.name == agent.ProviderAnthropic && !r.IsError {
					t.Errorf("result %d is not marked is_error", i)
				}
				if step := tr.Steps[2+i]; !step.IsError {
					t.Errorf("step %d is not an error: %+v", 2+i, step)
				}
			}
			if n := tools.calls.Load(); n != 1 {
				t.Errorf("%d calls reached the tools, want 1 (the invalid email)", n)
			}
			if tr.Stop != agent.StopFinal || tr.Answer != "sorry" {
				t.Errorf("stop %s, answer %q", tr.Stop, tr.Answer)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	callAgain := func([]result) answer {
		return answer{Calls: []call{{"slow", map[string]int{"n": 1}}}, Tokens: 300}
	}
	slow := func([]result) answer { return answer{Text: "late", Delay: time.Minute} }
	cases := []struct {
		name   string
		rest   turn
		edit   func(*agent.Definition)
		cancel time.Duration // cancel the run's context after this long
		within time.Duration // give the run's context this deadline
		stop   agent.StopReason
		turns  int
		msg    string
		is     error
	}{
		{"max_turns", callAgain, func(d *agent.Definition) { d.MaxTurns = 3 }, 0, 0,
			agent.StopMaxTurns, 3, "after 3 turns", nil},
		{"budget", callAgain, func(d *agent.Definition) { d.Budget = &agent.Budget{Tokens: 1000} },
			0, 0, agent.StopBudget, 2, "used 1200 tokens of its budget of 1000", nil},
		{"timeout", slow,
			func(d *agent.Definition) { d.Timeout = tool.Duration(300 * time.Millisecond) }, 0, 0,
			agent.StopTimeout, 1, "within its timeout of 300ms", context.DeadlineExceeded},
		{"caller deadline", slow, nil, 0, 300 * time.Millisecond, agent.StopTimeout, 1,
			"caller's deadline", context.DeadlineExceeded},
		{"cancelled", slow, nil, 300 * time.Millisecond, 0, agent.StopCancelled, 1, "cancelled",
			context.Canceled},
		{"model error", func([]result) answer { return answer{Status: 400} }, nil, 0, 0,
			agent.StopError, 1, "400", nil},
	}
	for _, p := range providers {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				llm := p.start(t, nil, tc.rest)
				within := runTimeout
				if tc.within > 0 {
					within = tc.within
				}
				ctx, cancel := context.WithTimeout(context.Background(), within)
				defer cancel()
				if tc.cancel > 0 {
					time.AfterFunc(tc.cancel, cancel)
				}
				tr, err := agent.NewRunner(nil).Run(ctx, &agent.Input{
					Agent: definition(p.name, tc.edit), LLM: llm.cred,
					Tools: &countingTools{}, Message: "loop"})

				var re *agent.RunError
				if !errors.As(err, &re) || re.Reason != tc.stop ||
					!strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("want a %s error saying %q, got %v", tc.stop, tc.msg, err)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%v is not %v", err, tc.is)
				}
				end := tr.Steps[len(tr.Steps)-1]
				if tr.Stop != tc.stop || tr.Turns != tc.turns || end.Kind != agent.StepEnd ||
					end.Stop != tc.stop || tr.Error == "" {
					t.Errorf("transcript: stop %s after %d turns, error %q, last step %+v",
						tr.Stop, tr.Turns, tr.Error, end)
				}
				checkClean(t, tr)
			})
		}
	}
}

func TestBadInputStopsBeforeAnyCall(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			llm := p.start(t, nil, func([]result) answer { return answer{Text: "hi"} })
			other := func(edit func(c *tool.Credential)) *tool.Credential {
				c := *llm.cred
				c.Fields = map[string]any{"apiKey": llmKey, "baseURL": llm.cred.Fields["baseURL"]}
				edit(&c)
				return &c
			}
			cases := []struct {
				name string
				in   agent.Input
				msg  string
			}{
				{"no agent", agent.Input{LLM: llm.cred, Message: "hi"}, "no agent"},
				{"no llm", agent.Input{Agent: definition(p.name, nil), Message: "hi"},
					"no credential"},
				{"no message", agent.Input{Agent: definition(p.name, nil), LLM: llm.cred},
					"message"},
				{"invalid agent", agent.Input{Agent: definition(p.name,
					func(d *agent.Definition) { d.Model = "" }), LLM: llm.cred, Message: "hi"},
					"model: missing"},
				{"other resource", agent.Input{Agent: definition(p.name, nil), Message: "hi",
					LLM: other(func(c *tool.Credential) { c.Path = "f/other" })}, "f/other"},
				{"wrong type", agent.Input{Agent: definition(p.name, nil), Message: "hi",
					LLM: other(func(c *tool.Credential) { c.Type = "stripe" })}, "of type stripe"},
				{"host not allowed", agent.Input{Agent: definition(p.name, nil), Message: "hi",
					LLM: other(func(c *tool.Credential) {
						c.AllowedHosts = []string{"api.example.com"}
					})},
					"not in the resource's allowed_hosts"},
				{"no key", agent.Input{Agent: definition(p.name, nil), Message: "hi",
					LLM: other(func(c *tool.Credential) { delete(c.Fields, "apiKey") })}, "apiKey"},
				{"public API not allowed", agent.Input{Agent: definition(p.name, nil),
					Message: "hi",
					LLM:     other(func(c *tool.Credential) { delete(c.Fields, "baseURL") })},
					"allowed_hosts"},
			}
			for _, tc := range cases {
				ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
				tr, err := agent.NewRunner(nil).Run(ctx, &tc.in)
				cancel()
				var re *agent.RunError
				if !errors.As(err, &re) || re.Reason != agent.StopError ||
					!strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%s: want an error saying %q, got %v", tc.name, tc.msg, err)
				}
				if tr == nil || tr.Stop != agent.StopError || tr.Turns != 0 {
					t.Errorf("%s: transcript %+v", tc.name, tr)
				}
			}
			if n := len(llm.requests()); n != 0 {
				t.Errorf("%d requests reached the model", n)
			}
		})
	}
}

func TestRequestSettings(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			llm := p.start(t, []turn{func([]result) answer { return answer{Text: "hi"} }}, nil)
			temp := 0.25
			def := definition(p.name, func(d *agent.Definition) {
				d.Temperature, d.MaxTokens, d.System, d.Toolset = &temp, 321, "", ""
			})
			if _, err := run(t, agent.NewRunner(nil), llm, def, nil, "hello"); err != nil {
				t.Fatal(err)
			}
			r := llm.requests()[0]
			if r.Temperature == nil || *r.Temperature != temp || r.System != "" ||
				len(r.Tools) != 0 || !strings.Contains(string(r.Body), `:321`) {
				t.Errorf("request: %s", r.Body)
			}
		})
	}
}

// TestTimeoutDuringToolCall checks that a tool still running when the
// run's timeout passes is told to stop and the run ends with timeout.
func TestTimeoutDuringToolCall(t *testing.T) {
	t.Parallel()
	llm := startAnthropic(t, nil, func([]result) answer {
		return answer{Calls: []call{{"slow", map[string]int{"n": 1}}}}
	})
	def := definition(agent.ProviderAnthropic, func(d *agent.Definition) {
		d.Timeout = tool.Duration(300 * time.Millisecond)
	})
	// The barrier waits for a second call that never comes, until the
	// context ends.
	tools := &countingTools{barrier: newBarrier(2)}
	start := time.Now()
	tr, err := run(t, agent.NewRunner(nil), llm, def, tools, "go")
	if !errors.Is(err, context.DeadlineExceeded) || tr.Stop != agent.StopTimeout {
		t.Fatalf("want a timeout, got %v", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the run took %s to notice its timeout", took)
	}
	if last := tr.Steps[len(tr.Steps)-2]; last.Kind != agent.StepTool || !last.IsError {
		t.Errorf("the interrupted tool call's step: %+v", last)
	}
}

func TestToolFuncsTurnsRefusalsIntoErrorResults(t *testing.T) {
	t.Parallel()
	f := agent.ToolFuncs{
		ListTools: func(context.Context) ([]*tool.Tool, error) { return nil, nil },
		CallTool: func(context.Context, string, json.RawMessage) (*tool.Result, error) {
			return nil, errors.New("tool x is not granted")
		},
	}
	got := f.Call(context.Background(), "x", json.RawMessage(`{}`))
	want := agent.ToolOutcome{Content: `{"error":"tool x is not granted"}`, IsError: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcome (-want +got):\n%s", diff)
	}
}
