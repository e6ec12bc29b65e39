package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// maxRetries is how often the SDKs retry a model call that failed in a
// way worth retrying (a connection error, 408, 409, 429 or 5xx).
const maxRetries = 2

// anthropicChat is a conversation with Anthropic's Messages API.
type anthropicChat struct {
	client anthropic.Client
	params anthropic.MessageNewParams
	opts   []option.RequestOption
	stream bool
}

func newAnthropicChat(d *Definition, ep *endpoint, hc *http.Client, specs []ToolSpec,
	system, message string, stream bool) *anthropicChat {
	// The key goes in x-api-key, the Messages API's header for API keys
	// (this SDK's WithAPIKey would send it as a bearer token). No
	// environment variable or profile of the process is consulted.
	client := anthropic.NewClient(option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(ep.base.String()), option.WithHTTPClient(hc),
		option.WithHeader("x-api-key", ep.key), option.WithMaxRetries(maxRetries),
		option.WithRequestTimeout(d.timeout()))

	c := &anthropicChat{client: client, stream: stream}
	c.params = anthropic.MessageNewParams{
		Model:     anthropic.Model(d.Model),
		MaxTokens: d.maxTokens(),
		Tools:     anthropicTools(specs),
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock(message))},
	}
	if system != "" {
		c.params.System = []anthropic.TextBlockParam{{Text: system}}
	}
	if d.Temperature != nil {
		// The SDK does not model temperature, so it goes straight into the
		// body; a model that no longer takes it refuses the request.
		c.opts = append(c.opts, option.WithJSONSet("temperature", *d.Temperature))
	}
	return c
}

// anthropicTools converts specs to tool definitions: the schema's
// properties and required list go in their fields, anything else as
// extra fields of input_schema.
func anthropicTools(specs []ToolSpec) []anthropic.ToolUnionParam {
	var out []anthropic.ToolUnionParam
	for _, s := range specs {
		var schema map[string]any
		_ = json.Unmarshal(s.InputSchema, &schema)
		// A schema without properties would be left out as a zero value,
		// and the API requires input_schema.
		in := anthropic.ToolInputSchemaParam{Properties: map[string]any{}}
		if p, ok := schema["properties"]; ok && p != nil {
			in.Properties = p
		}
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if name, ok := r.(string); ok {
					in.Required = append(in.Required, name)
				}
			}
		}
		delete(schema, "type")
		delete(schema, "properties")
		delete(schema, "required")
		if len(schema) > 0 {
			in.ExtraFields = schema
		}

		t := anthropic.ToolParam{Name: s.Name, InputSchema: in}
		if s.Description != "" {
			t.Description = anthropic.String(s.Description)
		}
		out = append(out, anthropic.ToolUnionParam{OfTool: &t})
	}
	return out
}

func (c *anthropicChat) send(ctx context.Context) (*reply, error) {
	msg, err := c.message(ctx)
	if err != nil {
		return nil, err
	}
	c.params.Messages = append(c.params.Messages, msg.ToParam())

	rep := &reply{stop: string(msg.StopReason), usage: Usage{
		InputTokens: msg.Usage.InputTokens + msg.Usage.CacheCreationInputTokens +
			msg.Usage.CacheReadInputTokens,
		OutputTokens: msg.Usage.OutputTokens,
	}}
	var texts []string
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_use":
			rep.calls = append(rep.calls, ToolCall{ID: b.ID, Name: b.Name,
				Arguments: rawArguments(string(b.Input))})
		}
	}
	rep.text = strings.Join(texts, "\n")
	return rep, nil
}

// message makes the call, streamed or not, and returns the whole message.
func (c *anthropicChat) message(ctx context.Context) (*anthropic.Message, error) {
	if !c.stream {
		return c.client.Messages.New(ctx, c.params, c.opts...)
	}
	s := c.client.Messages.NewStreaming(ctx, c.params, c.opts...)
	defer s.Close()
	var msg anthropic.Message
	for s.Next() {
		if err := msg.Accumulate(s.Current()); err != nil {
			return nil, err
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return &msg, nil
}

func (c *anthropicChat) addResults(results []toolRun) {
	blocks := make([]anthropic.ContentBlockParamUnion, len(results))
	for i, r := range results {
		blocks[i] = anthropic.NewToolResultBlock(r.call.ID, r.out.Content, r.out.IsError)
	}
	c.params.Messages = append(c.params.Messages, anthropic.NewUserMessage(blocks...))
}
