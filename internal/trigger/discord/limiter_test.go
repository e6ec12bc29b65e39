package discord

import (
	"testing"
	"time"
)

func TestSendLimiterNeverExceedsWindow(t *testing.T) {
	t.Parallel()
	l := newSendLimiter(120, time.Minute)
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	l.last = clock

	// Send as fast as the limiter lets us for five minutes of fake time.
	var sent []time.Time
	for clock.Before(time.Unix(300, 0)) {
		if wait := l.take(len(sent)%2 == 0); wait > 0 {
			clock = clock.Add(wait)
			continue
		}
		sent = append(sent, clock)
	}

	for i := range sent {
		n := 0
		for j := i; j < len(sent) && sent[j].Sub(sent[i]) < time.Minute; j++ {
			n++
		}
		if n > 120 {
			t.Fatalf("%d sends in the minute from %s, want at most 120", n, sent[i])
		}
	}
}

func TestSendLimiterKeepsReserveForHeartbeats(t *testing.T) {
	t.Parallel()
	l := newSendLimiter(120, time.Minute)
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	l.last = clock

	for l.take(false) == 0 {
	}
	if wait := l.take(true); wait != 0 {
		t.Errorf("heartbeat must wait %s after other sends used their share, want 0", wait)
	}
}
