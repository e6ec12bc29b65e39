package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/keyhole/keyhole/internal/trigger"
	wstrigger "github.com/keyhole/keyhole/internal/trigger/websocket"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const canary = "sk_live_CANARY_websocket_9d2f"

// peer is a local WebSocket server a test drives by hand.
type peer struct {
	srv      *httptest.Server
	conns    chan *websocket.Conn
	requests atomic.Int64
	refuse   int // answer this HTTP status instead of upgrading, if set
	mu       sync.Mutex
	headers  []http.Header
	done     chan struct{}
}

func newPeer(t *testing.T, refuse int) *peer {
	t.Helper()
	p := &peer{conns: make(chan *websocket.Conn, 10), refuse: refuse, done: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		close(p.done)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *peer) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	p.headers = append(p.headers, r.Header.Clone())
	p.mu.Unlock()
	if p.refuse != 0 {
		http.Error(w, "go away", p.refuse)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	p.conns <- ws
	<-p.done
	ws.CloseNow()
}

func (p *peer) url() string { return "ws" + strings.TrimPrefix(p.srv.URL, "http") }

// accept returns the next connection the client made.
func (p *peer) accept(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case ws := <-p.conns:
		return ws
	case <-time.After(10 * time.Second):
		t.Fatal("client did not connect within 10s")
		return nil
	}
}

func read(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("peer read: %v", err)
	}
	return string(data)
}

func write(t *testing.T, ws *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs a client for cfg and stops it at cleanup, checking that the
// canary appears nowhere in its logs or status.
func start(t *testing.T, cfg wstrigger.Config) (*wstrigger.Client, chan wstrigger.Message) {
	t.Helper()
	msgs := make(chan wstrigger.Message, 100)
	logs := &syncBuffer{}
	if cfg.Handler == nil {
		cfg.Handler = func(_ context.Context, m wstrigger.Message) error {
			msgs <- m
			return nil
		}
	}
	if cfg.Backoff == (trigger.Backoff{}) {
		cfg.Backoff = trigger.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := wstrigger.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
		for where, s := range map[string]string{"logs": logs.String(),
			"status": jsonString(c.Status())} {
			if strings.Contains(s, canary) {
				t.Errorf("the secret appears in %s: %s", where, s)
			}
		}
	})
	return c, msgs
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestConnectSendsHeadersInitialMessagesAndHeartbeats(t *testing.T) {
	t.Parallel()
	p := newPeer(t, 0)
	start(t, wstrigger.Config{
		URL:             p.url(),
		Header:          http.Header{"Authorization": {"Bearer " + canary}},
		InitialMessages: []string{`{"op":"auth"}`, `{"op":"subscribe","channel":"invoices"}`},
		Heartbeat:       &wstrigger.Heartbeat{Interval: 100 * time.Millisecond, Message: `{"op":"ping"}`},
	})
	ws := p.accept(t)

	got := []string{read(t, ws), read(t, ws), read(t, ws), read(t, ws)}
	want := []string{`{"op":"auth"}`, `{"op":"subscribe","channel":"invoices"}`,
		`{"op":"ping"}`, `{"op":"ping"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames from client (-want +got):\n%s", diff)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if auth := p.headers[0].Get("Authorization"); auth != "Bearer "+canary {
		t.Errorf("Authorization = %q, want the injected header", auth)
	}
}

func TestFiltersSelectMessages(t *testing.T) {
	t.Parallel()
	p := newPeer(t, 0)
	c, msgs := start(t, wstrigger.Config{
		URL: p.url(),
		Filters: []wstrigger.Filter{
			{Path: "type", Equals: json.RawMessage(`"invoice.paid"`)},
			{Expr: `.data.amount >= 100`},
		},
	})
	ws := p.accept(t)

	for _, m := range []string{
		`{"type":"ping"}`,
		`not json`,
		`{"type":"invoice.paid","data":{"amount":5}}`,
		`{"type":"invoice.paid","data":{"amount":250,"customer":"acme"}}`,
	} {
		write(t, ws, m)
	}

	select {
	case m := <-msgs:
		if !strings.Contains(string(m.Data), "acme") {
			t.Errorf("handler got %s, want the acme invoice", m.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message reached the handler")
	}
	waitFor(t, func() bool { return c.Status().Received == 4 })
	if st := c.Status(); st.Matched != 1 {
		t.Errorf("matched = %d, want 1", st.Matched)
	}
}

func TestSendResultBack(t *testing.T) {
	t.Parallel()
	p := newPeer(t, 0)
	c, msgs := start(t, wstrigger.Config{URL: p.url()})
	ws := p.accept(t)
	write(t, ws, `{"id":7,"question":"did Acme pay?"}`)
	<-msgs

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte(`{"id":7,"answer":"yes"}`)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := read(t, ws); got != `{"id":7,"answer":"yes"}` {
		t.Errorf("peer got %s", got)
	}
}

func TestReconnectsAfterClose(t *testing.T) {
	t.Parallel()
	p := newPeer(t, 0)
	c, _ := start(t, wstrigger.Config{URL: p.url(), InitialMessages: []string{"hello"}})

	first := p.accept(t)
	read(t, first)
	first.Close(websocket.StatusGoingAway, "restarting")

	second := p.accept(t)
	if got := read(t, second); got != "hello" {
		t.Errorf("after reconnect the client sent %q, want the initial message again", got)
	}
	waitFor(t, func() bool { return c.Status().Connected })
	if st := c.Status(); !strings.Contains(st.LastError, "1001") {
		t.Errorf("last error = %q, want the close code", st.LastError)
	}
}

func TestRefusingURLIsRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	c, _ := start(t, wstrigger.Config{
		URL:     "ws://" + addr + "/stream?token=" + canary,
		Backoff: trigger.Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond},
	})
	time.Sleep(time.Second)

	st := c.Status()
	// Each wait is at least Min/2 = 50 ms, so a second allows at most 21.
	if st.Connects < 2 || st.Connects > 21 {
		t.Errorf("%d attempts in 1s, want retries paced by the backoff", st.Connects)
	}
	if !strings.Contains(st.LastError, "refused") {
		t.Errorf("last error = %q, want it to say the connection was refused", st.LastError)
	}
	if strings.Contains(st.URL, canary) || st.Connected {
		t.Errorf("status = %+v", st)
	}
}

func TestHTTPRefusalIsReported(t *testing.T) {
	t.Parallel()
	p := newPeer(t, http.StatusUnauthorized)
	c, _ := start(t, wstrigger.Config{URL: p.url(),
		Header: http.Header{"X-Api-Key": {canary}}})

	waitFor(t, func() bool { return p.requests.Load() >= 2 })
	if st := c.Status(); !strings.Contains(st.LastError, "401") {
		t.Errorf("last error = %q, want the 401", st.LastError)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, wstrigger.Message) error { return nil }
	tests := []struct {
		name string
		cfg  wstrigger.Config
		want string
	}{
		{"no url", wstrigger.Config{Handler: ok}, "ws:// or wss://"},
		{"http url", wstrigger.Config{URL: "http://x.test?key=" + canary, Handler: ok}, "ws://"},
		{"no handler", wstrigger.Config{URL: "ws://x.test"}, "handler is required"},
		{"bad heartbeat", wstrigger.Config{URL: "ws://x.test", Handler: ok,
			Heartbeat: &wstrigger.Heartbeat{Interval: time.Millisecond}}, "heartbeat"},
		{"bad filter", wstrigger.Config{URL: "ws://x.test", Handler: ok,
			Filters: []wstrigger.Filter{{Expr: "(("}}}, "filters[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := wstrigger.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
