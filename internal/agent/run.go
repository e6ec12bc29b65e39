package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/keyhole/keyhole/internal/redact"
	"github.com/keyhole/keyhole/internal/tool"
)

// RunnerOptions tunes a [Runner]. A nil *RunnerOptions means defaults.
type RunnerOptions struct {
	// Transport carries model calls; tool.NewTransport(nil) when nil, so
	// its dial guard applies. Tests may pass one that trusts a local TLS
	// server.
	Transport http.RoundTripper

	// Stream makes every model call a streamed one. Replies are the same
	// either way; streaming keeps long generations within the providers'
	// limits for a single response.
	Stream bool

	// Logger receives debug records of model and tool calls; nil discards
	// them.
	Logger *slog.Logger
}

// A Runner runs agents. It holds the connection pool to the providers, so
// share one across runs; it is safe for concurrent use.
type Runner struct {
	transport http.RoundTripper
	stream    bool
	log       *slog.Logger
	redactors *redact.Cache
}

// NewRunner returns a Runner.
func NewRunner(opts *RunnerOptions) *Runner {
	if opts == nil {
		opts = &RunnerOptions{}
	}
	r := &Runner{transport: opts.Transport, stream: opts.Stream, log: opts.Logger,
		redactors: redact.NewCache(0)}
	if r.transport == nil {
		r.transport = tool.NewTransport(nil)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// Input is what one run needs.
type Input struct {
	// Agent is the validated definition to run.
	Agent *Definition

	// LLM is the decrypted resource Agent.LLM names. Its apiKey goes only
	// to the provider, and only when its base URL's host is among
	// AllowedHosts.
	LLM *tool.Credential

	// Tools is the agent's toolset; nil offers the model no tools.
	Tools Tools

	// Message is the user's message that starts the conversation.
	Message string

	// Secrets are more values to redact from the transcript and from
	// what reaches the model, such as those of the toolset's resources.
	// The LLM resource's secrets are always redacted.
	Secrets []string

	// OnStep, when set, receives each step as the run records it, from
	// the goroutine that called Run; it should return quickly.
	OnStep func(Step)
}

// Run runs the agent on in.Message until the model answers or a limit
// ends the run. It always returns a transcript. The error is nil when the
// run ended with a final answer and a *RunError saying why otherwise.
func (r *Runner) Run(ctx context.Context, in *Input) (*Transcript, error) {
	if in == nil {
		in = &Input{}
	}
	l := r.newLoop(in)
	ctx, cancel := context.WithTimeoutCause(ctx, l.agent.timeout(), errRunTimeout)
	defer cancel()

	conv, tools, err := r.start(ctx, l, in)
	if err != nil {
		if ctx.Err() != nil {
			return l.stopped(ctx, err)
		}
		return l.end(StopError, stopError(StopError, l.red, err))
	}
	return l.run(ctx, conv, tools)
}

// newLoop prepares the bookkeeping of a run, whatever its input.
func (r *Runner) newLoop(in *Input) *loop {
	l := &loop{runner: r, onStep: in.OnStep, agent: in.Agent, tools: in.Tools}
	if l.agent == nil {
		l.agent = &Definition{}
	}
	var secrets []string
	if in.LLM != nil {
		secrets = in.LLM.Secrets()
	}
	l.red = r.redactors.Get(append(secrets, in.Secrets...)...)
	l.tr = &Transcript{Agent: l.agent.Name, Provider: l.agent.Provider,
		Model: l.agent.Model, Started: time.Now(), Steps: []Step{}}
	return l
}

// start checks the input, lists the tools and opens the conversation.
func (r *Runner) start(ctx context.Context, l *loop, in *Input) (conversation, []string,
	error) {
	if err := checkInput(in); err != nil {
		return nil, nil, err
	}
	specs, err := listTools(ctx, in.Tools)
	if err != nil {
		return nil, nil, err
	}
	ep, err := endpointOf(in.Agent.Provider, in.LLM)
	if err != nil {
		return nil, nil, err
	}

	message := l.red.String(in.Message)
	l.record(Step{Kind: StepInput, Start: time.Now(), Text: message})
	conv := r.open(in.Agent, ep, specs, l.red.String(in.Agent.System), message)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return conv, names, nil
}

// checkInput checks that the input holds what a run needs and that its
// parts agree with one another.
func checkInput(in *Input) error {
	switch {
	case in.Agent == nil:
		return errors.New("no agent definition")
	case in.LLM == nil:
		return fmt.Errorf("no credential for the llm resource %s", in.Agent.LLM)
	case in.Message == "":
		return errors.New("the message to start the run is empty")
	}
	if err := in.Agent.Validate(); err != nil {
		return err
	}
	if in.LLM.Path != in.Agent.LLM {
		return fmt.Errorf("the credential given is for resource %s, but the agent names %s",
			in.LLM.Path, in.Agent.LLM)
	}
	if in.LLM.Type != in.Agent.Provider {
		return fmt.Errorf("resource %s is of type %s, but provider %s needs one of type %s",
			in.LLM.Path, in.LLM.Type, in.Agent.Provider, in.Agent.Provider)
	}
	return nil
}

func listTools(ctx context.Context, tools Tools) ([]ToolSpec, error) {
	if tools == nil {
		return nil, nil
	}
	specs, err := tools.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the agent's tools: %w", err)
	}
	return specs, nil
}

// open starts a conversation with the provider.
func (r *Runner) open(d *Definition, ep *endpoint, specs []ToolSpec, system,
	message string) conversation {
	client := ep.httpClient(r.transport)
	if d.Provider == ProviderAnthropic {
		return newAnthropicChat(d, ep, client, specs, system, message, r.stream)
	}
	return newOpenAIChat(d, ep, client, specs, system, message, r.stream)
}

// conversation is the history of a run with one provider, in that
// provider's own types.
type conversation interface {
	// send asks the model for its next reply to the conversation so far
	// and appends that reply to it.
	send(ctx context.Context) (*reply, error)

	// addResults appends the results of the last reply's tool calls, in
	// the order of the calls.
	addResults(results []toolRun)
}

// reply is a model's reply, whichever the provider.
type reply struct {
	text  string
	calls []ToolCall
	usage Usage
	stop  string // the provider's stop or finish reason
}
