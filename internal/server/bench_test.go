package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
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
	b.Run("mcp", func(b *testing.B) { benchMCP(b, upstream.URL, sdkCaller) })
	b.Run("mcp-raw", func(b *testing.B) { benchMCP(b, upstream.URL, rawCaller) })
}

// A caller makes tool calls over one MCP session. The SDK's client spends
// about as much CPU per call as keyhole's server does; rawCaller is a load
// generator that posts pre-encoded JSON-RPC requests over kept-alive
// connections, so that the figure is the server's.
type caller func(b *testing.B, url, token string) func() error

func sdkCaller(b *testing.B, url, token string) func() error {
	ctx := context.Background()
	c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: tokenTransport{token,
		&http.Transport{MaxIdleConnsPerHost: 64}}}
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url,
		HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return func() error {
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "noop", Arguments: map[string]any{}})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %v", res.Content)
		}
		return err
	}
}

func rawCaller(b *testing.B, url, token string) func() error {
	hc := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(session, body string) (*http.Response, error) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		return hc.Do(req)
	}
	resp, err := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{`+
		`"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}`)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	session := resp.Header.Get("Mcp-Session-Id")
	if resp, err = post(session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"noop","arguments":{}}}`
	return func() error {
		resp, err := post(session, call)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || bytes.Contains(body, []byte(`"isError":true`)) {
			return fmt.Errorf("tools/call: %d %s %v", resp.StatusCode, body, err)
		}
		return nil
	}
}

func benchMCP(b *testing.B, upstream string, newCaller caller) {
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
	var calls []func() error
	for range sessions {
		calls = append(calls, newCaller(b, bb.url+"/mcp/default/bench", tok.Secret))
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		call := calls[next.Add(1)%sessions]
		for pb.Next() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkDiscordMessageToJob measures a Discord MESSAGE_CREATE, from the
// moment the gateway is told to send it until its job is inserted in the
// queue (the job's created_at, set in the transaction that queues it): the
// gateway read, the filter, the delivery, the queue check and the insert,
// on SQLite. listed-p50 is until the job API lists the job, polled every
// 100 µs: an upper bound that includes the commit.
//
//	go test -run '^$' -bench DiscordMessageToJob -benchtime 2000x ./internal/server/
func BenchmarkDiscordMessageToJob(b *testing.B) {
	bb := startB(b)
	ctx := context.Background()
	gw := fakediscord.NewServer(fakediscord.Options{Token: "bench-bot-token"})
	defer gw.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	for path, value := range map[string]string{
		"f/bot/discord": `{"botToken": "bench-bot-token"}`, "f/noop": `{"token": "noop"}`,
	} {
		typ, host := "discord", strings.TrimPrefix(gw.APIBase(), "http://")
		if path == "f/noop" {
			typ, host = "http_bearer", strings.TrimPrefix(up.URL, "http://")
		}
		_, err := bb.admin.SetResource(ctx, path, resource.SetRequest{Type: typ,
			AllowedHosts: []string{host}, Value: json.RawMessage(value)})
		if err != nil {
			b.Fatal(err)
		}
	}
	doc := "kind: tool\nname: noop\ninput: {type: object}\nhttp:\n  url: " + up.URL +
		"/noop\n  auth: {resource: f/noop, bearer: token}\n---\n" +
		"kind: trigger\nname: bot\ntype: discord\nresource: f/bot/discord\nrun: {tool: noop}\n" +
		"args: '{}'\nmax_queued: 1000000\ngateway_url: " + gw.GatewayURL() +
		"\napi_base: " + gw.APIBase() + "\n"
	if _, err := bb.admin.Apply(ctx, []server.ApplyFile{{Name: "b.yaml", Content: doc}}, false); err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := gw.Wait(wctx, func(s fakediscord.Stats) bool { return s.Identifies == 1 }); err != nil {
		b.Fatal(err)
	}

	msg := fakediscord.Message{Content: "<@" + gw.BotUserID() + "> ping"}
	lat := make([]time.Duration, 0, b.N)
	seen := make([]time.Duration, 0, b.N) // until the API lists it: an upper bound
	last := ""
	b.ResetTimer()
	for range b.N {
		sent := time.Now()
		if _, err := gw.SendMessage(msg); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; {
			list, err := bb.admin.Jobs(ctx, "", "", 1)
			if err != nil {
				b.Fatal(err)
			}
			if len(list) == 1 && list[0].ID != last {
				last = list[0].ID
				lat = append(lat, list[0].CreatedAt.Sub(sent))
				seen = append(seen, time.Since(sent))
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("no job for the message within 10s")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(seen)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(seen[len(seen)/2].Microseconds()), "listed-p50-µs")
}
