package openai

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// DefaultKey is the API key a server accepts unless Options says otherwise.
const DefaultKey = "sk-proj-keyhole-fake-000000000000000000000000"

// maxBody bounds the request bodies the server reads.
const maxBody = 16 << 20

// created is the fixed creation time responses report.
const created = 1714000000

// Turn answers one request of the script.
type Turn func(r *Request) Reply

// Reply is the model's answer to one request.
type Reply struct {
	// Text is the message content; null when empty.
	Text string

	// ToolCalls become the message's tool_calls.
	ToolCalls []ToolCall

	// FinishReason is "tool_calls" when there are tool calls and "stop"
	// otherwise, unless set.
	FinishReason string

	// Usage is estimated from the request and reply sizes when nil.
	Usage *Usage

	// Error, when set, is sent instead of a completion.
	Error *APIError

	// Delay holds the answer back; a client that gives up first gets none.
	Delay time.Duration
}

// ToolCall is one function call of a reply.
type ToolCall struct {
	ID   string // "call_fake…" numbered in order when empty
	Name string

	// Arguments is sent as it is when a string, which lets a test send
	// arguments that are not valid JSON, and marshalled to JSON otherwise.
	Arguments any
}

// Usage is the token usage a reply reports.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// APIError is an error the API answers with.
type APIError struct {
	Status  int    // HTTP status
	Type    string // such as "rate_limit_exceeded"; from Status when empty
	Code    string // optional
	Message string
}

// Say returns a turn that answers with text alone.
func Say(text string) Turn {
	return func(*Request) Reply { return Reply{Text: text} }
}

// CallTool returns a turn that asks for one function call.
func CallTool(name string, args any) Turn {
	return func(*Request) Reply {
		return Reply{ToolCalls: []ToolCall{{Name: name, Arguments: args}}}
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
	seq      int // numbers request, completion and call ids
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

// Server is a Handler listening on a loopback port. Clients take
// Server.URL + "/v1" as their base URL.
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

// ServeHTTP answers one request as the Chat Completions API would.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	req := &Request{Header: r.Header.Clone(), Body: body}
	w.Header().Set("x-request-id", h.record(req))

	switch {
	case err != nil:
		writeError(w, &APIError{Status: 400, Message: "could not read the body"}, "")
	case len(body) > maxBody:
		writeError(w, &APIError{Status: 413, Message: "the request is too large"}, "")
	case r.Header.Get("Authorization") == "":
		writeError(w, &APIError{Status: 401, Message: "You didn't provide an API key. You " +
			"need to provide your API key in an Authorization header using Bearer auth " +
			"(i.e. Authorization: Bearer YOUR_KEY)."}, "")
	case !h.authorized(r):
		writeError(w, &APIError{Status: 401, Code: "invalid_api_key",
			Message: "Incorrect API key provided."}, "")
	case r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions":
		writeError(w, &APIError{Status: 404, Message: fmt.Sprintf("Invalid URL (%s %s)",
			r.Method, r.URL.Path)}, "")
	default:
		h.answer(w, r, req)
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
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(key), []byte(h.key)) == 1
}

// answer parses a request, plays the next turn and writes its reply.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, req *Request) {
	if param, err := req.parse(); err != nil {
		writeError(w, &APIError{Status: 400, Message: err.Error()}, param)
		return
	}
	turn := h.nextTurn()
	if turn == nil {
		writeError(w, &APIError{Status: 500,
			Message: "the fake's script has no turn left for this request"}, "")
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
		writeError(w, reply.Error, "")
		return
	}

	c := h.completion(req, reply)
	if req.Stream {
		writeStream(w, c, req.IncludeUsage)
		return
	}
	writeJSON(w, http.StatusOK, c)
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

// completion is a chat.completion object.
type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   Usage    `json:"usage"`
}

type choice struct {
	Index        int         `json:"index"`
	Message      wireMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
	Logprobs     any         `json:"logprobs"`
}

// wireMessage is an assistant message of a response.
type wireMessage struct {
	Role      string         `json:"role"`
	Content   *string        `json:"content"`
	Refusal   *string        `json:"refusal"`
	ToolCalls []WireToolCall `json:"tool_calls,omitempty"`
}

// completion builds the response for a reply.
func (h *Handler) completion(req *Request, reply Reply) *completion {
	h.mu.Lock()
	h.seq++
	c := &completion{ID: fmt.Sprintf("chatcmpl-fake%06d", h.seq),
		Object: "chat.completion", Created: created, Model: req.Model}
	h.mu.Unlock()

	msg := wireMessage{Role: "assistant"}
	if reply.Text != "" {
		msg.Content = &reply.Text
	}
	for _, tc := range reply.ToolCalls {
		msg.ToolCalls = append(msg.ToolCalls, h.toolCall(tc))
	}
	finish := reply.FinishReason
	if finish == "" {
		finish = "stop"
		if len(reply.ToolCalls) > 0 {
			finish = "tool_calls"
		}
	}
	c.Choices = []choice{{Message: msg, FinishReason: finish}}
	c.Usage = estimate(req, msg, reply.Usage)
	return c
}

func (h *Handler) toolCall(tc ToolCall) WireToolCall {
	var w WireToolCall
	w.ID, w.Type, w.Function.Name = tc.ID, "function", tc.Name
	switch a := tc.Arguments.(type) {
	case string:
		w.Function.Arguments = a
	case nil:
		w.Function.Arguments = "{}"
	default:
		b, err := json.Marshal(a)
		if err != nil {
			b = []byte("{}")
		}
		w.Function.Arguments = string(b)
	}
	if w.ID == "" {
		h.mu.Lock()
		h.seq++
		w.ID = fmt.Sprintf("call_fake%06d", h.seq)
		h.mu.Unlock()
	}
	return w
}

// estimate returns the usage to report: given, or about one token for four
// bytes of request body and of generated content.
func estimate(req *Request, msg wireMessage, given *Usage) Usage {
	if given != nil {
		u := *given
		if u.TotalTokens == 0 {
			u.TotalTokens = u.PromptTokens + u.CompletionTokens
		}
		return u
	}
	out := 0
	if msg.Content != nil {
		out += len(*msg.Content)
	}
	for _, c := range msg.ToolCalls {
		out += len(c.Function.Name) + len(c.Function.Arguments)
	}
	in, gen := int64(max(1, len(req.Body)/4)), int64(max(1, out/4))
	return Usage{PromptTokens: in, CompletionTokens: gen, TotalTokens: in + gen}
}

// errorTypes maps statuses to the API's error types.
var errorTypes = map[int]string{
	400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
	413: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error",
	503: "server_error",
}

func writeError(w http.ResponseWriter, e *APIError, param string) {
	typ := e.Type
	if typ == "" {
		typ = errorTypes[e.Status]
	}
	if typ == "" {
		typ = "server_error"
	}
	body := map[string]any{"message": e.Message, "type": typ, "param": nil, "code": nil}
	if param != "" {
		body["param"] = param
	}
	if e.Code != "" {
		body["code"] = e.Code
	}
	writeJSON(w, e.Status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
