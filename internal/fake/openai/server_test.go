package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	fake "github.com/keyhole/keyhole/internal/fake/openai"
)

const key = "sk-proj-test-CANARY-0123456789abcdef"

// script asks for get_customer, then answers with the tool's result.
func script() []fake.Turn {
	return []fake.Turn{
		func(r *fake.Request) fake.Reply {
			return fake.Reply{Text: "Let me look.", ToolCalls: []fake.ToolCall{
				{Name: "get_customer", Arguments: map[string]string{"email": "a@b.example"}}}}
		},
		func(r *fake.Request) fake.Reply {
			res := r.ToolResults()
			if len(res) != 1 {
				return fake.Reply{Text: "no result"}
			}
			return fake.Reply{Text: res[0].Name + " said " + res[0].Content,
				Usage: &fake.Usage{PromptTokens: 40, CompletionTokens: 7}}
		},
	}
}

func service(url, apiKey string) sdk.ChatCompletionService {
	return sdk.NewChatCompletionService(option.WithBaseURL(url+"/v1"),
		option.WithAPIKey(apiKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(10*time.Second))
}

func params(stream bool, msgs ...sdk.ChatCompletionMessageParamUnion) sdk.ChatCompletionNewParams {
	p := sdk.ChatCompletionNewParams{
		Model: "gpt-test", Messages: msgs,
		MaxCompletionTokens: sdk.Int(256),
		Tools: []sdk.ChatCompletionToolUnionParam{sdk.ChatCompletionFunctionTool(
			shared.FunctionDefinitionParam{Name: "get_customer",
				Parameters: shared.FunctionParameters{"type": "object",
					"properties": map[string]any{"email": map[string]any{"type": "string"}}}})},
	}
	if stream {
		p.StreamOptions.IncludeUsage = sdk.Bool(true)
	}
	return p
}

// converse plays the script through the SDK, streamed or not, and returns
// the final text.
func converse(t *testing.T, c sdk.ChatCompletionService, stream bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(p sdk.ChatCompletionNewParams) *sdk.ChatCompletion {
		if !stream {
			r, err := c.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		s := c.NewStreaming(ctx, p)
		defer s.Close()
		var acc sdk.ChatCompletionAccumulator
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return &acc.ChatCompletion
	}

	msgs := []sdk.ChatCompletionMessageParamUnion{sdk.SystemMessage("be brief"),
		sdk.UserMessage("who is a@b.example?")}
	first := send(params(stream, msgs...))
	msg := first.Choices[0].Message
	if first.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 ||
		msg.Content != "Let me look." {
		t.Fatalf("first reply: %+v", first.Choices[0])
	}
	call := msg.ToolCalls[0]
	if call.Function.Name != "get_customer" ||
		call.Function.Arguments != `{"email":"a@b.example"}` {
		t.Fatalf("tool call: %+v", call)
	}
	msgs = append(msgs, msg.ToParam(), sdk.ToolMessage(`{"id":"cus_1"}`, call.ID))
	last := send(params(stream, msgs...))
	if last.Choices[0].FinishReason != "stop" {
		t.Errorf("finish reason %q", last.Choices[0].FinishReason)
	}
	if last.Usage.PromptTokens != 40 || last.Usage.CompletionTokens != 7 ||
		last.Usage.TotalTokens != 47 {
		t.Errorf("usage %+v", last.Usage)
	}
	return last.Choices[0].Message.Content
}

func TestConversationThroughSDK(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[stream], func(t *testing.T) {
			t.Parallel()
			srv := fake.NewServer(&fake.Options{Key: key, Turns: script()})
			t.Cleanup(srv.Close)

			got := converse(t, service(srv.URL, key), stream)
			if got != `get_customer said {"id":"cus_1"}` {
				t.Errorf("final text %q", got)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[1]
			if r.System() != "be brief" || r.UserText() != "who is a@b.example?" ||
				r.Stream != stream || r.IncludeUsage != stream || *r.MaxTokens != 256 {
				t.Errorf("parsed request: %+v", r)
			}
			if diff := cmp.Diff([]string{"get_customer"}, r.ToolNames()); diff != "" {
				t.Errorf("tools (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStreamChunks checks the chunks a streamed tool call sends.
func TestStreamChunks(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(&fake.Options{Key: key, Turns: script()})
	t.Cleanup(srv.Close)

	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},` +
		`"messages":[{"role":"user","content":"hi"}]}`
	resp, text := post(t, srv.URL+"/v1/chat/completions", body, "Bearer "+key)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n\n")
	if lines[len(lines)-1] != "data: [DONE]" {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
	usage := lines[len(lines)-2]
	if !strings.Contains(usage, `"choices":[]`) || !strings.Contains(usage, `"total_tokens"`) {
		t.Errorf("usage chunk %q", usage)
	}
	for _, want := range []string{`"role":"assistant"`, `"id":"call_fake`,
		`"name":"get_customer"`, `"finish_reason":"tool_calls"`} {
		if !strings.Contains(text, want) {
			t.Errorf("stream lacks %s:\n%s", want, text)
		}
	}
}

func post(t *testing.T, url, body, auth string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(&fake.Options{Key: key, Rest: fake.Say("ok")})
	t.Cleanup(srv.Close)
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	call := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",` +
		`"function":{"name":"t","arguments":"{}"}}]}`

	cases := []struct {
		name   string
		auth   string
		body   string
		status int
		code   string
		msg    string
	}{
		{"no key", "", `{"model":"m",` + msgs + `}`, 401, "", "didn't provide an API key"},
		{"wrong key", "Bearer sk-other", `{"model":"m",` + msgs + `}`, 401, "invalid_api_key",
			"Incorrect API key"},
		{"no model", "Bearer " + key, `{` + msgs + `}`, 400, "", "model"},
		{"no messages", "Bearer " + key, `{"model":"m","messages":[]}`, 400, "", "messages"},
		{"bad tool", "Bearer " + key, `{"model":"m",` + msgs +
			`,"tools":[{"type":"function","function":{"name":"a b"}}]}`, 400, "", "name"},
		{"unanswered call", "Bearer " + key, `{"model":"m","messages":[` +
			`{"role":"user","content":"hi"},` + call + `,{"role":"user","content":"and?"}]}`,
			400, "", "call_1"},
		{"stray tool message", "Bearer " + key, `{"model":"m","messages":[` +
			`{"role":"user","content":"hi"},` +
			`{"role":"tool","tool_call_id":"call_9","content":"x"}]}`,
			400, "", "role 'tool'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, text := post(t, srv.URL+"/v1/chat/completions", tc.body, tc.auth)
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(text), &e); err != nil {
				t.Fatalf("%v: %s", err, text)
			}
			code := ""
			if e.Error.Code != nil {
				code = *e.Error.Code
			}
			if resp.StatusCode != tc.status || e.Error.Type == "" || code != tc.code ||
				!strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("got %d %s", resp.StatusCode, text)
			}
		})
	}
}

func TestSDKSeesAPIErrors(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(&fake.Options{Key: key, Turns: []fake.Turn{
		func(*fake.Request) fake.Reply {
			return fake.Reply{Error: &fake.APIError{Status: 429, Message: "slow down"}}
		},
	}})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := sdk.UserMessage("hi")

	for _, tc := range []struct {
		key    string
		status int
	}{{"sk-wrong", 401}, {key, 429}, {key, 500}} {
		c := service(srv.URL, tc.key)
		_, err := c.New(ctx, params(false, msg))
		var apiErr *sdk.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status {
			t.Errorf("want status %d, got %v", tc.status, err)
		}
	}
}

func TestArgumentsSentAsGiven(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(&fake.Options{Key: key,
		Turns: []fake.Turn{fake.CallTool("get_customer", `{"email": `)}})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := service(srv.URL, key)
	r, err := c.New(ctx, params(false, sdk.UserMessage("hi")))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Choices[0].Message.ToolCalls[0].Function.Arguments; got != `{"email": ` {
		t.Errorf("arguments %q", got)
	}
}
