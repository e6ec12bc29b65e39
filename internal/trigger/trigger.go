// Package trigger holds what keyhole's trigger kinds share: the error a job
// queue returns when it cannot take more work, the reconnect backoff, and the
// bounded delivery that stands between a connection's reader and its handler.
//
// The kinds themselves live in subpackages: [webhook] verifies signed HTTP
// deliveries, [schedule] computes due cron ticks, and the long-lived
// connections ([discord], [websocket]) turn incoming messages into calls of a
// handler that the server wires to the job queue.
//
// [webhook]: https://pkg.go.dev/github.com/keyhole/keyhole/internal/trigger/webhook
// [schedule]: https://pkg.go.dev/github.com/keyhole/keyhole/internal/trigger/schedule
// [discord]: https://pkg.go.dev/github.com/keyhole/keyhole/internal/trigger/discord
// [websocket]: https://pkg.go.dev/github.com/keyhole/keyhole/internal/trigger/websocket
package trigger

import (
	"errors"
	"math/rand/v2"
	"time"
)

// ErrQueueFull is returned (possibly wrapped) by a handler whose job queue
// cannot take another job right now. Connection triggers answer it by waiting
// a bounded time and retrying; they never drop a message without counting and
// logging it.
var ErrQueueFull = errors.New("trigger: job queue is full")

// Backoff is an exponential reconnect delay with jitter: attempt n waits a
// random duration between Min/2 and min(Max, Min·2ⁿ). The floor keeps a
// refusing peer from being hammered; the jitter keeps many triggers that lost
// the same peer from reconnecting in step.
type Backoff struct {
	// Min is the ceiling of the first delay. Zero means one second.
	Min time.Duration
	// Max caps every delay. Zero means two minutes.
	Max time.Duration
}

// Delay returns the wait before reconnect attempt n (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := b.bounds()
	ceiling := lo
	for i := 0; i < attempt && ceiling < hi; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, hi)
	floor := lo / 2
	return floor + rand.N(ceiling-floor+1)
}

func (b Backoff) bounds() (lo, hi time.Duration) {
	lo, hi = b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 2 * time.Minute
	}
	return lo, max(lo, hi)
}
