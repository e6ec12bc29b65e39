package tool

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/latency"
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
	latency.ReportOverhead(b, directTimes, toolTimes)
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
