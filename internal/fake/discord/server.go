package discord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Gateway intents the fake knows by name.
const (
	IntentGuildMessages  = 1 << 9
	IntentDirectMessages = 1 << 12
	IntentMessageContent = 1 << 15
)

// Options configures a [Server]. Only Token is required.
type Options struct {
	// Token is the bot token the gateway and REST API accept.
	Token string
	// BotUserID is the bot user's id sent in READY. Empty means
	// "100000000000000001".
	BotUserID string
	// HeartbeatInterval is sent in Hello. Zero means 41.25 s, Discord's
	// usual value; tests pass something short.
	HeartbeatInterval time.Duration
	// RequiredIntents must all be set in Identify, or the gateway closes
	// with 4013. Zero means guild messages, direct messages and message
	// content.
	RequiredIntents int
	// DisallowedIntents may not be set in Identify (4014), as with
	// privileged intents not enabled for the bot.
	DisallowedIntents int
	// SendLimit and SendWindow bound the client's frames per connection:
	// one more and the gateway closes with 4008. Zero means 120 per 60 s.
	SendLimit  int
	SendWindow time.Duration
	// PostLimit and PostWindow size each channel's REST rate-limit bucket.
	// Zero means 5 per 5 s.
	PostLimit  int
	PostWindow time.Duration
}

func (o Options) withDefaults() Options {
	if o.BotUserID == "" {
		o.BotUserID = "100000000000000001"
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 41250 * time.Millisecond
	}
	if o.RequiredIntents == 0 {
		o.RequiredIntents = IntentGuildMessages | IntentDirectMessages | IntentMessageContent
	}
	if o.SendLimit <= 0 || o.SendWindow <= 0 {
		o.SendLimit, o.SendWindow = 120, time.Minute
	}
	if o.PostLimit <= 0 || o.PostWindow <= 0 {
		o.PostLimit, o.PostWindow = 5, 5*time.Second
	}
	return o
}

// Stats counts what the fake has seen.
type Stats struct {
	Connections  int // WebSocket upgrade requests, accepted or not
	Identifies   int // valid Identify payloads
	Resumes      int // successful Resumes
	Heartbeats   int // op 1 frames from the client
	Frames       int // all frames from the client
	Replayed     int // events re-sent on Resume
	Posts        int // messages created through REST
	Unauthorized int // REST requests refused with 401
	RateLimited  int // REST requests answered 429
}

// Frame is one frame the client sent.
type Frame struct {
	Op int
	At time.Time
}

// Identify is the part of an Identify payload a test may check.
type Identify struct {
	Intents    int
	Properties map[string]string
}

// Resume is a Resume payload that the fake accepted, and the path of the
// URL it arrived on.
type Resume struct {
	SessionID string
	Seq       int64
	Path      string
}

// Server is a fake Discord gateway and REST API on a loopback port.
type Server struct {
	opts Options
	http *httptest.Server

	mu           sync.Mutex
	changed      chan struct{} // closed and replaced on every change
	stats        Stats
	frames       []Frame
	conn         *gatewayConn // the connection holding the session, if any
	sessionID    string       // "" when no session is resumable
	seq          int64
	events       []event // dispatched in this session, for replay
	acks         bool
	lastIdentify Identify
	lastResume   Resume
	posts        []Post
	forced429    []time.Duration
	buckets      map[string]*bucket
	nonces       map[string]Post
	nextID       int64
}

type event struct {
	seq   int64
	frame []byte
}

// NewServer starts a fake on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	s := &Server{
		opts:    opts.withDefaults(),
		changed: make(chan struct{}),
		acks:    true,
		buckets: map[string]*bucket{},
		nonces:  map[string]Post{},
		nextID:  1_300_000_000_000_000_000,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v10/channels/{channel}/messages", s.createMessage)
	mux.HandleFunc("/", s.gateway)
	s.http = httptest.NewServer(mux)
	return s
}

// Close drops every connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c != nil {
		c.ws.CloseNow()
	}
	s.http.CloseClientConnections()
	s.http.Close()
}

// GatewayURL returns the gateway's address (ws://127.0.0.1:port/gateway).
func (s *Server) GatewayURL() string {
	return "ws" + strings.TrimPrefix(s.http.URL, "http") + "/gateway"
}

// ResumeURL returns the resume_gateway_url that READY announces.
func (s *Server) ResumeURL() string {
	return "ws" + strings.TrimPrefix(s.http.URL, "http") + "/resume"
}

// APIBase returns the REST API's origin (http://127.0.0.1:port).
func (s *Server) APIBase() string { return s.http.URL }

// BotUserID returns the bot user's id, as sent in READY.
func (s *Server) BotUserID() string { return s.opts.BotUserID }

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Wait blocks until cond holds for the stats, or ctx is done.
func (s *Server) Wait(ctx context.Context, cond func(Stats) bool) error {
	for {
		s.mu.Lock()
		st, changed := s.stats, s.changed
		s.mu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fake discord: waiting, last stats %+v: %w", st, ctx.Err())
		}
	}
}

// Frames returns every frame the client has sent, oldest first.
func (s *Server) Frames() []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Frame(nil), s.frames...)
}

// Session returns the current session id ("" if none) and last sequence.
func (s *Server) Session() (id string, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionID, s.seq
}

// LastIdentify returns the last valid Identify.
func (s *Server) LastIdentify() Identify {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIdentify
}

// LastResume returns the last accepted Resume.
func (s *Server) LastResume() Resume {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastResume
}

// SetHeartbeatAcks turns heartbeat ACKs (op 11) on or off, to simulate a
// zombie connection.
func (s *Server) SetHeartbeatAcks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks = on
}

// notifyLocked wakes every Wait. The caller holds s.mu.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func newSessionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrNoConnection is returned by the methods that need a connected client.
var ErrNoConnection = errors.New("fake discord: no client connected")

// payload is a gateway frame in either direction.
type payload struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s"`
	T  *string         `json:"t"`
}

func frame(op int, d any) []byte {
	data, _ := json.Marshal(d)
	b, _ := json.Marshal(payload{Op: op, D: data})
	return b
}
