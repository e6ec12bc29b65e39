package discord_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/trigger"
	"github.com/keyhole/keyhole/internal/trigger/discord"
)

func TestFloodWithSlowHandler(t *testing.T) {
	t.Parallel()
	const flood = 200
	var handled atomic.Int64
	b := setup(t, setupOptions{
		// Long enough that the fake, slowed by the race detector while it
		// writes the flood, still acknowledges in time.
		fake: fakediscord.Options{HeartbeatInterval: 300 * time.Millisecond},
		config: func(c *discord.Config) {
			c.Buffer = 20
			c.BusyReply = "I'm busy, please ask again in a minute."
		},
		handler: func(ctx context.Context, m discord.Message) error {
			time.Sleep(5 * time.Millisecond) // a slow queue
			handled.Add(1)
			return nil
		},
	})
	b.waitReady(t)
	beatsBefore := b.srv.Stats().Heartbeats

	for i := range flood {
		b.mention(t, fmt.Sprintf("question %d", i))
	}
	b.waitClient(t, "every message accounted for", func(s discord.Status) bool {
		return s.Delivered+s.Rejected == flood && s.Queued == 0
	})

	st := b.client.Status()
	if st.Rejected == 0 || st.Delivered < 20 || int64(st.Delivered) != handled.Load() {
		t.Errorf("status = %+v, handled %d: want some delivered and the overflow rejected",
			st, handled.Load())
	}
	if n := strings.Count(b.logs.String(), "message not delivered"); n != int(st.Rejected) {
		t.Errorf("%d rejections logged, want %d", n, st.Rejected)
	}
	b.waitStats(t, "busy replies", func(s fakediscord.Stats) bool { return s.Posts >= 1 })

	// Reading the flood did not stall heartbeats: the same connection
	// kept beating.
	b.waitStats(t, "more heartbeats", func(s fakediscord.Stats) bool {
		return s.Heartbeats >= beatsBefore+2
	})
	if n := b.srv.Stats().Connections; n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

func TestQueueFullIsRetriedThenRejected(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var full atomic.Bool
	full.Store(true)
	b := setup(t, setupOptions{
		config: func(c *discord.Config) {
			c.BusyWait = 300 * time.Millisecond
			c.BusyReply = "busy"
		},
		handler: func(context.Context, discord.Message) error {
			calls.Add(1)
			if full.Load() {
				return fmt.Errorf("enqueue: %w", trigger.ErrQueueFull)
			}
			return nil
		},
	})
	b.waitReady(t)

	b.mention(t, "while full")
	b.waitClient(t, "rejection", func(s discord.Status) bool { return s.Rejected == 1 })
	if calls.Load() < 2 {
		t.Errorf("handler called %d times, want retries before giving up", calls.Load())
	}
	b.waitStats(t, "busy reply", func(s fakediscord.Stats) bool { return s.Posts == 1 })
	if p := b.srv.Posts()[0]; p.Content != "busy" || p.ReplyTo == "" {
		t.Errorf("busy reply = %+v", p)
	}

	full.Store(false)
	b.mention(t, "after")
	b.waitClient(t, "delivery", func(s discord.Status) bool { return s.Delivered == 1 })
}
