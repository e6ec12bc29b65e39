package route

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/latency"
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
	latency.ReportOverhead(b, directTimes, routeTimes)
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
