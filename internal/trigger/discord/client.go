package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhole/keyhole/internal/trigger"
)

// Client holds one bot's gateway connection and hands selected messages to
// a handler. Create it with New and start it with Run.
type Client struct {
	cfg      Config
	log      *slog.Logger
	rest     *REST
	limiter  *sendLimiter
	delivery *trigger.Delivery[Message]
	busy     chan Message
	clean    redactor
	running  atomic.Bool
	closing  sync.WaitGroup // asynchronous closes of old connections

	mu        sync.Mutex
	st        Status
	resumeURL string
	seq       atomic.Int64 // last sequence number; 0 means none yet
}

// New checks cfg and returns a client that is not connected yet.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		limiter: newSendLimiter(cfg.SendLimit, cfg.SendWindow),
		busy:    make(chan Message, 16),
		clean:   redactor{token: string(cfg.Token)},
		st:      Status{State: StateIdle},
	}
	c.rest = NewREST(cfg.Token, RESTOptions{APIBase: cfg.APIBase,
		HTTPClient: cfg.HTTPClient, Logger: cfg.Logger})
	c.delivery = trigger.NewDelivery(cfg.Handler, trigger.DeliveryOptions[Message]{
		Buffer:   cfg.Buffer,
		BusyWait: cfg.BusyWait,
		OnReject: c.rejected,
		OnError:  c.handlerFailed,
	})
	return c, nil
}

// REST returns the client's REST API client, for replies.
func (c *Client) REST() *REST { return c.rest }

// Reply posts text as a reply to m; see REST.Reply.
func (c *Client) Reply(ctx context.Context, m Message, text string) error {
	_, err := c.rest.Reply(ctx, m.ChannelID, m.ID, text)
	return err
}

// Run connects and keeps the connection until ctx is done, then returns
// nil. It returns a *CloseError when Discord closes with a code that retrying
// cannot fix (4004, 4010–4014). Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("discord: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.delivery.Run(ctx) })
	wg.Go(func() { c.busyReplies(ctx) })

	err := c.connectLoop(ctx)
	cancel()
	wg.Wait()
	c.closing.Wait()

	c.mu.Lock()
	c.st.State, c.st.Connected = StateStopped, false
	c.mu.Unlock()
	return err
}

// Status returns a snapshot of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()

	st.Sequence = c.seq.Load()
	ds := c.delivery.Stats()
	st.Delivered, st.Rejected, st.Failed, st.Queued =
		ds.Delivered, ds.Rejected, ds.Failed, ds.Queued
	return st
}

// connectLoop reconnects until ctx is done or a fatal close.
func (c *Client) connectLoop(ctx context.Context) error {
	failures := 0
	for {
		end := c.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fatal := c.fatal(end); fatal != nil {
			c.setState("", func(st *Status) { st.LastError = fatal.Error() })
			c.log.ErrorContext(ctx, "discord: stopping", "err", fatal)
			return fatal
		}

		if end.healthy {
			failures = 0
		}
		wait := c.nextWait(end, failures)
		if !end.healthy || end.err != nil {
			failures++
		}
		c.noteEnd(ctx, end, wait)
		if !trigger.Sleep(ctx, wait) {
			return nil
		}
	}
}

// fatal returns the error that stops the client for end, if any.
func (c *Client) fatal(end connEnd) error {
	advice, ok := fatalClose[end.closeCode]
	if !ok {
		return nil
	}
	return &CloseError{Code: end.closeCode, Reason: c.clean.string(end.closeReason),
		Advice: advice}
}

// nextWait decides how long to wait before reconnecting and whether the
// next connection may resume.
func (c *Client) nextWait(end connEnd, failures int) time.Duration {
	if !end.resumable || freshSessionClose[end.closeCode] {
		c.forgetSession()
	}
	switch {
	case end.invalidSession && !end.resumable:
		// Discord asks for a pause of 1–5 s before identifying again;
		// repeated failures add the backoff, since identifies are capped
		// per day and a token that exceeds the cap is reset.
		pause := time.Second + randDuration(4*time.Second)
		if failures > 0 {
			pause += c.cfg.Backoff.Delay(failures)
		}
		return pause
	case (end.reconnect || end.invalidSession) && end.healthy:
		return 0
	}
	return c.cfg.Backoff.Delay(failures)
}

func (c *Client) noteEnd(ctx context.Context, end connEnd, wait time.Duration) {
	reason := end.describe()
	c.mu.Lock()
	c.st.State, c.st.Connected = StateWaiting, false
	if end.err != nil || end.closeCode != 0 {
		c.st.LastError = c.clean.string(reason)
	}
	c.mu.Unlock()
	c.log.WarnContext(ctx, "discord: disconnected", "reason", c.clean.string(reason),
		"reconnect_in", wait, "resume", c.canResume())
}

func (c *Client) forgetSession() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.SessionID, c.resumeURL = "", ""
	c.seq.Store(0)
}

func (c *Client) canResume() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.SessionID != ""
}

// rejected counts, logs and optionally answers a message that was not
// delivered. It never logs the content, which may be private.
func (c *Client) rejected(m Message, err error) {
	c.log.Warn("discord: message not delivered", "message_id", m.ID,
		"channel_id", m.ChannelID, "err", err)
	if c.cfg.BusyReply == "" || errors.Is(err, context.Canceled) {
		return
	}
	select {
	case c.busy <- m:
	default:
		c.log.Warn("discord: busy reply skipped, too many pending", "message_id", m.ID)
	}
}

func (c *Client) handlerFailed(m Message, err error) {
	c.log.Error("discord: handler failed", "message_id", m.ID,
		"channel_id", m.ChannelID, "err", c.clean.error(err))
}

// busyReplies posts BusyReply to rejected messages, one at a time.
func (c *Client) busyReplies(ctx context.Context) {
	for {
		select {
		case m := <-c.busy:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := c.Reply(rctx, m, c.cfg.BusyReply); err != nil {
				c.log.WarnContext(ctx, "discord: busy reply failed",
					"message_id", m.ID, "err", err)
			}
			cancel()
		case <-ctx.Done():
			return
		}
	}
}

func (e connEnd) describe() string {
	switch {
	case e.closeCode != 0:
		return fmt.Sprintf("gateway closed with %d %q", e.closeCode, e.closeReason)
	case e.err != nil:
		return e.err.Error()
	case e.reconnect:
		return "gateway asked to reconnect (op 7)"
	case e.invalidSession:
		return fmt.Sprintf("invalid session (op 9, resumable=%t)", e.resumable)
	}
	return "connection ended"
}
