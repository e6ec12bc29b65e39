package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// openAIChat is a conversation with a Chat Completions API.
type openAIChat struct {
	service openai.ChatCompletionService
	params  openai.ChatCompletionNewParams
	stream  bool
}

func newOpenAIChat(d *Definition, ep *endpoint, hc *http.Client, specs []ToolSpec,
	system, message string, stream bool) *openAIChat {
	// The service alone, unlike openai.NewClient, reads no environment
	// variable, so nothing of the process's own configuration is sent.
	service := openai.NewChatCompletionService(option.WithBaseURL(ep.base.String()),
		option.WithHTTPClient(hc), option.WithAPIKey(ep.key),
		option.WithMaxRetries(maxRetries))

	c := &openAIChat{service: service, stream: stream}
	if system != "" {
		c.params.Messages = append(c.params.Messages, openai.SystemMessage(system))
	}
	c.params.Messages = append(c.params.Messages, openai.UserMessage(message))
	c.params.Model = d.Model
	c.params.Tools = openAITools(specs)
	// OpenAI's own API wants max_completion_tokens, which its reasoning
	// models require; compatible servers all read the older max_tokens.
	if ep.isPublicOpenAI() {
		c.params.MaxCompletionTokens = openai.Int(d.maxTokens())
	} else {
		c.params.MaxTokens = openai.Int(d.maxTokens())
	}
	if d.Temperature != nil {
		c.params.Temperature = openai.Float(*d.Temperature)
	}
	if stream {
		c.params.StreamOptions.IncludeUsage = openai.Bool(true)
	}
	return c
}

func openAITools(specs []ToolSpec) []openai.ChatCompletionToolUnionParam {
	var out []openai.ChatCompletionToolUnionParam
	for _, s := range specs {
		var params shared.FunctionParameters
		_ = json.Unmarshal(s.InputSchema, &params)
		fn := shared.FunctionDefinitionParam{Name: s.Name, Parameters: params}
		if s.Description != "" {
			fn.Description = openai.String(s.Description)
		}
		out = append(out, openai.ChatCompletionFunctionTool(fn))
	}
	return out
}

func (c *openAIChat) send(ctx context.Context) (*reply, error) {
	comp, err := c.completion(ctx)
	if err != nil {
		return nil, err
	}
	if len(comp.Choices) == 0 {
		return nil, errors.New("the model's response has no choices")
	}
	choice := comp.Choices[0]
	c.params.Messages = append(c.params.Messages, choice.Message.ToParam())

	rep := &reply{text: choice.Message.Content, stop: choice.FinishReason, usage: Usage{
		InputTokens: comp.Usage.PromptTokens, OutputTokens: comp.Usage.CompletionTokens}}
	if rep.text == "" {
		rep.text = choice.Message.Refusal
	}
	for _, tc := range choice.Message.ToolCalls {
		args := tc.Function.Arguments
		if args == "" {
			args = "{}"
		}
		rep.calls = append(rep.calls, ToolCall{ID: tc.ID, Name: tc.Function.Name,
			Arguments: rawArguments(args)})
	}
	return rep, nil
}

// completion makes the call, streamed or not, and returns the whole
// completion.
func (c *openAIChat) completion(ctx context.Context) (*openai.ChatCompletion, error) {
	if !c.stream {
		return c.service.New(ctx, c.params)
	}
	s := c.service.NewStreaming(ctx, c.params)
	defer s.Close()
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		if !acc.AddChunk(s.Current()) {
			return nil, errors.New("the model's streamed chunks do not fit together")
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return &acc.ChatCompletion, nil
}

func (c *openAIChat) addResults(results []toolRun) {
	for _, r := range results {
		c.params.Messages = append(c.params.Messages,
			openai.ToolMessage(r.out.Content, r.call.ID))
	}
}
