package anthropic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"
)

// Sizes of the pieces text and tool input are streamed in.
const (
	textChunk  = 16
	inputChunk = 12
)

// writeStream sends msg as the API's server-sent events.
func writeStream(w http.ResponseWriter, msg *message) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w}

	start := *msg
	start.Content, start.StopReason = []contentBlock{}, nil
	start.Usage = Usage{InputTokens: msg.Usage.InputTokens, OutputTokens: 1}
	s.event("message_start", map[string]any{"type": "message_start", "message": start})
	s.event("ping", map[string]any{"type": "ping"})

	for i, b := range msg.Content {
		s.block(i, b)
	}

	s.event("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": msg.StopReason, "stop_sequence": nil},
		"usage": map[string]int64{"output_tokens": msg.Usage.OutputTokens},
	})
	s.event("message_stop", map[string]any{"type": "message_stop"})
}

// sse writes events and flushes each.
type sse struct {
	w http.ResponseWriter
}

func (s *sse) event(name string, data any) {
	b, _ := json.Marshal(data)
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// block streams one content block: its start with the block emptied, its
// content in deltas, and its stop.
func (s *sse) block(i int, b contentBlock) {
	empty := b
	var kind, field, content string
	switch b.Type {
	case "text":
		empty.Text = new(string)
		kind, field, content = "text_delta", "text", *b.Text
	case "tool_use":
		empty.Input = json.RawMessage(`{}`)
		kind, field, content = "input_json_delta", "partial_json", string(b.Input)
	}
	s.event("content_block_start", map[string]any{"type": "content_block_start",
		"index": i, "content_block": empty})

	size := textChunk
	if b.Type == "tool_use" {
		size = inputChunk
	}
	for _, piece := range split(content, size) {
		s.event("content_block_delta", map[string]any{"type": "content_block_delta",
			"index": i, "delta": map[string]string{"type": kind, field: piece}})
	}
	s.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
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
