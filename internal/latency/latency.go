// Package latency summarises per-operation durations that benchmarks
// collect, so keyhole's benchmarks report percentiles the same way.
package latency

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// Percentile returns the p-th percentile (0 to 100) of d, by the nearest
// rank below; zero when d is empty.
func Percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)*p/100, len(s)-1)]
}

// ReportOverhead reports, through b.ReportMetric in microseconds, the p50
// and p99 of a baseline series and of the same operations through keyhole,
// and the latency keyhole adds at each (the difference of the percentiles).
func ReportOverhead(b *testing.B, direct, keyhole []time.Duration) {
	b.Helper()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, p := range []int{50, 99} {
		dp, kp := Percentile(direct, p), Percentile(keyhole, p)
		b.ReportMetric(us(dp), fmtUnit("direct", p))
		b.ReportMetric(us(kp), fmtUnit("keyhole", p))
		b.ReportMetric(us(kp-dp), fmtUnit("added", p))
	}
}

func fmtUnit(series string, p int) string {
	return series + "-p" + strconv.Itoa(p) + "-µs"
}
