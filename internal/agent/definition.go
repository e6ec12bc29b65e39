package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/tool"
)

// Kind is the kind of document an agent definition is.
const Kind = "agent"

// Providers an agent can use.
const (
	// ProviderAnthropic speaks Anthropic's Messages API.
	ProviderAnthropic = "anthropic"
	// ProviderOpenAI speaks the OpenAI Chat Completions API, which OpenAI
	// and compatible servers (vLLM, Ollama, llama.cpp) serve.
	ProviderOpenAI = "openai"
)

// Defaults and limits of a definition's settings.
const (
	DefaultMaxTurns  = 10
	MaxMaxTurns      = 100
	DefaultMaxTokens = 4096
	MaxMaxTokens     = 1 << 20
	DefaultTimeout   = 5 * time.Minute
	MaxTimeout       = time.Hour
)

// Definition is an agent as users write it (kind: agent):
//
//	kind: agent
//	name: billing-assistant
//	provider: anthropic
//	llm: f/bot/anthropic
//	model: claude-sonnet-5-5
//	system: You answer questions about customers' invoices.
//	toolset: billing
//	max_turns: 6
//	max_tokens: 1024
//	timeout: 2m
//	budget: {tokens: 50000}
//
// Decode one with [Decode]; [Definition.Validate] checks one built in code.
type Definition struct {
	Kind        string `json:"kind" yaml:"kind"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`

	// Provider is ProviderAnthropic or ProviderOpenAI.
	Provider string `json:"provider" yaml:"provider"`

	// LLM is the path of the resource holding the provider's API key: of
	// type anthropic or openai, matching Provider. Its optional baseURL
	// points the agent at a server other than the provider's public API.
	LLM string `json:"llm" yaml:"llm"`

	// Model is the provider's model name, sent as it is.
	Model string `json:"model" yaml:"model"`

	// System is the system prompt.
	System string `json:"system,omitempty" yaml:"system,omitempty"`

	// Toolset names the toolset whose tools the model may call; without
	// one the model only answers.
	Toolset string `json:"toolset,omitempty" yaml:"toolset,omitempty"`

	// MaxTurns bounds the model calls of a run; DefaultMaxTurns when zero.
	MaxTurns int `json:"max_turns,omitempty" yaml:"max_turns,omitempty"`

	// MaxTokens bounds the tokens the model generates in one call;
	// DefaultMaxTokens when zero.
	MaxTokens int64 `json:"max_tokens,omitempty" yaml:"max_tokens,omitempty"`

	// Temperature is sent when set: 0 to 1 for Anthropic, 0 to 2 for
	// OpenAI. Some models refuse it.
	Temperature *float64 `json:"temperature,omitempty" yaml:"temperature,omitempty"`

	// Timeout bounds a whole run; DefaultTimeout when zero.
	Timeout tool.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`

	// Budget bounds what a run may spend; no bound when nil.
	Budget *Budget `json:"budget,omitempty" yaml:"budget,omitempty"`
}

// Budget bounds what one run may spend.
type Budget struct {
	// Tokens is the most tokens, input and output summed over every model
	// call, a run may use. A run stops once it has used them; the model
	// call that crosses the line is not cut off, so a run can end up to
	// one call's usage over.
	Tokens int64 `json:"tokens" yaml:"tokens"`
}

// Validate checks the definition and reports every problem, each naming
// its field.
func (d *Definition) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}

	if d.Kind != Kind {
		add("kind", fmt.Errorf("is %q, want %q", d.Kind, Kind))
	}
	add("name", tool.CheckName(d.Name))
	add("provider", checkProvider(d.Provider))
	add("llm", checkLLM(d.LLM))
	if d.Model == "" {
		add("model", errors.New("missing: name the provider's model, such as claude-sonnet-5-5"))
	}
	if d.Toolset != "" {
		add("toolset", tool.CheckName(d.Toolset))
	}
	add("max_turns", checkRange(int64(d.MaxTurns), MaxMaxTurns))
	add("max_tokens", checkRange(d.MaxTokens, MaxMaxTokens))
	add("temperature", d.checkTemperature())
	add("timeout", checkTimeout(time.Duration(d.Timeout)))
	if d.Budget != nil && d.Budget.Tokens < 1 {
		add("budget.tokens", errors.New("must be at least 1; leave budget out for no bound"))
	}

	if len(errs) > 0 {
		return fmt.Errorf("agent %s: %w", d.Name, errors.Join(errs...))
	}
	return nil
}

func checkProvider(p string) error {
	switch p {
	case ProviderAnthropic, ProviderOpenAI:
		return nil
	case "":
		return errors.New("missing: use anthropic or openai (openai also covers " +
			"OpenAI-compatible servers such as vLLM, Ollama and llama.cpp)")
	}
	return fmt.Errorf("%q is not a provider: use anthropic or openai", p)
}

func checkLLM(path string) error {
	if path == "" {
		return errors.New("missing: name the resource holding the provider's API key, " +
			"such as f/bot/anthropic")
	}
	return resource.CheckPath(path)
}

func checkRange(v, most int64) error {
	if v < 0 || v > most {
		return fmt.Errorf("%d is out of range: use 1 to %d, or leave it out for the default",
			v, most)
	}
	return nil
}

func (d *Definition) checkTemperature() error {
	if d.Temperature == nil {
		return nil
	}
	t := *d.Temperature
	switch {
	case d.Provider == ProviderAnthropic && (t < 0 || t > 1):
		return fmt.Errorf("%g is out of range: anthropic takes 0 to 1", t)
	case t < 0 || t > 2:
		return fmt.Errorf("%g is out of range: use 0 to 2", t)
	}
	return nil
}

func checkTimeout(t time.Duration) error {
	if t < 0 || t > MaxTimeout {
		return fmt.Errorf("%s is out of range: use at most %s, or leave it out for %s",
			t, MaxTimeout, DefaultTimeout)
	}
	return nil
}

// maxTurns returns the turn limit in force.
func (d *Definition) maxTurns() int {
	if d.MaxTurns == 0 {
		return DefaultMaxTurns
	}
	return d.MaxTurns
}

// maxTokens returns the per-call output limit in force.
func (d *Definition) maxTokens() int64 {
	if d.MaxTokens == 0 {
		return DefaultMaxTokens
	}
	return d.MaxTokens
}

// timeout returns the run timeout in force.
func (d *Definition) timeout() time.Duration {
	if d.Timeout == 0 {
		return DefaultTimeout
	}
	return time.Duration(d.Timeout)
}

// budgetTokens returns the token budget, or 0 for none.
func (d *Definition) budgetTokens() int64 {
	if d.Budget == nil {
		return 0
	}
	return d.Budget.Tokens
}
