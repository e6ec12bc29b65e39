package discord

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// heartbeater keeps the heartbeat state of one connection.
type heartbeater struct {
	interval time.Duration
	asked    chan struct{} // op 1 requests, coalesced
	pending  atomic.Bool   // a heartbeat awaits its ACK
	sentAt   atomic.Int64  // unix nanoseconds of the last heartbeat
	zombie   atomic.Bool   // an ACK was missed and the socket closed
}

func newHeartbeater(interval time.Duration) *heartbeater {
	return &heartbeater{interval: interval, asked: make(chan struct{}, 1)}
}

// request asks for a heartbeat now. Requests that arrive while one is
// pending merge into it, so a flood of op 1 cannot flood the gateway.
func (h *heartbeater) request() {
	select {
	case h.asked <- struct{}{}:
	default:
	}
}

// ack records an ACK and returns the heartbeat's round trip.
func (h *heartbeater) ack() time.Duration {
	h.pending.Store(false)
	if sent := h.sentAt.Load(); sent != 0 {
		return time.Since(time.Unix(0, sent))
	}
	return 0
}

// heartbeat sends heartbeats until ctx is done: the first after a random
// fraction of the interval, as Discord asks, then one per interval, and one
// at once when the gateway requests it. When an interval passes without the
// previous heartbeat's ACK the connection is a zombie: the socket is closed
// so the reader ends and the client resumes on a new connection.
func (k *conn) heartbeat(ctx context.Context) {
	h := k.hb
	timer := time.NewTimer(time.Duration(rand.Float64() * float64(h.interval)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.asked:
		case <-timer.C:
			if h.pending.Load() {
				h.zombie.Store(true)
				k.ws.CloseNow()
				return
			}
			timer.Reset(h.interval)
		}
		if err := k.beat(ctx); err != nil {
			return
		}
	}
}

func (k *conn) beat(ctx context.Context) error {
	h := k.hb
	h.pending.Store(true)
	h.sentAt.Store(time.Now().UnixNano())
	var seq any
	if s := k.c.seq.Load(); s > 0 {
		seq = s
	}
	err := k.send(ctx, opHeartbeat, seq, true)
	if err != nil && ctx.Err() == nil {
		// The reader sees the broken socket and ends the connection.
		k.ws.CloseNow()
	}
	return err
}
