package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	openai "github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/keyhole/keyhole/internal/agent"
	fakeanthropic "github.com/keyhole/keyhole/internal/fake/anthropic"
	fakeopenai "github.com/keyhole/keyhole/internal/fake/openai"
	"github.com/keyhole/keyhole/internal/latency"
	"github.com/keyhole/keyhole/internal/tool"
)

// benchTurns is how many model calls each benchmarked run makes: three
// that ask for a tool and a final answer.
const benchTurns = 4

// benchResult is the tool result of the benchmarks: about 1 KB of JSON,
// the size of a trimmed Stripe search.
var benchResult = `[` + strings.Repeat(
	`{"id":"in_Acme0001","status":"paid","amount_paid":120000,"customer":"cus_Acme0001"},`,
	12) + `{}]`

// echoTools offers one tool that answers at once with benchResult.
type echoTools struct{}

var echoSchema = json.RawMessage(
	`{"type":"object","properties":{"email":{"type":"string"}},"required":["email"]}`)

func (echoTools) List(context.Context) ([]agent.ToolSpec, error) {
	return []agent.ToolSpec{{Name: "search_invoices", Description: "Search invoices",
		InputSchema: echoSchema}}, nil
}

func (echoTools) Call(context.Context, string, json.RawMessage) agent.ToolOutcome {
	return agent.ToolOutcome{Content: benchResult}
}

// benchCall is the tool call the benchmark model makes.
var benchCall = map[string]string{"email": "billing@acme.example"}

// BenchmarkTurnOverhead runs the same four-turn conversation (three tool
// calls, then an answer) through the agent loop and through a minimal loop
// written directly against the provider's SDK, alternating the two in one
// loop against an in-process fake that answers at once. It reports the
// time per turn of each and what the agent loop adds, at p50 and p99.
func BenchmarkTurnOverhead(b *testing.B) {
	for _, stream := range []bool{false, true} {
		mode := map[bool]string{false: "json", true: "stream"}[stream]
		b.Run("anthropic/"+mode, func(b *testing.B) { benchAnthropic(b, stream) })
		b.Run("openai/"+mode, func(b *testing.B) { benchOpenAI(b, stream) })
	}
}

func benchAnthropic(b *testing.B, stream bool) {
	srv := fakeanthropic.NewServer(&fakeanthropic.Options{Key: llmKey,
		Rest: func(r *fakeanthropic.Request) fakeanthropic.Reply {
			if anthropicTurns(r) < benchTurns-1 {
				return fakeanthropic.Reply{ToolCalls: []fakeanthropic.ToolCall{
					{Name: "search_invoices", Input: benchCall}}}
			}
			return fakeanthropic.Reply{Text: "Yes, Acme paid invoice in_Acme0001."}
		}})
	defer srv.Close()

	client := anthropic.NewClient(aoption.WithoutEnvironmentDefaults(),
		aoption.WithBaseURL(srv.URL), aoption.WithHTTPClient(directClient()),
		aoption.WithHeader("x-api-key", llmKey), aoption.WithMaxRetries(0),
		aoption.WithRequestTimeout(time.Minute))
	params := anthropic.MessageNewParams{Model: "test-model", MaxTokens: 1024,
		System: []anthropic.TextBlockParam{{Text: "You answer billing questions."}},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name: "search_invoices", Description: anthropic.String("Search invoices"),
			InputSchema: anthropic.ToolInputSchemaParam{
				Properties: map[string]any{"email": map[string]any{"type": "string"}},
				Required:   []string{"email"}}}}}}
	direct := func(ctx context.Context) error {
		return directAnthropic(ctx, client, params, stream)
	}
	benchLoop(b, agent.ProviderAnthropic, credFor(agent.ProviderAnthropic, srv.URL), stream,
		direct)
}

// anthropicTurns counts the model's messages in a request.
func anthropicTurns(r *fakeanthropic.Request) int {
	n := 0
	for _, m := range r.Messages {
		if m.Role == "assistant" {
			n++
		}
	}
	return n
}

// directAnthropic is the baseline: the same conversation with the SDK
// alone, no checks, redaction or transcript.
func directAnthropic(ctx context.Context, c anthropic.Client, p anthropic.MessageNewParams,
	stream bool) error {
	p.Messages = []anthropic.MessageParam{
		anthropic.NewUserMessage(anthropic.NewTextBlock("did Acme pay?"))}
	for {
		msg, err := anthropicMessage(ctx, c, p, stream)
		if err != nil {
			return err
		}
		p.Messages = append(p.Messages, msg.ToParam())
		var results []anthropic.ContentBlockParamUnion
		for _, blk := range msg.Content {
			if blk.Type == "tool_use" {
				out := echoTools{}.Call(ctx, blk.Name, blk.Input)
				results = append(results,
					anthropic.NewToolResultBlock(blk.ID, out.Content, out.IsError))
			}
		}
		if len(results) == 0 {
			return nil
		}
		p.Messages = append(p.Messages, anthropic.NewUserMessage(results...))
	}
}

func anthropicMessage(ctx context.Context, c anthropic.Client, p anthropic.MessageNewParams,
	stream bool) (*anthropic.Message, error) {
	if !stream {
		return c.Messages.New(ctx, p)
	}
	s := c.Messages.NewStreaming(ctx, p)
	defer s.Close()
	var msg anthropic.Message
	for s.Next() {
		if err := msg.Accumulate(s.Current()); err != nil {
			return nil, err
		}
	}
	return &msg, s.Err()
}

func benchOpenAI(b *testing.B, stream bool) {
	srv := fakeopenai.NewServer(&fakeopenai.Options{Key: llmKey,
		Rest: func(r *fakeopenai.Request) fakeopenai.Reply {
			if countRole(r, "assistant") < benchTurns-1 {
				return fakeopenai.Reply{ToolCalls: []fakeopenai.ToolCall{
					{Name: "search_invoices", Arguments: benchCall}}}
			}
			return fakeopenai.Reply{Text: "Yes, Acme paid invoice in_Acme0001."}
		}})
	defer srv.Close()

	service := openai.NewChatCompletionService(ooption.WithBaseURL(srv.URL+"/v1"),
		ooption.WithHTTPClient(directClient()), ooption.WithAPIKey(llmKey),
		ooption.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "test-model",
		MaxTokens: openai.Int(1024),
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(
			shared.FunctionDefinitionParam{Name: "search_invoices",
				Description: openai.String("Search invoices"),
				Parameters: shared.FunctionParameters{"type": "object",
					"properties": map[string]any{"email": map[string]any{"type": "string"}},
					"required":   []any{"email"}}})}}
	if stream {
		params.StreamOptions.IncludeUsage = openai.Bool(true)
	}
	direct := func(ctx context.Context) error {
		return directOpenAI(ctx, service, params, stream)
	}
	benchLoop(b, agent.ProviderOpenAI, credFor(agent.ProviderOpenAI, srv.URL+"/v1"), stream,
		direct)
}

func countRole(r *fakeopenai.Request, role string) int {
	n := 0
	for _, m := range r.Messages {
		if m.Role == role {
			n++
		}
	}
	return n
}

// directOpenAI is the baseline: the same conversation with the SDK alone.
func directOpenAI(ctx context.Context, s openai.ChatCompletionService,
	p openai.ChatCompletionNewParams, stream bool) error {
	p.Messages = []openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage("You answer billing questions."), openai.UserMessage("did Acme pay?")}
	for {
		comp, err := openAICompletion(ctx, s, p, stream)
		if err != nil {
			return err
		}
		msg := comp.Choices[0].Message
		p.Messages = append(p.Messages, msg.ToParam())
		if len(msg.ToolCalls) == 0 {
			return nil
		}
		for _, tc := range msg.ToolCalls {
			out := echoTools{}.Call(ctx, tc.Function.Name, json.RawMessage(tc.Function.Arguments))
			p.Messages = append(p.Messages, openai.ToolMessage(out.Content, tc.ID))
		}
	}
}

func openAICompletion(ctx context.Context, s openai.ChatCompletionService,
	p openai.ChatCompletionNewParams, stream bool) (*openai.ChatCompletion, error) {
	if !stream {
		return s.New(ctx, p)
	}
	st := s.NewStreaming(ctx, p)
	defer st.Close()
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	return &acc.ChatCompletion, st.Err()
}

// directClient is the baseline's HTTP client: plain net/http with kept-
// alive connections.
func directClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// benchLoop alternates a direct conversation and an agent run and reports
// their durations per turn.
func benchLoop(b *testing.B, provider string, cred *tool.Credential, stream bool,
	direct func(ctx context.Context) error) {
	runner := agent.NewRunner(&agent.RunnerOptions{Stream: stream})
	def := definition(provider, nil)
	in := &agent.Input{Agent: def, LLM: cred, Tools: echoTools{}, Message: "did Acme pay?",
		Secrets: []string{stripeKey}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var directTimes, agentTimes []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := direct(ctx); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		tr, err := runner.Run(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if tr.Turns != benchTurns {
			b.Fatalf("the run made %d turns, want %d", tr.Turns, benchTurns)
		}
		directTimes = append(directTimes, mid.Sub(start)/benchTurns)
		agentTimes = append(agentTimes, time.Since(mid)/benchTurns)
	}
	latency.ReportOverhead(b, directTimes, agentTimes)
}
