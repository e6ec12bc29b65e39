package latency

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[int]time.Duration{50: 51, 99: 100, 0: 1, 100: 100} {
		if got := Percentile(d, p); got != want {
			t.Errorf("Percentile(%d) = %d, want %d", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("Percentile of nothing is not zero")
	}
	if d[0] != 100 {
		t.Error("Percentile sorted its input")
	}
}

func TestUnit(t *testing.T) {
	t.Parallel()
	if got := fmtUnit("added", 99); got != "added-p99-µs" {
		t.Errorf("fmtUnit = %q", got)
	}
}
