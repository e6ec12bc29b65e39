package discord

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// gatewayConn is one client connection. ready and sends are guarded by the
// server's mu.
type gatewayConn struct {
	ws    *websocket.Conn
	path  string
	ready bool
	sends []time.Time
}

// writeTimeout bounds every write, so a stuck client cannot hang a test.
const writeTimeout = 5 * time.Second

func (c *gatewayConn) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// closeWith closes c with a Discord close code, without waiting long for the
// client's answer.
func (c *gatewayConn) closeWith(code int, reason string) {
	go c.ws.Close(websocket.StatusCode(code), reason)
}

func (s *Server) gateway(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Connections++
	s.notifyLocked()
	s.mu.Unlock()

	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	c := &gatewayConn{ws: ws, path: r.URL.Path}
	defer s.detach(c)

	hello := map[string]int64{"heartbeat_interval": s.opts.HeartbeatInterval.Milliseconds()}
	if c.write(frame(10, hello)) != nil {
		return
	}
	s.readLoop(c)
}

// readLoop reads the client's frames until the connection ends.
func (s *Server) readLoop(c *gatewayConn) {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		var p payload
		if typ != websocket.MessageText || json.Unmarshal(data, &p) != nil {
			c.closeWith(4002, "Error while decoding payload.")
			return
		}
		if !s.countFrame(c, p.Op) {
			c.closeWith(4008, "Rate limited.")
			return
		}
		if !s.handle(c, p) {
			return
		}
	}
}

// countFrame records a client frame and reports whether the connection is
// within its send limit.
func (s *Server) countFrame(c *gatewayConn, op int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.stats.Frames++
	s.frames = append(s.frames, Frame{Op: op, At: now})
	s.notifyLocked()

	keep := c.sends[:0]
	for _, t := range c.sends {
		if now.Sub(t) < s.opts.SendWindow {
			keep = append(keep, t)
		}
	}
	c.sends = append(keep, now)
	return len(c.sends) <= s.opts.SendLimit
}

// handle answers one payload and reports whether to keep reading.
func (s *Server) handle(c *gatewayConn, p payload) bool {
	switch p.Op {
	case 1:
		s.heartbeat(c)
		return true
	case 2:
		return s.identify(c, p.D)
	case 6:
		return s.resume(c, p.D)
	case 3, 4, 8:
		// Presence, voice state and member requests are accepted and ignored.
		if !s.isReady(c) {
			c.closeWith(4003, "Not authenticated.")
			return false
		}
		return true
	default:
		c.closeWith(4001, "Unknown opcode.")
		return false
	}
}

func (s *Server) isReady(c *gatewayConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.ready
}

func (s *Server) heartbeat(c *gatewayConn) {
	s.mu.Lock()
	s.stats.Heartbeats++
	s.notifyLocked()
	acks := s.acks
	s.mu.Unlock()
	if acks {
		c.write([]byte(`{"op":11,"d":null}`))
	}
}

type identifyData struct {
	Token      string            `json:"token"`
	Intents    *int              `json:"intents"`
	Properties map[string]string `json:"properties"`
}

func (s *Server) identify(c *gatewayConn, raw json.RawMessage) bool {
	var d identifyData
	if json.Unmarshal(raw, &d) != nil || d.Intents == nil || !hasProperties(d.Properties) {
		c.closeWith(4002, "Error while decoding payload.")
		return false
	}
	if code, reason := s.checkIdentify(c, d); code != 0 {
		c.closeWith(code, reason)
		return false
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.takeOverLocked(c)
	s.sessionID, s.seq, s.events = newSessionID(), 0, nil
	s.stats.Identifies++
	s.lastIdentify = Identify{Intents: *d.Intents, Properties: d.Properties}
	s.dispatchLocked("READY", s.readyData())
	return true
}

func hasProperties(p map[string]string) bool {
	return p["os"] != "" && p["browser"] != "" && p["device"] != ""
}

// checkIdentify returns the close code and reason an Identify earns, or 0.
func (s *Server) checkIdentify(c *gatewayConn, d identifyData) (int, string) {
	switch {
	case s.isReady(c):
		return 4005, "Already authenticated."
	case d.Token != s.opts.Token:
		return 4004, "Authentication failed."
	case *d.Intents&s.opts.DisallowedIntents != 0:
		return 4014, "Disallowed intent(s)."
	case *d.Intents&s.opts.RequiredIntents != s.opts.RequiredIntents:
		return 4013, "Invalid intent(s)."
	}
	return 0, ""
}

func (s *Server) readyData() map[string]any {
	return map[string]any{
		"v": 10,
		"user": map[string]any{
			"id": s.opts.BotUserID, "username": "keyhole-bot", "bot": true,
		},
		"guilds":             []any{},
		"session_id":         s.sessionID,
		"resume_gateway_url": s.ResumeURL(),
		"application":        map[string]any{"id": s.opts.BotUserID},
	}
}

type resumeData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       int64  `json:"seq"`
}

func (s *Server) resume(c *gatewayConn, raw json.RawMessage) bool {
	var d resumeData
	if json.Unmarshal(raw, &d) != nil {
		c.closeWith(4002, "Error while decoding payload.")
		return false
	}
	if d.Token != s.opts.Token {
		c.closeWith(4004, "Authentication failed.")
		return false
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if d.SessionID == "" || d.SessionID != s.sessionID || d.Seq > s.seq {
		// Discord answers a resume it cannot honour with op 9, d=false.
		c.write(frame(9, false))
		return true
	}
	s.takeOverLocked(c)
	s.stats.Resumes++
	s.lastResume = Resume{SessionID: d.SessionID, Seq: d.Seq, Path: c.path}
	s.replayLocked(d.Seq)
	s.dispatchLocked("RESUMED", map[string]any{})
	return true
}

// takeOverLocked makes c the session's connection, closing any other.
func (s *Server) takeOverLocked(c *gatewayConn) {
	if old := s.conn; old != nil && old != c {
		old.ws.CloseNow()
	}
	s.conn = c
	c.ready = true
	s.notifyLocked()
}

func (s *Server) replayLocked(after int64) {
	for _, e := range s.events {
		if e.seq > after {
			s.conn.write(e.frame)
			s.stats.Replayed++
		}
	}
}

// detach forgets c as the session's connection; the session stays resumable.
func (s *Server) detach(c *gatewayConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == c {
		s.conn = nil
		s.notifyLocked()
	}
}

// dispatchLocked sends an op 0 event with the next sequence number, keeping
// it for replay. The caller holds s.mu.
func (s *Server) dispatchLocked(name string, d any) (int64, error) {
	s.seq++
	data, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	seq := s.seq
	b, _ := json.Marshal(payload{Op: 0, D: data, S: &seq, T: &name})
	s.events = append(s.events, event{seq: seq, frame: b})
	if s.conn != nil && s.conn.ready {
		return seq, s.conn.write(b)
	}
	return seq, nil
}

// Dispatch sends event name with data d to the client and returns its
// sequence number. Without a connected client the event is kept and
// replayed on Resume; without a session it fails with ErrNoConnection.
func (s *Server) Dispatch(name string, d any) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessionID == "" {
		return 0, ErrNoConnection
	}
	return s.dispatchLocked(name, d)
}

// Message is a chat message for [Server.SendMessage]. Empty fields get
// plausible defaults.
type Message struct {
	ID         string
	ChannelID  string // default "200000000000000002"
	GuildID    string // default "300000000000000003"; ignored for a DM
	DM         bool   // a direct message: no guild id
	AuthorID   string // default "400000000000000004"
	AuthorName string // default "alice"
	AuthorBot  bool
	Content    string
	// Mentions lists mentioned user ids. Nil means the <@id> tokens found
	// in Content, as Discord does.
	Mentions []string
}

var mentionToken = regexp.MustCompile(`<@!?(\d+)>`)

// SendMessage dispatches a MESSAGE_CREATE event and returns its sequence
// number; see Dispatch.
func (s *Server) SendMessage(m Message) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessionID == "" {
		return 0, ErrNoConnection
	}
	return s.dispatchLocked("MESSAGE_CREATE", s.messageData(m))
}

func (s *Server) messageData(m Message) map[string]any {
	if m.ID == "" {
		s.nextID++
		m.ID = strconv.FormatInt(s.nextID, 10)
	}
	m.ChannelID = or(m.ChannelID, "200000000000000002")
	m.AuthorID = or(m.AuthorID, "400000000000000004")
	m.AuthorName = or(m.AuthorName, "alice")
	if m.Mentions == nil {
		for _, match := range mentionToken.FindAllStringSubmatch(m.Content, -1) {
			m.Mentions = append(m.Mentions, match[1])
		}
	}

	mentions := []map[string]any{}
	for _, id := range m.Mentions {
		mentions = append(mentions, map[string]any{"id": id, "username": "user" + id})
	}
	d := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "type": 0, "content": m.Content,
		"author": map[string]any{
			"id": m.AuthorID, "username": m.AuthorName, "bot": m.AuthorBot,
		},
		"mentions":  mentions,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
	}
	if !m.DM {
		d["guild_id"] = or(m.GuildID, "300000000000000003")
	}
	return d
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// current returns the connection holding the session.
func (s *Server) current() (*gatewayConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil, ErrNoConnection
	}
	return s.conn, nil
}

// Reconnect sends op 7, asking the client to reconnect and resume.
func (s *Server) Reconnect() error {
	return s.send([]byte(`{"op":7,"d":null}`))
}

// RequestHeartbeat sends op 1, asking the client for a heartbeat now.
func (s *Server) RequestHeartbeat() error {
	return s.send([]byte(`{"op":1,"d":null}`))
}

// InvalidateSession sends op 9 with d=resumable. When resumable is false
// the session is forgotten, so only a fresh Identify succeeds.
func (s *Server) InvalidateSession(resumable bool) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	if !resumable {
		s.mu.Lock()
		s.sessionID = ""
		s.mu.Unlock()
	}
	return c.write(frame(9, resumable))
}

// SendRaw sends text as one frame, as is, for garbage-input tests.
func (s *Server) SendRaw(text string) error { return s.send([]byte(text)) }

func (s *Server) send(b []byte) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	return c.write(b)
}

// CloseWith closes the client's connection with a close frame carrying code
// and reason. The session stays resumable.
func (s *Server) CloseWith(code int, reason string) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	s.detach(c)
	c.closeWith(code, reason)
	return nil
}

// Drop cuts the client's connection without a close frame, as a network
// failure would. The session stays resumable.
func (s *Server) Drop() error {
	c, err := s.current()
	if err != nil {
		return err
	}
	s.detach(c)
	return c.ws.CloseNow()
}
