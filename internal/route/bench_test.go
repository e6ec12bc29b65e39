package route

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/fake/stripe"
)

// BenchmarkRouteOverhead makes the same Stripe search directly and through
// a route mounted on a local broker, alternating the two in one loop over
// kept-alive connections, and reports the latency the route adds at p50
// and p99 (difference of the two distributions' percentiles). The route
// path includes the extra loopback hop from caller to broker.
func BenchmarkRouteOverhead(b *testing.B) {
	s := stripe.NewServer(&stripe.Options{Key: canaryKey})
	defer s.Close()
	def := decodeRoute(b, exampleRoute(b), s.URL)
	p, err := New(def, sources{"f/bot/stripe": credFor(s.URL)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	broker := httptest.NewServer(http.StripPrefix("/routes/stripe", p))
	defer broker.Close()

	q := "/v1/invoices/search?" + url.Values{"query": {"customer_email:'billing@acme.example'"}}.Encode()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ctx := context.Background()

	var directTimes, routeTimes []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := get(ctx, c, s.URL+q, canaryKey); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := get(ctx, c, broker.URL+"/routes/stripe"+q, ""); err != nil {
			b.Fatal(err)
		}
		directTimes = append(directTimes, mid.Sub(start))
		routeTimes = append(routeTimes, time.Since(mid))
	}
	reportOverhead(b, directTimes, routeTimes)
}

func get(ctx context.Context, c *http.Client, rawURL, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

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
