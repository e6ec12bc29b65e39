package schedule

import (
	"fmt"
	"time"
)

// Catchup says what happens to ticks missed while keyhole was not running.
type Catchup string

// The catch-up policies.
const (
	// CatchupNone fires no missed tick.
	CatchupNone Catchup = "none"
	// CatchupLatest fires the newest missed tick, unless an on-time tick
	// fires anyway. It is the default.
	CatchupLatest Catchup = "latest"
	// CatchupAll fires every missed tick, oldest first, keeping at most
	// Policy.MaxCatchup of the newest.
	CatchupAll Catchup = "all"
)

// ParseCatchup parses a policy name; "" means CatchupLatest.
func ParseCatchup(s string) (Catchup, error) {
	switch c := Catchup(s); c {
	case "":
		return CatchupLatest, nil
	case CatchupNone, CatchupLatest, CatchupAll:
		return c, nil
	}
	return "", fmt.Errorf("%w: catchup %q: want none, latest or all", ErrInvalid, s)
}

// Policy decides which ticks [Schedule.Due] returns. The zero value is the
// recommended policy: catch up once, a one-minute grace.
type Policy struct {
	// Catchup is the missed-tick policy. Empty means CatchupLatest.
	Catchup Catchup
	// MaxCatchup caps the missed ticks CatchupAll fires. Zero means 10.
	MaxCatchup int
	// Grace is how late a tick may be and still count as on time, which
	// should exceed the scheduler's polling period. Zero means one minute.
	Grace time.Duration
}

// Tick is one due firing of a schedule.
type Tick struct {
	// Time is the scheduled time of the tick, in the schedule's zone. With
	// the trigger's id it names the tick, so a database row per (trigger,
	// tick) makes it fire once across servers.
	Time time.Time
	// CatchUp is true for a tick that was missed and is fired late.
	CatchUp bool
}

// maxScan bounds how many ticks one call inspects, so a per-second schedule
// that was down for a year cannot stall the scheduler.
const maxScan = 100_000

// Due returns the ticks to fire now, oldest first, given the last tick that
// fired (or the trigger's creation time when none has). It also returns how
// many missed ticks the policy skipped; past 100 000 the count is a lower
// bound. Ticks at or before lastFired are never returned.
func (s *Schedule) Due(lastFired, now time.Time, p Policy) ([]Tick, int) {
	p = p.withDefaults()
	cutoff := now.Add(-p.Grace)

	onTime := s.between(laterOf(lastFired, cutoff), now, maxScan)
	if !lastFired.Before(cutoff) {
		return ticks(onTime, false), 0
	}

	keep := 0
	switch {
	case p.Catchup == CatchupAll:
		keep = p.MaxCatchup
	case p.Catchup == CatchupLatest && len(onTime) == 0:
		keep = 1
	}
	missed, skipped := s.newest(lastFired, cutoff, keep)
	return append(ticks(missed, true), ticks(onTime, false)...), skipped
}

func (p Policy) withDefaults() Policy {
	if p.Catchup == "" {
		p.Catchup = CatchupLatest
	}
	if p.MaxCatchup <= 0 {
		p.MaxCatchup = 10
	}
	if p.Grace <= 0 {
		p.Grace = time.Minute
	}
	return p
}

// between returns up to limit ticks t with from < t <= to.
func (s *Schedule) between(from, to time.Time, limit int) []time.Time {
	var out []time.Time
	for t := s.Next(from); !t.IsZero() && !t.After(to) && len(out) < limit; t = s.Next(t) {
		out = append(out, t)
	}
	return out
}

// newest returns the newest keep ticks in (from, to], oldest first, and how
// many other ticks lie in that range. It searches backwards from to in
// windows that grow fourfold, so it reads few ticks however long ago from
// was.
func (s *Schedule) newest(from, to time.Time, keep int) ([]time.Time, int) {
	var window []time.Time
	start, whole := to, to.Sub(from)
	for span := time.Second; start.After(from); span = grow(span, whole) {
		start = laterOf(from, to.Add(-min(span, whole)))
		window = s.between(start, to, maxScan)
		if len(window) >= keep || len(window) == maxScan {
			break
		}
	}

	kept := window[max(0, len(window)-keep):]
	skipped := len(window) - len(kept)
	if start.After(from) {
		skipped += s.count(from, start)
	}
	return kept, skipped
}

// grow quadruples span without overflowing past limit.
func grow(span, limit time.Duration) time.Duration {
	if span > limit/4 {
		return limit
	}
	return span * 4
}

// count returns how many ticks lie in (from, to], at most maxScan.
func (s *Schedule) count(from, to time.Time) int {
	n := 0
	for t := s.Next(from); !t.IsZero() && !t.After(to) && n < maxScan; t = s.Next(t) {
		n++
	}
	return n
}

func ticks(times []time.Time, catchUp bool) []Tick {
	var out []Tick
	for _, t := range times {
		out = append(out, Tick{Time: t, CatchUp: catchUp})
	}
	return out
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
