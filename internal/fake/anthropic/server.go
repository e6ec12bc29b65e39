package anthropic

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"time"
)

// DefaultKey is the API key a server accepts unless Options says otherwise.
const DefaultKey = "sk-ant-api03-keyhole-fake-0000000000000000"

// maxBody bounds the request bodies the server reads.
const maxBody = 16 << 20

// Turn answers one request of the script.
type Turn func(r *Request) Reply

// Reply is the model's answer to one request.
type Reply struct {
	// Text, when not empty, is the first content block.
	Text string

	// ToolCalls become tool_use blocks after the text.
	ToolCalls []ToolCall

	// StopReason is "tool_use" when there are tool calls and "end_turn"
	// otherwise, unless set.
	StopReason string

	// Usage is estimated from the request and reply sizes when nil.
	Usage *Usage

	// Error, when set, is sent instead of a message.
	Error *APIError

	// Delay holds the answer back; a client that gives up first gets none.
	Delay time.Duration
}

// ToolCall is one tool_use block of a reply.
type ToolCall struct {
	ID    string // "toolu_fake…" numbered in order when empty
	Name  string
	Input any // marshalled to JSON; a json.RawMessage is sent as it is
}

// Usage is the token usage a reply reports.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// APIError is an error the API answers with.
type APIError struct {
	Status  int    // HTTP status
	Type    string // such as "rate_limit_error"; from Status when empty
	Message string
}

// Say returns a turn that answers with text alone.
func Say(text string) Turn {
	return func(*Request) Reply { return Reply{Text: text} }
}

// CallTool returns a turn that asks for one tool call.
func CallTool(name string, input any) Turn {
	return func(*Request) Reply {
		return Reply{ToolCalls: []ToolCall{{Name: name, Input: input}}}
	}
}

// Options configures a Handler. The zero value accepts DefaultKey and
// answers every request with an error, as it has no script.
type Options struct {
	Key string // the API key requests must carry; DefaultKey when empty

	// Turns answer valid requests in order, one each.
	Turns []Turn

	// Rest answers every valid request after Turns run out; when nil,
	// such requests get a 500 error saying the script has ended.
	Rest Turn
}

// Handler serves the fake API. It is safe for concurrent use.
type Handler struct {
	key   string
	turns []Turn
	rest  Turn

	mu       sync.Mutex
	requests []*Request
	next     int // index of the next turn
	seq      int // numbers request, message and tool_use ids
}

// NewHandler returns a Handler.
func NewHandler(opts *Options) *Handler {
	h := &Handler{key: DefaultKey}
	if opts != nil {
		if opts.Key != "" {
			h.key = opts.Key
		}
		h.turns, h.rest = opts.Turns, opts.Rest
	}
	return h
}

// Key returns the API key the handler accepts.
func (h *Handler) Key() string { return h.key }

// Requests returns every request received so far, oldest first, including
// those refused.
func (h *Handler) Requests() []*Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Request(nil), h.requests...)
}

// Server is a Handler listening on a loopback port.
type Server struct {
	*httptest.Server
	*Handler
}

// NewServer starts a plain HTTP server on 127.0.0.1 serving a Handler.
// Close it when done.
func NewServer(opts *Options) *Server {
	h := NewHandler(opts)
	return &Server{Server: httptest.NewServer(h), Handler: h}
}

var apiVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// ServeHTTP answers one request as the Messages API would.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	req := &Request{Header: r.Header.Clone(), Body: body}
	id := h.record(req)
	w.Header().Set("request-id", id)

	switch {
	case err != nil:
		writeError(w, id, &APIError{Status: 400, Message: "could not read the body"})
	case len(body) > maxBody:
		writeError(w, id, &APIError{Status: 413, Message: "Request exceeds the maximum size"})
	case !h.authorized(r):
		writeError(w, id, &APIError{Status: 401, Message: "invalid x-api-key"})
	case r.Method != http.MethodPost || r.URL.Path != "/v1/messages":
		writeError(w, id, &APIError{Status: 404, Message: "Not Found"})
	case !apiVersion.MatchString(r.Header.Get("anthropic-version")):
		writeError(w, id, &APIError{Status: 400,
			Message: "anthropic-version: header is required and must be a date such as 2023-06-01"})
	default:
		h.answer(w, r, req, id)
	}
}

func (h *Handler) record(req *Request) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, req)
	h.seq++
	return fmt.Sprintf("req_fake%06d", h.seq)
}

func (h *Handler) authorized(r *http.Request) bool {
	key := r.Header.Get("x-api-key")
	return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(h.key)) == 1
}

// answer parses a request, plays the next turn and writes its reply.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, req *Request, id string) {
	if err := req.parse(); err != nil {
		writeError(w, id, &APIError{Status: 400, Message: err.Error()})
		return
	}
	turn := h.nextTurn()
	if turn == nil {
		writeError(w, id, &APIError{Status: 500,
			Message: "the fake's script has no turn left for this request"})
		return
	}
	reply := turn(req)
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Error != nil {
		writeError(w, id, reply.Error)
		return
	}

	msg := h.message(req, reply)
	if req.Stream {
		writeStream(w, msg)
		return
	}
	writeJSON(w, http.StatusOK, msg)
}

func (h *Handler) nextTurn() Turn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.next < len(h.turns) {
		h.next++
		return h.turns[h.next-1]
	}
	return h.rest
}

// message is a Message object of the API.
type message struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []contentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        Usage          `json:"usage"`
}

// contentBlock is a text or tool_use block of a response.
type contentBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

// message builds the response message for a reply.
func (h *Handler) message(req *Request, reply Reply) *message {
	h.mu.Lock()
	h.seq++
	msg := &message{ID: fmt.Sprintf("msg_fake%06d", h.seq), Type: "message",
		Role: "assistant", Model: req.Model, Content: []contentBlock{}}
	h.mu.Unlock()

	if reply.Text != "" {
		text := reply.Text
		msg.Content = append(msg.Content, contentBlock{Type: "text", Text: &text})
	}
	for _, c := range reply.ToolCalls {
		msg.Content = append(msg.Content, h.toolUse(c))
	}

	stop := reply.StopReason
	if stop == "" {
		stop = "end_turn"
		if len(reply.ToolCalls) > 0 {
			stop = "tool_use"
		}
	}
	msg.StopReason = &stop
	msg.Usage = estimate(req, msg, reply.Usage)
	return msg
}

func (h *Handler) toolUse(c ToolCall) contentBlock {
	input, err := json.Marshal(c.Input)
	if err != nil || c.Input == nil {
		input = json.RawMessage(`{}`)
	}
	id := c.ID
	if id == "" {
		h.mu.Lock()
		h.seq++
		id = fmt.Sprintf("toolu_fake%06d", h.seq)
		h.mu.Unlock()
	}
	return contentBlock{Type: "tool_use", ID: id, Name: c.Name, Input: input}
}

// estimate returns the usage to report: given, or about one token for four
// bytes of request body and of generated content.
func estimate(req *Request, msg *message, given *Usage) Usage {
	if given != nil {
		return *given
	}
	out := 0
	for _, b := range msg.Content {
		if b.Text != nil {
			out += len(*b.Text)
		}
		out += len(b.Name) + len(b.Input)
	}
	return Usage{InputTokens: int64(max(1, len(req.Body)/4)),
		OutputTokens: int64(max(1, out/4))}
}

// errorTypes maps statuses to the API's error types.
var errorTypes = map[int]string{
	400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
	404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
	500: "api_error", 529: "overloaded_error",
}

func writeError(w http.ResponseWriter, id string, e *APIError) {
	typ := e.Type
	if typ == "" {
		typ = errorTypes[e.Status]
	}
	if typ == "" {
		typ = "api_error"
	}
	writeJSON(w, e.Status, map[string]any{
		"type":       "error",
		"error":      map[string]string{"type": typ, "message": e.Message},
		"request_id": id,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
