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
	sentAt   atomic.Int64  // unix nanoseconds of the last heartbeat
	timedAt  atomic.Int64  // … of the last heartbeat sent on the timer
	ackedAt  atomic.Int64  // … of the last ACK
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
	now := time.Now().UnixNano()
	h.ackedAt.Store(now)
	if sent := h.sentAt.Load(); sent != 0 {
		return time.Duration(now - sent)
	}
	return 0
}

// missed reports whether no ACK arrived since the last timed heartbeat. ACKs
// of requested heartbeats count too, so op 1 traffic never looks like a
// dead connection.
func (h *heartbeater) missed() bool {
	timed := h.timedAt.Load()
	return timed != 0 && h.ackedAt.Load() < timed
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
		timed := false
		select {
		case <-ctx.Done():
			return
		case <-h.asked:
		case <-timer.C:
			if h.missed() {
				h.zombie.Store(true)
				k.ws.CloseNow()
				return
			}
			timer.Reset(h.interval)
			timed = true
		}
		if err := k.beat(ctx, timed); err != nil {
			return
		}
	}
}

func (k *conn) beat(ctx context.Context, timed bool) error {
	h := k.hb
	now := time.Now().UnixNano()
	h.sentAt.Store(now)
	if timed {
		h.timedAt.Store(now)
	}
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
