package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/google/go-cmp/cmp"

	fake "github.com/keyhole/keyhole/internal/fake/anthropic"
)

const key = "sk-ant-test-CANARY-0123456789abcdef"

// script asks for get_customer, then answers with the tool's result.
func script() []fake.Turn {
	return []fake.Turn{
		func(r *fake.Request) fake.Reply {
			return fake.Reply{Text: "Let me look.", ToolCalls: []fake.ToolCall{
				{Name: "get_customer", Input: map[string]string{"email": "a@b.example"}}}}
		},
		func(r *fake.Request) fake.Reply {
			res := r.ToolResults()
			if len(res) != 1 {
				return fake.Reply{Text: "no result"}
			}
			return fake.Reply{Text: res[0].Name + " said " + res[0].Text,
				Usage: &fake.Usage{InputTokens: 40, OutputTokens: 7}}
		},
	}
}

func client(t *testing.T, url, apiKey string) sdk.Client {
	t.Helper()
	return sdk.NewClient(option.WithoutEnvironmentDefaults(), option.WithBaseURL(url),
		option.WithHeader("x-api-key", apiKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(10*time.Second))
}

func params(msgs ...sdk.MessageParam) sdk.MessageNewParams {
	return sdk.MessageNewParams{
		Model: "claude-test", MaxTokens: 256, Messages: msgs,
		System: []sdk.TextBlockParam{{Text: "be brief"}},
		Tools: []sdk.ToolUnionParam{{OfTool: &sdk.ToolParam{Name: "get_customer",
			InputSchema: sdk.ToolInputSchemaParam{
				Properties: map[string]any{"email": map[string]any{"type": "string"}}}}}},
	}
}

// converse plays the script through the SDK, streamed or not, and returns
// the final text.
func converse(t *testing.T, c sdk.Client, stream bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(p sdk.MessageNewParams) *sdk.Message {
		if !stream {
			m, err := c.Messages.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		s := c.Messages.NewStreaming(ctx, p)
		defer s.Close()
		var m sdk.Message
		for s.Next() {
			if err := m.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return &m
	}

	user := sdk.NewUserMessage(sdk.NewTextBlock("who is a@b.example?"))
	first := send(params(user))
	if first.StopReason != sdk.StopReasonToolUse || len(first.Content) != 2 {
		t.Fatalf("first reply: %s", first.RawJSON())
	}
	use := first.Content[1]
	if use.Name != "get_customer" || string(use.Input) != `{"email":"a@b.example"}` {
		t.Fatalf("tool_use: %+v", use)
	}
	results := sdk.NewUserMessage(sdk.NewToolResultBlock(use.ID, `{"id":"cus_1"}`, false))
	last := send(params(user, first.ToParam(), results))
	if last.StopReason != sdk.StopReasonEndTurn {
		t.Errorf("stop reason %q", last.StopReason)
	}
	if last.Usage.InputTokens != 40 || last.Usage.OutputTokens != 7 {
		t.Errorf("usage %+v", last.Usage)
	}
	return last.Content[0].Text
}

func TestConversationThroughSDK(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[stream], func(t *testing.T) {
			t.Parallel()
			srv := fake.NewServer(&fake.Options{Key: key, Turns: script()})
			t.Cleanup(srv.Close)

			got := converse(t, client(t, srv.URL, key), stream)
			if got != `get_customer said {"id":"cus_1"}` {
				t.Errorf("final text %q", got)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			if reqs[0].System != "be brief" || reqs[0].UserText() != "who is a@b.example?" ||
				reqs[1].Stream != stream {
				t.Errorf("parsed request: %+v", reqs[0])
			}
			if diff := cmp.Diff([]string{"get_customer"}, reqs[1].ToolNames()); diff != "" {
				t.Errorf("tools (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStreamEvents checks the order of the events a streamed tool call
// sends.
func TestStreamEvents(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(&fake.Options{Key: key, Turns: script()})
	t.Cleanup(srv.Close)

	body := `{"model":"m","max_tokens":10,"stream":true,` +
		`"messages":[{"role":"user","content":"hi"}]}`
	resp, text := post(t, srv.URL+"/v1/messages", body, map[string]string{
		"x-api-key": key, "anthropic-version": "2023-06-01"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, text)
	}
	var events []string
	for _, line := range strings.Split(text, "\n") {
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			if len(events) == 0 || events[len(events)-1] != name {
				events = append(events, name)
			}
		}
	}
	want := []string{"message_start", "ping",
		"content_block_start", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop",
		"message_delta", "message_stop"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if !strings.Contains(text, `"type":"input_json_delta"`) ||
		!strings.Contains(text, `"stop_reason":"tool_use"`) {
		t.Errorf("stream lacks input_json_delta or stop_reason:\n%s", text)
	}
}

func post(t *testing.T, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
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
	good := map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"}
	msgs := `"messages":[{"role":"user","content":"hi"}]`

	cases := []struct {
		name   string
		header map[string]string
		body   string
		status int
		typ    string
		msg    string
	}{
		{"no key", map[string]string{"anthropic-version": "2023-06-01"},
			`{"model":"m","max_tokens":5,` + msgs + `}`, 401, "authentication_error", "x-api-key"},
		{"wrong key", map[string]string{"x-api-key": "sk-other", "anthropic-version": "2023-06-01"},
			`{"model":"m","max_tokens":5,` + msgs + `}`, 401, "authentication_error", "x-api-key"},
		{"bearer is not enough", map[string]string{"authorization": "Bearer " + key,
			"anthropic-version": "2023-06-01"},
			`{"model":"m","max_tokens":5,` + msgs + `}`, 401, "authentication_error", "x-api-key"},
		{"no version", map[string]string{"x-api-key": key},
			`{"model":"m","max_tokens":5,` + msgs + `}`, 400, "invalid_request_error",
			"anthropic-version"},
		{"no model", good, `{"max_tokens":5,` + msgs + `}`, 400, "invalid_request_error", "model"},
		{"no max_tokens", good, `{"model":"m",` + msgs + `}`, 400, "invalid_request_error",
			"max_tokens"},
		{"bad tool", good, `{"model":"m","max_tokens":5,` + msgs +
			`,"tools":[{"name":"t","input_schema":{"type":"string"}}]}`, 400,
			"invalid_request_error", "input_schema"},
		{"unanswered tool_use", good, `{"model":"m","max_tokens":5,"messages":[` +
			`{"role":"user","content":"hi"},` +
			`{"role":"assistant","content":[` +
			`{"type":"tool_use","id":"toolu_1","name":"t","input":{}}]},` +
			`{"role":"user","content":"and?"}]}`, 400, "invalid_request_error", "toolu_1"},
		{"stray tool_result", good, `{"model":"m","max_tokens":5,"messages":[` +
			`{"role":"user","content":[` +
			`{"type":"tool_result","tool_use_id":"toolu_9","content":"x"}]}]}`,
			400, "invalid_request_error", "toolu_9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, text := post(t, srv.URL+"/v1/messages", tc.body, tc.header)
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(text), &e); err != nil {
				t.Fatalf("%v: %s", err, text)
			}
			if resp.StatusCode != tc.status || e.Type != "error" || e.Error.Type != tc.typ ||
				!strings.Contains(e.Error.Message, tc.msg) || e.RequestID == "" {
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
	user := sdk.NewUserMessage(sdk.NewTextBlock("hi"))

	for _, tc := range []struct {
		key    string
		status int
	}{{"sk-wrong", 401}, {key, 429}, {key, 500}} {
		c := client(t, srv.URL, tc.key)
		_, err := c.Messages.New(ctx, params(user))
		var apiErr *sdk.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status {
			t.Errorf("want status %d, got %v", tc.status, err)
		}
	}
}

func TestDelayGivesUpWithTheClient(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(&fake.Options{Key: key, Rest: func(*fake.Request) fake.Reply {
		return fake.Reply{Text: "late", Delay: time.Minute}
	}})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c := client(t, srv.URL, key)
	_, err := c.Messages.New(ctx,
		params(sdk.NewUserMessage(sdk.NewTextBlock("hi"))))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want a deadline error, got %v", err)
	}
}
