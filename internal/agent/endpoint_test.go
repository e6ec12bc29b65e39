package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/tool"
)

// closeTracker is a request body that records being closed.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestHostGuardRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	ep := &endpoint{allowed: []string{"api.anthropic.com"}}
	client := ep.httpClient(http.DefaultTransport)
	body := &closeTracker{Reader: strings.NewReader("{}")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"https://api.example.com/v1/messages", body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Do(req)
	if !errors.Is(err, tool.ErrHostNotAllowed) || !body.closed {
		t.Errorf("want the host refused and the body closed, got %v (closed %v)", err,
			body.closed)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere int
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		elsewhere++
	}))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.RedirectHandler(target.URL+"/v1/messages",
		http.StatusTemporaryRedirect))
	t.Cleanup(srv.Close)

	ep := &endpoint{allowed: []string{strings.TrimPrefix(srv.URL, "http://"),
		strings.TrimPrefix(target.URL, "http://")}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/messages", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ep.httpClient(tool.NewTransport(nil)).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || elsewhere != 0 {
		t.Errorf("status %d, %d requests followed the redirect", resp.StatusCode, elsewhere)
	}
}
