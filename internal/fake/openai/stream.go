package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"
)

// Sizes of the pieces text and arguments are streamed in.
const (
	textChunk = 16
	argsChunk = 12
)

// chunk is a chat.completion.chunk object.
type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type delta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	ToolCalls []toolCallDelta `json:"tool_calls,omitempty"`
}

type toolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// writeStream sends c as "data:" lines of chunks ending with [DONE].
func writeStream(w http.ResponseWriter, c *completion, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, c: c}

	empty := ""
	s.send(delta{Role: "assistant", Content: &empty}, nil)
	msg := c.Choices[0].Message
	if msg.Content != nil {
		for _, piece := range split(*msg.Content, textChunk) {
			s.send(delta{Content: &piece}, nil)
		}
	}
	for i, tc := range msg.ToolCalls {
		s.toolCall(i, tc)
	}
	s.send(delta{}, &c.Choices[0].FinishReason)

	if includeUsage {
		s.write(chunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created,
			Model: c.Model, Choices: []chunkChoice{}, Usage: &c.Usage})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	s.flush()
}

// sse writes chunks of one completion and flushes each.
type sse struct {
	w http.ResponseWriter
	c *completion
}

func (s *sse) send(d delta, finish *string) {
	s.write(chunk{ID: s.c.ID, Object: "chat.completion.chunk", Created: s.c.Created,
		Model: s.c.Model, Choices: []chunkChoice{{Delta: d, FinishReason: finish}}})
}

func (s *sse) write(c chunk) {
	b, _ := json.Marshal(c)
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	s.flush()
}

func (s *sse) flush() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// toolCall streams one call: its id and name first, then its arguments.
func (s *sse) toolCall(i int, tc WireToolCall) {
	head := toolCallDelta{Index: i, ID: tc.ID, Type: "function"}
	head.Function.Name = tc.Function.Name
	s.send(delta{ToolCalls: []toolCallDelta{head}}, nil)
	for _, piece := range split(tc.Function.Arguments, argsChunk) {
		d := toolCallDelta{Index: i}
		d.Function.Arguments = piece
		s.send(delta{ToolCalls: []toolCallDelta{d}}, nil)
	}
}

// split cuts s into pieces of about size bytes, never inside a character.
func split(s string, size int) []string {
	var out []string
	for len(s) > 0 {
		n := min(size, len(s))
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n++
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}
