package tool

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/fake/stripe"
)

// BenchmarkToolCallOverhead makes the same Stripe search directly with
// net/http and as a tool call, alternating the two in one loop against a
// local upstream over kept-alive connections, and reports the latency the
// tool layer adds at p50 and p99 (difference of the two distributions'
// percentiles).
func BenchmarkToolCallOverhead(b *testing.B) {
	s := stripe.NewServer(&stripe.Options{Key: canaryKey})
	defer s.Close()
	tl := compileAt(b, invoicesTool, s.URL)
	src := sources{"f/test/key": credFor(s.URL, nil)}
	ex := NewExecutor(nil)
	args := json.RawMessage(`{"email":"billing@acme.example"}`)

	q := url.Values{"query": {"customer_email:'billing@acme.example'"}}
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	directURL := s.URL + "/v1/invoices/search?" + q.Encode()
	ctx := context.Background()

	var directTimes, toolTimes []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := directCall(ctx, direct, directURL); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if res := ex.Call(ctx, tl, src, args); res.IsError {
			b.Fatal(res.Err)
		}
		directTimes = append(directTimes, mid.Sub(start))
		toolTimes = append(toolTimes, time.Since(mid))
	}
	reportOverhead(b, directTimes, toolTimes)
}

func directCall(ctx context.Context, c *http.Client, rawURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+canaryKey)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

// reportOverhead reports the p50 and p99 of both series and the latency
// added at each.
func reportOverhead(b *testing.B, base, with []time.Duration) {
	b.Helper()
	bp50, bp99 := percentiles(base)
	wp50, wp99 := percentiles(with)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(bp50), "direct-p50-µs")
	b.ReportMetric(us(bp99), "direct-p99-µs")
	b.ReportMetric(us(wp50), "keyhole-p50-µs")
	b.ReportMetric(us(wp99), "keyhole-p99-µs")
	b.ReportMetric(us(wp50-bp50), "added-p50-µs")
	b.ReportMetric(us(wp99-bp99), "added-p99-µs")
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0, 0
	}
	return s[len(s)*50/100], s[min(len(s)*99/100, len(s)-1)]
}
