package agent_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/keyhole/keyhole/internal/agent"
	"github.com/keyhole/keyhole/internal/tool"
)

const specAgent = `kind: agent
name: billing-assistant
description: Answers "did they pay?"
provider: anthropic
llm: f/bot/anthropic
model: claude-sonnet-5-5
system: |
  You answer questions about customers' invoices.
toolset: billing
max_turns: 6
max_tokens: 1024
temperature: 0.2
timeout: 2m
budget: {tokens: 50000}
`

func TestDecodeSpec(t *testing.T) {
	t.Parallel()
	got, err := agent.Decode([]byte(specAgent))
	if err != nil {
		t.Fatal(err)
	}
	temp := 0.2
	want := &agent.Definition{
		Kind: "agent", Name: "billing-assistant", Description: `Answers "did they pay?"`,
		Provider: "anthropic", LLM: "f/bot/anthropic", Model: "claude-sonnet-5-5",
		System:  "You answer questions about customers' invoices.\n",
		Toolset: "billing", MaxTurns: 6, MaxTokens: 1024, Temperature: &temp,
		Timeout: tool.Duration(2 * time.Minute), Budget: &agent.Budget{Tokens: 50000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}
}

func TestDefinitionRoundTrip(t *testing.T) {
	t.Parallel()
	minimal := "kind: agent\nname: local\nprovider: openai\nllm: f/ollama\nmodel: llama3.2\n"
	for _, doc := range []string{specAgent, minimal} {
		d, err := agent.Decode([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := agent.Decode(j)
		if err != nil {
			t.Fatalf("decode %s: %v", j, err)
		}
		y, err := yaml.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		fromYAML, err := agent.Decode(y)
		if err != nil {
			t.Fatalf("decode %s: %v", y, err)
		}
		if diff := cmp.Diff(d, fromJSON); diff != "" {
			t.Errorf("JSON round trip (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(d, fromYAML); diff != "" {
			t.Errorf("YAML round trip (-want +got):\n%s", diff)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	base := "kind: agent\nname: a\nprovider: anthropic\nllm: f/bot/llm\nmodel: m\n"
	cases := []struct {
		name, doc, want string
	}{
		{"empty", "", "empty document"},
		{"not yaml", "kind: [", "invalid YAML"},
		{"two documents", base + "---\n" + base, "more than one YAML document"},
		{"unknown field", base + "tools: [a]\n", `line 6: unknown field "tools" in the agent`},
		{"unknown budget field", base + "budget: {dollars: 5}\n",
			`unknown field "dollars" in budget`},
		{"json unknown field", `{"kind":"agent","name":"a","prompt":"x"}`,
			`unknown field "prompt"`},
		{"json trailing", `{"kind":"agent"} {}`, "more than one value"},
		{"other kind", strings.Replace(base, "kind: agent", "kind: tool", 1), `kind is "tool"`},
		{"bad duration", base + "timeout: soon\n", `invalid duration "soon"`},
		{"no provider", strings.Replace(base, "provider: anthropic\n", "", 1),
			"provider: missing: use anthropic or openai"},
		{"bad provider", strings.Replace(base, "anthropic", "gemini", 1),
			`provider: "gemini" is not a provider`},
		{"no llm", strings.Replace(base, "llm: f/bot/llm\n", "", 1), "llm: missing"},
		{"bad llm", strings.Replace(base, "f/bot/llm", "/f/../x", 1), "llm: resource path"},
		{"no model", strings.Replace(base, "model: m\n", "", 1), "model: missing"},
		{"bad name", strings.Replace(base, "name: a", "name: 'a b'", 1), `name: name "a b"`},
		{"bad toolset", base + "toolset: 'bill ing'\n", "toolset:"},
		{"max_turns", base + "max_turns: 1000\n", "max_turns: 1000 is out of range"},
		{"negative max_tokens", base + "max_tokens: -1\n", "max_tokens: -1 is out of range"},
		{"hot anthropic", base + "temperature: 1.5\n", "anthropic takes 0 to 1"},
		{"long timeout", base + "timeout: 2h\n", "timeout: 2h0m0s is out of range"},
		{"zero budget", base + "budget: {tokens: 0}\n", "budget.tokens: must be at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := agent.Decode([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	d := &agent.Definition{Kind: agent.Kind, Name: "a", Provider: "openai", LLM: "f/x",
		MaxTurns: -1}
	err := d.Validate()
	for _, want := range []string{"model: missing", "max_turns: -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	hot := 1.5
	d = &agent.Definition{Kind: agent.Kind, Name: "a", Provider: "openai", LLM: "f/x",
		Model: "m", Temperature: &hot}
	if err := d.Validate(); err != nil {
		t.Errorf("openai takes temperatures up to 2: %v", err)
	}
}
