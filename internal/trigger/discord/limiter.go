package discord

import (
	"context"
	"sync"
	"time"
)

// sendLimiter is a token bucket over every gateway send. Its burst and rate
// are chosen so that no window of the configured length holds more than the
// configured number of sends: burst + rate·window = limit. A few tokens are
// reserved for heartbeats, so other sends can never starve them.
type sendLimiter struct {
	now func() time.Time

	mu       sync.Mutex
	tokens   float64
	last     time.Time
	capacity float64
	rate     float64 // tokens per second
	reserve  float64
}

func newSendLimiter(limit int, window time.Duration) *sendLimiter {
	burst := max(1, limit/6)
	return &sendLimiter{
		now:      time.Now,
		tokens:   float64(burst),
		last:     time.Now(),
		capacity: float64(burst),
		rate:     float64(limit-burst) / window.Seconds(),
		reserve:  float64(min(burst-1, max(1, burst/10))),
	}
}

// wait blocks until a send may go out. Heartbeats may use the reserve.
func (l *sendLimiter) wait(ctx context.Context, heartbeat bool) error {
	for {
		delay := l.take(heartbeat)
		if delay == 0 {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// take takes a token and returns 0, or returns how long to wait for one.
func (l *sendLimiter) take(heartbeat bool) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.tokens = min(l.capacity, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now

	need := 1.0
	if !heartbeat {
		need += l.reserve
	}
	if l.tokens >= need {
		l.tokens--
		return 0
	}
	missing := need - l.tokens
	return time.Duration(missing / l.rate * float64(time.Second))
}
