package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Request is one request the server received. Header and Body are as
// sent; the other fields are parsed from Body when it is a valid Messages
// API request.
type Request struct {
	Header http.Header
	Body   []byte

	Model       string
	MaxTokens   int64
	System      string // the system prompt; text blocks joined with newlines
	Messages    []Message
	Tools       []Tool
	Stream      bool
	Temperature *float64
}

// Message is one message of the conversation a request carries. Content
// sent as a plain string becomes one text block.
type Message struct {
	Role    string  `json:"role"`
	Content []Block `json:"content"`
}

// Block is a content block: text, tool_use or tool_result (or any other
// type, kept with its type alone).
type Block struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`

	// ID, Name and Input are those of a tool_use block.
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`

	// ToolUseID, Content and IsError are those of a tool_result block;
	// Content is a string or an array of text blocks.
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	IsError   bool            `json:"is_error,omitempty"`
}

// Tool is a tool the request offers the model.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// ToolResult is a tool_result block with the name of the tool it answers.
type ToolResult struct {
	ToolUseID string
	Name      string // from the matching tool_use block of the previous message
	Text      string // the result's text content
	IsError   bool
}

// ToolResults returns the tool_result blocks of the request's last message,
// in order; none when the last message is not a user message.
func (r *Request) ToolResults() []ToolResult {
	n := len(r.Messages)
	if n == 0 || r.Messages[n-1].Role != "user" {
		return nil
	}
	names := map[string]string{}
	if n > 1 {
		for _, b := range r.Messages[n-2].Content {
			names[b.ID] = b.Name
		}
	}
	var out []ToolResult
	for _, b := range r.Messages[n-1].Content {
		if b.Type == "tool_result" {
			out = append(out, ToolResult{ToolUseID: b.ToolUseID, Name: names[b.ToolUseID],
				Text: resultText(b.Content), IsError: b.IsError})
		}
	}
	return out
}

// UserText returns the text blocks of the first message, the user's
// question.
func (r *Request) UserText() string {
	if len(r.Messages) == 0 {
		return ""
	}
	return blocksText(r.Messages[0].Content)
}

// ToolNames returns the names of the tools the request offers.
func (r *Request) ToolNames() []string {
	out := make([]string, len(r.Tools))
	for i, t := range r.Tools {
		out[i] = t.Name
	}
	return out
}

func blocksText(blocks []Block) string {
	var parts []string
	for _, b := range blocks {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// resultText flattens a tool_result's content, a string or text blocks.
func resultText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []Block
	_ = json.Unmarshal(raw, &blocks)
	return blocksText(blocks)
}

// wireRequest is the request body as the API defines it.
type wireRequest struct {
	Model       *string           `json:"model"`
	MaxTokens   *int64            `json:"max_tokens"`
	System      json.RawMessage   `json:"system"`
	Messages    []json.RawMessage `json:"messages"`
	Tools       []Tool            `json:"tools"`
	Stream      bool              `json:"stream"`
	Temperature *float64          `json:"temperature"`
}

// parse fills r's parsed fields from its body, or returns the message the
// API gives for what is wrong.
func (r *Request) parse() error {
	var w wireRequest
	if err := json.Unmarshal(r.Body, &w); err != nil {
		return fmt.Errorf("the request body is not valid JSON: %v", err)
	}
	switch {
	case w.Model == nil || *w.Model == "":
		return fmt.Errorf("model: Field required")
	case w.MaxTokens == nil:
		return fmt.Errorf("max_tokens: Field required")
	case *w.MaxTokens < 1:
		return fmt.Errorf("max_tokens: Input should be greater than or equal to 1")
	case len(w.Messages) == 0:
		return fmt.Errorf("messages: at least one message is required")
	}
	r.Model, r.MaxTokens, r.Stream, r.Temperature = *w.Model, *w.MaxTokens, w.Stream,
		w.Temperature
	r.Tools = w.Tools

	system, err := parseSystem(w.System)
	if err != nil {
		return err
	}
	r.System = system
	for i, raw := range w.Messages {
		m, err := parseMessage(raw)
		if err != nil {
			return fmt.Errorf("messages.%d: %v", i, err)
		}
		r.Messages = append(r.Messages, m)
	}
	if err := checkTools(r.Tools); err != nil {
		return err
	}
	return checkConversation(r.Messages)
}

func parseSystem(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []Block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", fmt.Errorf("system: Input should be a valid string or list of text blocks")
	}
	return blocksText(blocks), nil
}

func parseMessage(raw json.RawMessage) (Message, error) {
	var w struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return Message{}, fmt.Errorf("not a message object")
	}
	if w.Role != "user" && w.Role != "assistant" {
		return Message{}, fmt.Errorf("role: Input should be 'user' or 'assistant'")
	}
	m := Message{Role: w.Role}
	var s string
	if json.Unmarshal(w.Content, &s) == nil {
		m.Content = []Block{{Type: "text", Text: s}}
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(w.Content))
	if err := dec.Decode(&m.Content); err != nil || m.Content == nil {
		return Message{}, fmt.Errorf("content: Input should be a valid string or list")
	}
	return m, nil
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

func checkTools(tools []Tool) error {
	for i, t := range tools {
		if !toolName.MatchString(t.Name) {
			return fmt.Errorf("tools.%d.name: String should match pattern "+
				"'^[a-zA-Z0-9_-]{1,128}$'", i)
		}
		var schema struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(t.InputSchema, &schema) != nil || schema.Type != "object" {
			return fmt.Errorf("tools.%d.input_schema.type: Input should be 'object'", i)
		}
	}
	return nil
}

// checkConversation enforces the pairing of tool_use and tool_result
// blocks: every tool_use is answered in the next message, and every
// tool_result answers a tool_use of the previous one.
func checkConversation(msgs []Message) error {
	if msgs[0].Role != "user" {
		return fmt.Errorf("messages.0.role: the first message must use the user role")
	}
	for i, m := range msgs {
		var prev, next []Block
		if i > 0 {
			prev = msgs[i-1].Content
		}
		if i+1 < len(msgs) {
			next = msgs[i+1].Content
		}
		if err := checkPairs(i, m, prev, next, i+1 < len(msgs)); err != nil {
			return err
		}
	}
	return nil
}

func checkPairs(i int, m Message, prev, next []Block, hasNext bool) error {
	for j, b := range m.Content {
		switch {
		case b.Type == "tool_use" && m.Role == "assistant" && hasNext &&
			!hasBlock(next, "tool_result", b.ID):
			return fmt.Errorf("messages.%d: `tool_use` ids were found without `tool_result` "+
				"blocks immediately after: %s. Each `tool_use` block must have a "+
				"corresponding `tool_result` block in the next message", i+1, b.ID)
		case b.Type == "tool_result" && !hasBlock(prev, "tool_use", b.ToolUseID):
			return fmt.Errorf("messages.%d.content.%d: unexpected `tool_use_id` found in "+
				"`tool_result` blocks: %s. Each `tool_result` block must have a "+
				"corresponding `tool_use` block in the previous message", i, j, b.ToolUseID)
		}
	}
	return nil
}

func hasBlock(blocks []Block, typ, id string) bool {
	for _, b := range blocks {
		if b.Type == typ && id != "" && (b.ID == id || b.ToolUseID == id) {
			return true
		}
	}
	return false
}
