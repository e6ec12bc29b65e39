// Package websocket is keyhole's generic WebSocket trigger: it holds a
// connection to a URL, sends initial messages and heartbeats, and hands each
// incoming message that passes its filters to a handler.
//
// Header values are supplied by the server, which injects secrets such as
// API keys there; they are sent in the handshake and appear in no log line,
// error or [Status]. The query string of the URL is treated the same way.
//
// # Filters
//
// Filters are a list of conditions that must all hold; see [Filter]. The
// common case, "this field equals that value", needs no expression language
// and can be checked when the trigger is saved: {path, equals}. Anything
// richer takes a jq expression ({expr}), through gojq, which keyhole already
// uses to shape tool output, so users learn one language. An expression is
// compiled once and each run is bounded in time. A message that is not JSON
// passes only when there are no filters.
//
// # Connection
//
// After the handshake the client sends InitialMessages in order, then
// Heartbeat.Message every Heartbeat.Interval. When the connection fails or
// cannot be made (refused, bad handshake) the client reconnects with
// exponential backoff and jitter, logging each failure with its cause;
// the backoff starts over only after a connection stayed up for 30 s, so a
// peer that accepts and drops at once is not spun on either. The handler is
// fed through a bounded buffer exactly as in the Discord trigger (see
// package trigger): reading never waits on it, a full job queue is retried
// for Config.BusyWait, and a message that cannot be delivered is counted and
// logged. Results go back to the peer with [Client.Send].
package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhole/keyhole/internal/trigger"
)

// Message is an incoming message that passed the filters.
type Message struct {
	// Data is the message as received.
	Data []byte
	// Value is Data decoded as JSON (numbers as json.Number), or nil when
	// Data is not JSON.
	Value any
	// ReceivedAt is when the client read it.
	ReceivedAt time.Time
}

// Handler receives each message that passed the filters. It reports a full
// job queue by returning an error wrapping trigger.ErrQueueFull.
type Handler func(ctx context.Context, m Message) error

// Heartbeat is a message sent at a fixed interval to keep the connection
// alive at the application level.
type Heartbeat struct {
	Interval time.Duration `json:"interval"`
	Message  string        `json:"message"`
}

// Config configures a [Client]. URL and Handler are required.
type Config struct {
	// URL is the ws:// or wss:// address to connect to.
	URL string
	// Header is sent with the handshake. Its values may be secrets.
	Header http.Header
	// InitialMessages are sent, in order, after every connect.
	InitialMessages []string
	// Heartbeat, when set, is sent every Interval.
	Heartbeat *Heartbeat
	// Filters must all match for a message to reach Handler.
	Filters []Filter
	// Handler receives the matching messages.
	Handler Handler
	// Buffer and BusyWait size the delivery; zero means 256 and 5 s.
	Buffer   int
	BusyWait time.Duration
	// Backoff paces reconnects. Zero means 1 s to 2 min.
	Backoff trigger.Backoff
	// ReadLimit caps one incoming message. Zero means 1 MiB.
	ReadLimit int64
	// HTTPClient is used for the handshake. Nil means a default client.
	HTTPClient *http.Client
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

// Status is a snapshot of the client for a status display; it holds no
// header value and no query string.
type Status struct {
	Connected   bool
	URL         string // without its query string
	Connects    int    // connection attempts
	LastError   string
	LastMessage time.Time
	Received    uint64 // messages read
	Matched     uint64 // messages that passed the filters
	Delivered   uint64
	Rejected    uint64
	Failed      uint64
	Queued      int
}

// Client holds one WebSocket trigger connection.
type Client struct {
	cfg      Config
	log      *slog.Logger
	filters  []matcher
	delivery *trigger.Delivery[Message]
	secrets  []string
	running  atomic.Bool
	received atomic.Uint64
	matched  atomic.Uint64

	mu      sync.Mutex
	st      Status
	ws      *websocket.Conn // current connection, nil when down
	changed chan struct{}   // closed and replaced when ws changes
}

// stableAfter is how long a connection must last for the backoff to reset.
const stableAfter = 30 * time.Second

// New checks cfg, compiles its filters and returns an unconnected client.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	filters, err := compileFilters(cfg.Filters)
	if err != nil {
		return nil, fmt.Errorf("websocket: invalid filters: %w", err)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, filters: filters,
		secrets: secretsOf(cfg), changed: make(chan struct{})}
	c.st.URL = safeURL(cfg.URL)
	c.delivery = trigger.NewDelivery(cfg.Handler, trigger.DeliveryOptions[Message]{
		Buffer:   cfg.Buffer,
		BusyWait: cfg.BusyWait,
		OnReject: func(_ Message, err error) {
			c.log.Warn("websocket: message not delivered", "url", c.st.URL, "err", err)
		},
		OnError: func(_ Message, err error) {
			c.log.Error("websocket: handler failed", "url", c.st.URL, "err", c.clean(err))
		},
	})
	return c, nil
}

func (cfg *Config) validate() error {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q must be an absolute ws:// or wss:// URL",
			safeURL(cfg.URL)))
	}
	if cfg.Handler == nil {
		errs = append(errs, errors.New("a handler is required"))
	}
	if hb := cfg.Heartbeat; hb != nil && (hb.Interval < 100*time.Millisecond || hb.Message == "") {
		errs = append(errs, errors.New("heartbeat needs an interval of at least 100ms "+
			"and a message"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("websocket: invalid config: %w", err)
	}

	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run holds the connection until ctx is done, then returns nil. It may be
// called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("websocket: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.delivery.Run(ctx) })

	failures := 0
	for ctx.Err() == nil {
		up, err := c.connect(ctx)
		if ctx.Err() != nil {
			break
		}
		if up >= stableAfter {
			failures = 0
		}
		wait := c.cfg.Backoff.Delay(failures)
		failures++
		c.noteFailure(ctx, err, wait)
		trigger.Sleep(ctx, wait)
	}
	cancel()
	wg.Wait()
	return nil
}

func (c *Client) noteFailure(ctx context.Context, err error, wait time.Duration) {
	msg := c.clean(err).Error()
	c.mu.Lock()
	c.st.LastError = msg
	c.mu.Unlock()
	c.log.WarnContext(ctx, "websocket: connection failed", "url", c.st.URL,
		"err", msg, "reconnect_in", wait)
}

// connect runs one connection and returns how long it was up and why it
// ended.
func (c *Client) connect(ctx context.Context) (time.Duration, error) {
	c.mu.Lock()
	c.st.Connects++
	c.mu.Unlock()

	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ws, resp, err := websocket.Dial(dctx, c.cfg.URL, &websocket.DialOptions{
		HTTPClient: c.cfg.HTTPClient, HTTPHeader: c.cfg.Header})
	cancel()
	if err != nil {
		return 0, dialError(resp, err)
	}
	ws.SetReadLimit(c.cfg.ReadLimit)
	start := time.Now()
	c.setConn(ws)
	defer c.setConn(nil)
	c.log.InfoContext(ctx, "websocket: connected", "url", c.st.URL)

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ws.CloseNow()
	if err := c.sendInitial(cctx, ws); err != nil {
		return time.Since(start), err
	}
	if c.cfg.Heartbeat != nil {
		wg.Go(func() { c.heartbeat(cctx, ws) })
	}
	err = c.readLoop(cctx, ws)
	return time.Since(start), err
}

func dialError(resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("connect: server answered %s instead of upgrading", resp.Status)
	}
	return fmt.Errorf("connect: %w", err)
}

func (c *Client) sendInitial(ctx context.Context, ws *websocket.Conn) error {
	for i, m := range c.cfg.InitialMessages {
		if err := write(ctx, ws, m); err != nil {
			return fmt.Errorf("send initial message %d: %w", i, err)
		}
	}
	return nil
}

func (c *Client) heartbeat(ctx context.Context, ws *websocket.Conn) {
	t := time.NewTicker(c.cfg.Heartbeat.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := write(ctx, ws, c.cfg.Heartbeat.Message); err != nil {
				ws.CloseNow() // the reader reports the failure
				return
			}
		}
	}
}

func write(ctx context.Context, ws *websocket.Conn, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, []byte(msg))
}

// readLoop reads until the connection fails, offering matches for delivery.
func (c *Client) readLoop(ctx context.Context, ws *websocket.Conn) error {
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			if status := websocket.CloseStatus(err); status != -1 {
				return fmt.Errorf("server closed the connection: %d %s", status,
					closeReason(err))
			}
			return fmt.Errorf("read: %w", err)
		}
		c.received.Add(1)
		c.mu.Lock()
		c.st.LastMessage = time.Now()
		c.mu.Unlock()

		m := Message{Data: data, ReceivedAt: time.Now()}
		m.Value, _ = decodeJSON(data)
		if c.selects(ctx, m) {
			c.matched.Add(1)
			c.delivery.Offer(m)
		}
	}
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

func (c *Client) selects(ctx context.Context, m Message) bool {
	if len(c.filters) == 0 {
		return true
	}
	if m.Value == nil {
		return false
	}
	for _, f := range c.filters {
		if !f.match(ctx, m.Value) {
			return false
		}
	}
	return true
}

func (c *Client) setConn(ws *websocket.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws = ws
	c.st.Connected = ws != nil
	close(c.changed)
	c.changed = make(chan struct{})
}

// Send writes data as one text message on the current connection, waiting
// until ctx is done for the client to be connected.
func (c *Client) Send(ctx context.Context, data []byte) error {
	for {
		c.mu.Lock()
		ws, changed := c.ws, c.changed
		c.mu.Unlock()
		if ws != nil {
			if err := write(ctx, ws, string(data)); err != nil {
				return fmt.Errorf("websocket: send: %w", c.clean(err))
			}
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("websocket: send: not connected: %w", ctx.Err())
		}
	}
}

// Status returns a snapshot of the client.
func (c *Client) Status() Status {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	ds := c.delivery.Stats()
	st.Received, st.Matched = c.received.Load(), c.matched.Load()
	st.Delivered, st.Rejected, st.Failed, st.Queued =
		ds.Delivered, ds.Rejected, ds.Failed, ds.Queued
	return st
}

// secretsOf lists the strings that must not appear in output: header values
// and the URL's query string.
func secretsOf(cfg Config) []string {
	var out []string
	for _, vs := range cfg.Header {
		for _, v := range vs {
			if len(v) >= 4 {
				out = append(out, v)
			}
		}
	}
	if u, err := url.Parse(cfg.URL); err == nil {
		if u.RawQuery != "" {
			out = append(out, u.RawQuery)
		}
		if u.User != nil {
			out = append(out, u.User.String())
		}
	}
	return out
}

// clean returns err with every secret replaced. A cleaned error no longer
// unwraps, so the original text cannot be reached through it.
func (c *Client) clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range c.secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// safeURL returns u without its query string and user info.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return u.String()
}
