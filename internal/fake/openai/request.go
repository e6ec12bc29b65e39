package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Request is one request the server received. Header and Body are as
// sent; the other fields are parsed from Body when it is a valid Chat
// Completions request.
type Request struct {
	Header http.Header
	Body   []byte

	Model        string
	Messages     []Message
	Tools        []Tool
	Stream       bool
	IncludeUsage bool   // stream_options.include_usage
	MaxTokens    *int64 // max_completion_tokens, or the older max_tokens
	Temperature  *float64
}

// Message is one message of the conversation. Content sent as an array
// of parts is flattened to the text of its text parts.
type Message struct {
	Role       string         `json:"role"`
	Content    string         `json:"content,omitempty"`
	ToolCalls  []WireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

// WireToolCall is a tool call as assistant messages carry it.
type WireToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Tool is a function tool the request offers the model.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

// ToolResult is a "tool" message with the name of the function it answers.
type ToolResult struct {
	ToolCallID string
	Name       string // from the assistant message that made the call
	Content    string
}

// ToolResults returns the "tool" messages after the last assistant
// message, in order.
func (r *Request) ToolResults() []ToolResult {
	last := -1
	for i, m := range r.Messages {
		if m.Role == "assistant" {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	names := map[string]string{}
	for _, c := range r.Messages[last].ToolCalls {
		names[c.ID] = c.Function.Name
	}
	var out []ToolResult
	for _, m := range r.Messages[last+1:] {
		if m.Role == "tool" {
			out = append(out, ToolResult{ToolCallID: m.ToolCallID,
				Name: names[m.ToolCallID], Content: m.Content})
		}
	}
	return out
}

// System returns the content of the system (or developer) messages.
func (r *Request) System() string {
	var parts []string
	for _, m := range r.Messages {
		if m.Role == "system" || m.Role == "developer" {
			parts = append(parts, m.Content)
		}
	}
	return strings.Join(parts, "\n")
}

// UserText returns the content of the first user message.
func (r *Request) UserText() string {
	for _, m := range r.Messages {
		if m.Role == "user" {
			return m.Content
		}
	}
	return ""
}

// ToolNames returns the names of the functions the request offers.
func (r *Request) ToolNames() []string {
	out := make([]string, len(r.Tools))
	for i, t := range r.Tools {
		out[i] = t.Name
	}
	return out
}

// wireRequest is the request body as the API defines it.
type wireRequest struct {
	Model         string            `json:"model"`
	Messages      []json.RawMessage `json:"messages"`
	Tools         []wireTool        `json:"tools"`
	Stream        bool              `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxCompletionTokens *int64   `json:"max_completion_tokens"`
	MaxTokens           *int64   `json:"max_tokens"`
	Temperature         *float64 `json:"temperature"`
}

type wireTool struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// parse fills r's parsed fields from its body, or returns what is wrong
// and the parameter at fault.
func (r *Request) parse() (param string, err error) {
	var w wireRequest
	if err := json.Unmarshal(r.Body, &w); err != nil {
		return "", fmt.Errorf("we could not parse the JSON body of your request: %v", err)
	}
	switch {
	case w.Model == "":
		return "model", fmt.Errorf("you must provide a model parameter")
	case len(w.Messages) == 0:
		return "messages", fmt.Errorf("[] is too short - 'messages'")
	}
	r.Model, r.Stream, r.Temperature = w.Model, w.Stream, w.Temperature
	r.IncludeUsage = w.StreamOptions != nil && w.StreamOptions.IncludeUsage
	r.MaxTokens = w.MaxCompletionTokens
	if r.MaxTokens == nil {
		r.MaxTokens = w.MaxTokens
	}

	for i, raw := range w.Messages {
		m, err := parseMessage(raw)
		if err != nil {
			return fmt.Sprintf("messages.[%d]", i), err
		}
		r.Messages = append(r.Messages, m)
	}
	if param, err := r.parseTools(w.Tools); err != nil {
		return param, err
	}
	return checkConversation(r.Messages)
}

func parseMessage(raw json.RawMessage) (Message, error) {
	var w struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCalls  []WireToolCall  `json:"tool_calls"`
		ToolCallID string          `json:"tool_call_id"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return Message{}, fmt.Errorf("not a message object")
	}
	switch w.Role {
	case "system", "developer", "user", "assistant", "tool":
	default:
		return Message{}, fmt.Errorf("invalid role %q", w.Role)
	}
	if w.Role == "tool" && w.ToolCallID == "" {
		return Message{}, fmt.Errorf("missing required parameter: 'tool_call_id'")
	}
	m := Message{Role: w.Role, ToolCalls: w.ToolCalls, ToolCallID: w.ToolCallID}
	content, err := contentText(w.Content)
	if err != nil {
		return Message{}, err
	}
	m.Content = content
	return m, nil
}

// contentText reads content given as a string, null or an array of parts.
func contentText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("content must be a string or an array of content parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, ""), nil
}

var functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func (r *Request) parseTools(tools []wireTool) (string, error) {
	for i, t := range tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" || t.Function == nil {
			return param + ".type", fmt.Errorf("tool type must be 'function' with a function")
		}
		if !functionName.MatchString(t.Function.Name) {
			return param + ".function.name", fmt.Errorf("invalid 'tools[%d].function.name': "+
				"string does not match pattern '^[a-zA-Z0-9_-]{1,64}$'", i)
		}
		r.Tools = append(r.Tools, Tool{Name: t.Function.Name,
			Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	return "", nil
}

// checkConversation enforces that every tool call of an assistant message
// is answered by the "tool" messages right after it, and that every "tool"
// message answers such a call.
func checkConversation(msgs []Message) (string, error) {
	open := map[string]bool{} // calls of the last assistant message not yet answered
	for i, m := range msgs {
		if m.Role == "tool" {
			if !open[m.ToolCallID] {
				return fmt.Sprintf("messages.[%d].role", i), fmt.Errorf("invalid parameter: " +
					"messages with role 'tool' must be a response to a preceding message " +
					"with 'tool_calls'")
			}
			delete(open, m.ToolCallID)
			continue
		}
		if len(open) > 0 {
			return "messages", unanswered(open)
		}
		for _, c := range m.ToolCalls {
			open[c.ID] = true
		}
	}
	if len(open) > 0 {
		return "messages", unanswered(open)
	}
	return "", nil
}

func unanswered(open map[string]bool) error {
	ids := make([]string, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return fmt.Errorf("an assistant message with 'tool_calls' must be followed by tool "+
		"messages responding to each 'tool_call_id'. The following tool_call_ids did not "+
		"have response messages: %s", strings.Join(ids, ", "))
}
