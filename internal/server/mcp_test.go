package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
)

// billing sets up the product's story on a running server: the Stripe key
// (the canary) in f/bot/stripe and the example tools, pointed at a local
// Stripe stand-in that refuses any other key.
func billing(t *testing.T, b *bundle) *stripe.Server {
	t.Helper()
	ctx := context.Background()
	fake := stripe.NewServer(&stripe.Options{Key: canary})
	t.Cleanup(fake.Close)
	host := strings.TrimPrefix(fake.URL, "http://")
	_, err := b.admin.SetResource(ctx, "f/bot/stripe", resource.SetRequest{Type: "stripe",
		AllowedHosts: []string{"api.stripe.com", host},
		Value:        json.RawMessage(`{"apiKey": "` + canary + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	files := exampleFiles(t)
	for i := range files {
		files[i].Content = strings.ReplaceAll(files[i].Content, "https://api.stripe.com", fake.URL)
	}
	if _, err := b.admin.Apply(ctx, files, false); err != nil {
		t.Fatal(err)
	}
	return fake
}

// recorder keeps every byte of MCP traffic in both directions.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		body, _ := io.ReadAll(req.Body)
		r.write(body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.write(body)
	for k, v := range resp.Header {
		r.write([]byte(k + ": " + strings.Join(v, ",")))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (r *recorder) write(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(b)
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.next.RoundTrip(r)
}

func mcpSession(t *testing.T, url, token string, rec *recorder) (*mcp.ClientSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: tokenTransport{token, rec}}
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc,
		DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func callText(t *testing.T, s *mcp.ClientSession, name, args string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	var text string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text += tc.Text
		}
	}
	return text, res.IsError
}

func TestMCPBillingEndToEnd(t *testing.T) {
	eachDB(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		fake := billing(t, b)
		tok, err := b.admin.CreateToken(ctx, "bot", []string{"mcp:billing"}, 0)
		if err != nil {
			t.Fatal(err)
		}

		rec := &recorder{}
		s, err := mcpSession(t, b.url+"/mcp/default/billing", tok.Secret, rec)
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.ListTools(ctx, nil)
		if err != nil || len(list.Tools) != 2 {
			t.Fatalf("tools = %v, %v", list, err)
		}

		text, isErr := callText(t, s, "get_customer", `{"email": "billing@acme.example"}`)
		if isErr || !strings.Contains(text, "cus_Acme0001") {
			t.Fatalf("get_customer: %v %s", isErr, text)
		}
		text, isErr = callText(t, s, "search_invoices", `{"email": "billing@acme.example"}`)
		if isErr || !strings.Contains(text, `"paid"`) {
			t.Fatalf("search_invoices: %v %s", isErr, text)
		}

		// Bad arguments and an injection attempt are error results.
		text, isErr = callText(t, s, "search_invoices", `{"email": "not-an-email"}`)
		if !isErr || !strings.Contains(text, "email") {
			t.Errorf("bad email: %v %s", isErr, text)
		}
		text, isErr = callText(t, s, "search_invoices", `{"email": "x' OR status:'paid"}`)
		if !isErr {
			t.Errorf("injection accepted: %s", text)
		}
		// An unknown tool is a protocol error, as MCP says.
		_, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "delete_everything", Arguments: map[string]any{}})
		if err == nil || !strings.Contains(err.Error(), "delete_everything") {
			t.Errorf("unknown tool: %v", err)
		}

		// The fake saw the key only as the bearer credential keyhole sent.
		for _, r := range fake.Requests() {
			if got := r.Header.Get("Authorization"); got != "Bearer "+canary {
				t.Errorf("request to Stripe carried Authorization %q", got)
			}
		}

		if err := waitAudit(b.admin, 4); err != nil {
			t.Fatal(err)
		}
		entries, _ := b.admin.Audit(ctx, client.AuditQuery{Action: "tool.call"})
		assertNoCanary(t, "MCP traffic", rec.bytes())
		raw, _ := json.Marshal(entries)
		assertNoCanary(t, "audit records", raw)
		var sawCall bool
		for _, e := range entries {
			if e.Target == "search_invoices" && e.Actor == "token:bot" && e.Outcome == "ok" &&
				e.Detail["host"] != nil && e.Detail["status"] == float64(200) &&
				e.Detail["toolset"] == "billing" {
				sawCall = true
			}
		}
		if !sawCall {
			t.Errorf("no complete audit record of search_invoices: %+v", entries)
		}
		b.stop()
		assertNoCanary(t, "server logs", b.logs.Bytes())
	})
}

// waitAudit waits until at least n tool calls are in the audit log.
func waitAudit(c *client.Client, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := c.Audit(context.Background(), client.AuditQuery{Action: "tool.call"})
		if err != nil || len(entries) >= n || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMCPRefusesOtherToolsetsAndWorkspaces(t *testing.T) {
	t.Parallel()
	b := start(t, t.TempDir(), "", "")
	ctx := context.Background()
	billing(t, b)
	other, _ := b.admin.CreateToken(ctx, "other", []string{"mcp:support"}, 0)
	if _, err := b.admin.CreateWorkspace(ctx, "acme"); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		url, token string
		status     int
	}{
		"other toolset":   {"/mcp/default/billing", other.Secret, 403},
		"other workspace": {"/mcp/acme/support", other.Secret, 403},
		"no token":        {"/mcp/default/billing", "", 401},
	} {
		status, body := b.raw(t, "POST", tc.url, tc.token,
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
		if status != tc.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: status %d %s, want %d with a JSON error", name, status, body, tc.status)
		}
	}

	// A token revoked mid-session stops working on its next call.
	tok, _ := b.admin.CreateToken(ctx, "bot", []string{"mcp:billing"}, 0)
	s, err := mcpSession(t, b.url+"/mcp/default/billing", tok.Secret, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.admin.RevokeToken(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	_, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "get_customer",
		Arguments: json.RawMessage(`{"email": "billing@acme.example"}`)})
	if err == nil {
		t.Error("a revoked token still calls tools")
	}
}

func TestToolCallAPI(t *testing.T) {
	t.Parallel()
	b := start(t, t.TempDir(), "", "")
	billing(t, b)
	ctx := context.Background()
	res, err := b.admin.CallTool(ctx, "get_customer", json.RawMessage(`{"email": "billing@acme.example"}`))
	if err != nil || res.IsError || !strings.Contains(string(res.Content), "Acme") {
		t.Fatalf("call = %+v, %v", res, err)
	}
	res, err = b.admin.CallTool(ctx, "get_customer", json.RawMessage(`{}`))
	if err != nil || !res.IsError || !strings.Contains(string(res.Content), "email") {
		t.Fatalf("missing argument = %+v, %v", res, err)
	}
	_, err = b.admin.CallTool(ctx, "nope", nil)
	if e := apiError(err); e == nil || e.Status != 404 {
		t.Fatalf("unknown tool: %v", err)
	}
	_, body := b.raw(t, "GET", "/metrics", "", "")
	if !strings.Contains(body, `keyhole_tool_calls_total{outcome="ok",tool="get_customer",workspace="default"} 1`) {
		t.Error("metrics lack the tool call")
	}
	_ = server.ToolCallResult{}
}

// TestAuditMasksSensitiveArguments: a tool call's audit record keeps its
// arguments, except the values of properties marked x-sensitive.
func TestAuditMasksSensitiveArguments(t *testing.T) {
	t.Parallel()
	b := start(t, t.TempDir(), "", "")
	fake := billing(t, b)
	ctx := context.Background()
	doc := "kind: tool\nname: find_with_note\ninput:\n  type: object\n  properties:\n" +
		"    email: {type: string}\n    note: {type: string, x-sensitive: true}\n" +
		"http:\n  url: " + fake.URL + "/v1/customers/search\n" +
		"  query: {query: \"email:'{{ .email | squote }}'\"}\n" +
		"  auth: {resource: f/bot/stripe, bearer: apiKey}\n"
	if _, err := b.admin.Apply(ctx, []server.ApplyFile{{Name: "t.yaml", Content: doc}}, false); err != nil {
		t.Fatal(err)
	}
	const note = "patient-record-7731"
	res, err := b.admin.CallTool(ctx, "find_with_note",
		json.RawMessage(`{"email": "billing@acme.example", "note": "`+note+`"}`))
	if err != nil || res.IsError {
		t.Fatalf("call: %+v %v", res, err)
	}
	if err := waitAudit(b.admin, 1); err != nil {
		t.Fatal(err)
	}
	var found bool
	for deadline := time.Now().Add(5 * time.Second); !found && time.Now().Before(deadline); {
		entries, err := b.admin.Audit(ctx, client.AuditQuery{Action: "tool.call"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			raw, _ := json.Marshal(e)
			if e.Target != "find_with_note" {
				continue
			}
			found = true
			if strings.Contains(string(raw), note) || !strings.Contains(string(raw), "billing@acme.example") {
				t.Errorf("audit record: %s", raw)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !found {
		t.Fatal("no audit record of the call")
	}
}
