package discord_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/trigger"
	"github.com/keyhole/keyhole/internal/trigger/discord"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// canaryToken is the bot token every test uses; it must never show up in a
// log line, an error or a status.
const canaryToken = "MTAwMDAwMDAwMDAwMDAwMDAx.CANARY.keyhole-canary-token-7f3a"

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
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

// bundle is what a test gets from setup.
type bundle struct {
	srv    *fakediscord.Server
	client *discord.Client
	msgs   chan discord.Message
	logs   *syncBuffer
	ctx    context.Context
	done   chan error // receives Run's result
}

type setupOptions struct {
	fake    fakediscord.Options
	config  func(*discord.Config)
	handler discord.Handler // nil means forward to msgs
}

// setup starts a fake Discord and a client connected to it. The client is
// stopped, and the canary checked in its logs, status and error, at cleanup.
func setup(t *testing.T, o setupOptions) *bundle {
	t.Helper()
	if o.fake.Token == "" {
		o.fake.Token = canaryToken
	}
	if o.fake.HeartbeatInterval == 0 {
		o.fake.HeartbeatInterval = 200 * time.Millisecond
	}
	srv := fakediscord.NewServer(o.fake)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b := &bundle{srv: srv, msgs: make(chan discord.Message, 1000), logs: &syncBuffer{},
		ctx: ctx, done: make(chan error, 1)}
	handler := o.handler
	if handler == nil {
		handler = func(_ context.Context, m discord.Message) error {
			b.msgs <- m
			return nil
		}
	}
	cfg := discord.Config{
		Token:      canaryToken,
		GatewayURL: srv.GatewayURL(),
		APIBase:    srv.APIBase(),
		Filter:     discord.Filter{Mention: true},
		Handler:    handler,
		Backoff:    trigger.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		Logger: slog.New(slog.NewJSONHandler(b.logs,
			&slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.config != nil {
		o.config(&cfg)
	}
	client, err := discord.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.client = client

	go func() { b.done <- client.Run(ctx) }()
	t.Cleanup(func() { b.stop(t, cancel) })
	return b
}

// stop cancels the client, waits for Run and checks the canary everywhere.
func (b *bundle) stop(t *testing.T, cancel context.CancelFunc) {
	t.Helper()
	cancel()
	var err error
	select {
	case err = <-b.done:
		b.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	if t.Failed() {
		t.Logf("client logs:\n%s", b.logs.String())
	}
	noCanary(t, "logs", b.logs.String())
	noCanary(t, "status", fmt.Sprintf("%+v", b.client.Status()))
	if err != nil {
		noCanary(t, "Run error", err.Error())
	}
}

func noCanary(t *testing.T, where, s string) {
	t.Helper()
	if strings.Contains(s, canaryToken) || strings.Contains(s, "keyhole-canary-token") {
		t.Errorf("the bot token appears in %s: %s", where, s)
	}
}

// waitStats waits up to 10 s for cond on the fake's stats.
func (b *bundle) waitStats(t *testing.T, what string, cond func(fakediscord.Stats) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := b.srv.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// waitReady waits until the client has a session (fake side and client side).
func (b *bundle) waitReady(t *testing.T) {
	t.Helper()
	b.waitStats(t, "identify", func(s fakediscord.Stats) bool { return s.Identifies >= 1 })
	b.waitClient(t, "connected", func(s discord.Status) bool { return s.Connected })
}

func (b *bundle) waitClient(t *testing.T, what string, cond func(discord.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(b.client.Status()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for client %s; status %+v", what, b.client.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mention sends "<@bot> text" and returns its sequence number.
func (b *bundle) mention(t *testing.T, text string) int64 {
	t.Helper()
	seq, err := b.srv.SendMessage(fakediscord.Message{
		Content: "<@" + b.srv.BotUserID() + "> " + text})
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	return seq
}

// receive returns the next message the handler got.
func (b *bundle) receive(t *testing.T) discord.Message {
	t.Helper()
	select {
	case m := <-b.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message reached the handler within 10s")
		return discord.Message{}
	}
}

// runErr waits for Run to return and gives its error.
func (b *bundle) runErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s")
		return nil
	}
}

func isQueueFull(err error) bool { return errors.Is(err, trigger.ErrQueueFull) }
