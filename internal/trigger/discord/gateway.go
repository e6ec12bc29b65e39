package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Gateway opcodes.
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opResume         = 6
	opReconnect      = 7
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatACK   = 11
)

const (
	dialTimeout  = 20 * time.Second
	helloTimeout = 20 * time.Second
	writeTimeout = 10 * time.Second
	maxFrameSize = 16 << 20 // READY can be large for bots in many guilds
)

// Close codes the client sends. Closing with 1000 ends the session;
// any 4000-range code keeps it resumable.
const (
	closeEndSession websocket.StatusCode = websocket.StatusNormalClosure
	closeToResume   websocket.StatusCode = 4000
)

// payload is one gateway frame.
type payload struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

// connEnd says how a connection ended and what may follow.
type connEnd struct {
	err            error
	closeCode      int
	closeReason    string
	healthy        bool // READY or RESUMED was received
	resumable      bool // the session may be resumed
	reconnect      bool // op 7
	invalidSession bool // op 9
}

// conn is one gateway connection.
type conn struct {
	c       *Client
	ws      *websocket.Conn
	hb      *heartbeater
	healthy bool
}

// connect runs one connection from dial to its end.
func (c *Client) connect(ctx context.Context) connEnd {
	url, resuming := c.dialTarget()
	c.setState(StateConnecting, func(st *Status) { st.Connects++ })

	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient})
	cancel()
	if err != nil {
		return connEnd{err: fmt.Errorf("dial gateway: %w", err), resumable: resuming}
	}
	ws.SetReadLimit(maxFrameSize)
	k := &conn{c: c, ws: ws}

	// Close with 1000 when the caller stops us, ending the session cleanly.
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		ws.Close(closeEndSession, "keyhole trigger stopping")
	})
	end := k.run(ctx, resuming)
	if !stop() {
		<-stopped
	}
	k.finish(end)
	return end
}

// dialTarget returns the URL to dial and whether to resume there.
func (c *Client) dialTarget() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	base, resuming := c.cfg.GatewayURL, c.st.SessionID != ""
	if resuming && c.resumeURL != "" {
		base = c.resumeURL
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "v=10&encoding=json", resuming
}

// run performs the handshake and reads until the connection ends.
func (k *conn) run(ctx context.Context, resuming bool) connEnd {
	interval, err := k.readHello(ctx)
	if err != nil {
		return k.readEnd(err, resuming)
	}

	hctx, stopHeartbeat := context.WithCancel(ctx)
	defer stopHeartbeat()
	k.hb = newHeartbeater(interval)
	go k.heartbeat(hctx)

	if err := k.handshake(ctx, resuming); err != nil {
		return connEnd{err: err, resumable: resuming}
	}
	return k.readLoop(ctx, resuming)
}

func (k *conn) readHello(ctx context.Context) (time.Duration, error) {
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	_, data, err := k.ws.Read(hctx)
	if err != nil {
		return 0, err
	}

	var p payload
	var hello struct {
		Interval int64 `json:"heartbeat_interval"`
	}
	if json.Unmarshal(data, &p) != nil || p.Op != opHello ||
		json.Unmarshal(p.D, &hello) != nil || hello.Interval <= 0 {
		return 0, errors.New("gateway did not start with a valid Hello")
	}
	return time.Duration(hello.Interval) * time.Millisecond, nil
}

// handshake sends Resume when a session is kept, Identify otherwise.
func (k *conn) handshake(ctx context.Context, resuming bool) error {
	c := k.c
	if resuming {
		c.mu.Lock()
		d := map[string]any{"token": string(c.cfg.Token), "session_id": c.st.SessionID,
			"seq": c.seq.Load()}
		c.mu.Unlock()
		return k.send(ctx, opResume, d, false)
	}
	d := map[string]any{
		"token":   string(c.cfg.Token),
		"intents": int(c.cfg.Intents),
		"properties": map[string]string{
			"os": runtime.GOOS, "browser": "keyhole", "device": "keyhole",
		},
	}
	return k.send(ctx, opIdentify, d, false)
}

// send writes one frame within the client's send limit.
func (k *conn) send(ctx context.Context, op int, d any, heartbeat bool) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode op %d: %w", op, err)
	}
	frame, err := json.Marshal(payload{Op: op, D: data})
	if err != nil {
		return fmt.Errorf("encode op %d: %w", op, err)
	}
	if err := k.c.limiter.wait(ctx, heartbeat); err != nil {
		return err
	}

	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := k.ws.Write(wctx, websocket.MessageText, frame); err != nil {
		return fmt.Errorf("send op %d: %w", op, err)
	}
	return nil
}

// readLoop reads frames until the connection ends. It never waits on the
// handler: selected messages go to a buffer that never blocks.
func (k *conn) readLoop(ctx context.Context, resuming bool) connEnd {
	for {
		typ, data, err := k.ws.Read(ctx)
		if err != nil {
			return k.readEnd(err, resuming || k.healthy)
		}
		if typ != websocket.MessageText {
			k.badFrame(ctx, "binary frame")
			continue
		}
		if end, done := k.handle(ctx, data); done {
			return end
		}
	}
}

// readEnd turns a read error into a connEnd.
func (k *conn) readEnd(err error, resumable bool) connEnd {
	end := connEnd{err: err, healthy: k.healthy, resumable: resumable}
	if k.hb != nil && k.hb.zombie.Load() {
		end.err = errors.New("heartbeat ACK missed: connection presumed dead")
		return end
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		end.err, end.closeCode, end.closeReason = nil, int(ce.Code), ce.Reason
	}
	return end
}

// handle processes one frame; done reports that the connection must end.
func (k *conn) handle(ctx context.Context, data []byte) (end connEnd, done bool) {
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		k.badFrame(ctx, "undecodable JSON")
		return connEnd{}, false
	}
	k.c.touch(p.S)

	switch p.Op {
	case opDispatch:
		k.dispatch(ctx, p)
	case opHeartbeat:
		k.hb.request()
	case opHeartbeatACK:
		k.c.noteLatency(k.hb.ack())
	case opReconnect:
		return connEnd{healthy: k.healthy, resumable: true, reconnect: true}, true
	case opInvalidSession:
		var resumable bool
		json.Unmarshal(p.D, &resumable)
		return connEnd{healthy: k.healthy, resumable: resumable, invalidSession: true}, true
	}
	return connEnd{}, false
}

func (k *conn) badFrame(ctx context.Context, what string) {
	k.c.setState("", func(st *Status) { st.BadFrames++ })
	k.c.log.WarnContext(ctx, "discord: ignoring bad gateway frame", "problem", what)
}

// dispatch handles an op 0 event.
func (k *conn) dispatch(ctx context.Context, p payload) {
	switch p.T {
	case "READY":
		k.ready(ctx, p.D)
	case "RESUMED":
		k.healthy = true
		k.c.setState(StateConnected, func(st *Status) { st.Connected = true; st.Resumes++ })
		k.c.log.InfoContext(ctx, "discord: resumed", "seq", k.c.seq.Load())
	case "MESSAGE_CREATE":
		k.c.message(ctx, p.D)
	}
}

func (k *conn) ready(ctx context.Context, d json.RawMessage) {
	var r struct {
		SessionID string `json:"session_id"`
		ResumeURL string `json:"resume_gateway_url"`
		User      User   `json:"user"`
	}
	if err := json.Unmarshal(d, &r); err != nil || r.SessionID == "" {
		k.badFrame(ctx, "READY without a session")
		return
	}

	k.healthy = true
	c := k.c
	if r.ResumeURL != "" && c.cfg.CheckURL != nil {
		if err := c.cfg.CheckURL(r.ResumeURL); err != nil {
			// The token goes in the Resume payload: never to a host the
			// bot's resource does not allow. Resume on the gateway instead.
			c.log.WarnContext(ctx, "discord: resume URL refused, resuming on the gateway",
				"err", err)
			r.ResumeURL = ""
		}
	}
	c.mu.Lock()
	c.resumeURL = r.ResumeURL
	c.mu.Unlock()
	c.setState(StateConnected, func(st *Status) {
		st.Connected, st.SessionID, st.BotUserID = true, r.SessionID, r.User.ID
		st.Identifies++
	})
	c.log.InfoContext(ctx, "discord: ready", "session_id", r.SessionID,
		"bot_user_id", r.User.ID)
}

// message selects a MESSAGE_CREATE event and offers it for delivery.
func (c *Client) message(ctx context.Context, d json.RawMessage) {
	m, err := parseMessage(d, time.Now())
	if err != nil {
		c.setState("", func(st *Status) { st.BadFrames++ })
		c.log.WarnContext(ctx, "discord: ignoring undecodable message", "err", err)
		return
	}
	c.mu.Lock()
	botID := c.st.BotUserID
	c.mu.Unlock()

	if m, ok := c.cfg.Filter.selects(m, botID); ok {
		c.delivery.Offer(m) // a refusal is counted and logged by rejected
	}
}

// finish closes the socket as the end requires.
func (k *conn) finish(end connEnd) {
	code, reason := closeToResume, "reconnecting"
	if !end.resumable {
		code, reason = closeEndSession, "starting a new session"
	}
	if end.err != nil || end.closeCode != 0 {
		k.ws.CloseNow()
		return
	}
	// A polite close waits for the peer's answer; do not hold up the
	// reconnect for it.
	k.c.closing.Go(func() { k.ws.Close(code, reason) })
}

// touch records that an event arrived and its sequence number.
func (c *Client) touch(seq *int64) {
	if seq != nil {
		c.seq.Store(*seq)
	}
	c.mu.Lock()
	c.st.LastEvent = time.Now()
	c.mu.Unlock()
}

func (c *Client) noteLatency(d time.Duration) {
	if d > 0 {
		c.setState("", func(st *Status) { st.Latency = d })
	}
}

// setState changes the state (unless s is empty) and applies f under the
// lock.
func (c *Client) setState(s State, f func(*Status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s != "" {
		c.st.State = s
	}
	if f != nil {
		f(&c.st)
	}
}

func randDuration(d time.Duration) time.Duration { return rand.N(d) }
