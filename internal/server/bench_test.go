package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
)

// BenchmarkMCPToolCall measures tool calls over MCP Streamable HTTP against
// a no-op upstream, next to the same upstream request made directly.
//
//	go test -run '^$' -bench MCPToolCall -benchtime 5s ./internal/server/
func BenchmarkMCPToolCall(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true}`))
	}))
	defer upstream.Close()

	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Get(upstream.URL + "/noop")
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("mcp", func(b *testing.B) { benchMCP(b, upstream.URL) })
}

func benchMCP(b *testing.B, upstream string) {
	bb := startB(b)
	ctx := context.Background()
	host := strings.TrimPrefix(upstream, "http://")
	_, err := bb.admin.SetResource(ctx, "f/noop", resource.SetRequest{Type: "http_bearer",
		AllowedHosts: []string{host}, Value: json.RawMessage(`{"token": "noop-token-123"}`)})
	if err != nil {
		b.Fatal(err)
	}
	doc := "kind: tool\nname: noop\ninput: {type: object}\nhttp:\n  method: GET\n  url: " +
		upstream + "/noop\n  auth: {resource: f/noop, bearer: token}\n---\n" +
		"kind: toolset\nname: bench\ntools: [noop]\n"
	if _, err := bb.admin.Apply(ctx, []server.ApplyFile{{Name: "b.yaml", Content: doc}}, false); err != nil {
		b.Fatal(err)
	}
	tok, err := bb.admin.CreateToken(ctx, "bench", []string{"mcp:bench"}, 0)
	if err != nil {
		b.Fatal(err)
	}

	// Several sessions, as several agents would hold.
	const sessions = 8
	var all []*mcp.ClientSession
	for range sessions {
		c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		hc := &http.Client{Timeout: 30 * time.Second, Transport: tokenTransport{tok.Secret,
			&http.Transport{MaxIdleConnsPerHost: 64}}}
		s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: bb.url + "/mcp/default/bench",
			HTTPClient: hc, DisableStandaloneSSE: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		all = append(all, s)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := all[next.Add(1)%sessions]
		for pb.Next() {
			res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "noop", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				b.Fatal(err, res)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
