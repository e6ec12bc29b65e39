package route

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/fake/stripe"
	"github.com/keyhole/keyhole/internal/tool"
)

const canaryKey = "sk_test_CANARY_route_7f6e5d4c3b2a1909"

type sources map[string]*tool.Credential

func (s sources) Credential(_ context.Context, path string) (*tool.Credential, error) {
	if c, ok := s[path]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("no grant for %s", path)
}

func credFor(upstream string) *tool.Credential {
	u, _ := url.Parse(upstream)
	return &tool.Credential{Path: "f/bot/stripe", Type: "stripe",
		Fields: map[string]any{"apiKey": canaryKey}, SecretFields: []string{"apiKey"},
		AllowedHosts: []string{u.Host}}
}

func decodeRoute(t testing.TB, doc, upstream string) *tool.Route {
	t.Helper()
	r, err := tool.DecodeRoute([]byte(strings.ReplaceAll(doc, "UPSTREAM", upstream)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mount serves the route at /routes/NAME/ as the broker does and returns
// the broker's base URL and the records of finished requests.
func mount(t testing.TB, def *tool.Route, src tool.CredentialSource) (string, func() []Record) {
	t.Helper()
	var mu sync.Mutex
	var records []Record
	p, err := New(def, src, &Options{OnRequest: func(_ context.Context, r *Record) {
		mu.Lock()
		records = append(records, *r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "/routes/" + def.Name
	broker := httptest.NewServer(http.StripPrefix(prefix, p))
	t.Cleanup(broker.Close)
	return broker.URL + prefix, func() []Record {
		mu.Lock()
		defer mu.Unlock()
		return append([]Record(nil), records...)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, rawURL string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func exampleRoute(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/stripe-billing/stripe-route.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "https://api.stripe.com", "UPSTREAM")
}

func TestRouteToStripe(t *testing.T) {
	t.Parallel()
	s := stripe.NewServer(&stripe.Options{Key: canaryKey})
	t.Cleanup(s.Close)
	base, records := mount(t, decodeRoute(t, exampleRoute(t), s.URL),
		sources{"f/bot/stripe": credFor(s.URL)})

	q := url.Values{"query": {"customer_email:'billing@acme.example'"}}
	resp, body := do(t, "GET", base+"/v1/invoices/search?"+q.Encode(), http.Header{
		"Authorization": {"Bearer sk_test_the_callers_own_guess"},
		"Cookie":        {"session=abc"},
		"X-Api-Key":     {"guess"},
	})
	if resp.StatusCode != 200 || !strings.Contains(body, `"id": "in_Acme0001"`) {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	got := s.Requests()[0]
	if got.Header.Get("Authorization") != "Bearer "+canaryKey || got.Header.Get("Cookie") != "" ||
		got.Header.Get("X-Api-Key") != "" || got.Header.Get("X-Forwarded-For") != "" {
		t.Errorf("upstream saw headers %v", got.Header)
	}
	if got.Path != "/v1/invoices/search" || got.RawQuery != q.Encode() {
		t.Errorf("upstream saw %s?%s", got.Path, got.RawQuery)
	}

	u, _ := url.Parse(s.URL)
	recs := records()
	want := Record{Route: "stripe", Method: "GET", Path: "/v1/invoices/search", Host: u.Host,
		Resources: []string{"f/bot/stripe"}, Status: 200, Bytes: int64(len(body))}
	recs[0].Started, recs[0].Duration = time.Time{}, 0
	if diff := cmp.Diff(want, recs[0]); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

func TestRouteEnforcesAllowAndPaths(t *testing.T) {
	t.Parallel()
	s := stripe.NewServer(&stripe.Options{Key: canaryKey})
	t.Cleanup(s.Close)
	base, records := mount(t, decodeRoute(t, exampleRoute(t), s.URL),
		sources{"f/bot/stripe": credFor(s.URL)})
	tests := []struct {
		method, path string
		status       int
	}{
		{"POST", "/v1/customers/cus_Acme0001", 403},
		{"DELETE", "/v1/customers/cus_Acme0001", 403},
		{"GET", "/v1/charges", 403},
		{"GET", "/v1/customers/cus_Acme0001/sources", 403},
		{"GET", "/v1/customers/%2e%2e/charges", 400},
		{"GET", "/v1/customers/..%2fcharges", 400},
		{"GET", "/v1/customers/a%5cb", 400},
		{"GET", "/v1/customers/a%00b", 400},
		{"GET", "/v1/customers/cus_Acme0001", 200},
	}
	for _, tt := range tests {
		resp, body := do(t, tt.method, base+tt.path, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
		}
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("upstream received %d requests, want only the allowed one", n)
	}
	if recs := records(); recs[0].Err == nil || recs[0].Status != 403 {
		t.Errorf("refusal record %+v", recs[0])
	}
}

// echoKey answers with the credential it received in headers and body, raw
// and encoded.
func echoKey(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if key == "" {
		key = r.Header.Get("X-Api-Key")
	}
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	w.Header().Set("X-Echo", "key="+key)
	w.Header().Set("Location", "https://elsewhere.example/?k="+url.QueryEscape(key))
	fmt.Fprintf(w, "raw:%s b64:%s url:%s", key, base64.StdEncoding.EncodeToString([]byte(key)),
		url.QueryEscape(key))
}

func assertNoKey(t *testing.T, where, s string) {
	t.Helper()
	for _, f := range []string{canaryKey, base64.StdEncoding.EncodeToString([]byte(canaryKey))[:30]} {
		if strings.Contains(s, f) {
			t.Errorf("%s holds the key: %s", where, s)
		}
	}
}

func TestRouteRedactsEchoedSecrets(t *testing.T) {
	t.Parallel()
	for _, auth := range []string{
		"{resource: f/bot/stripe, bearer: apiKey}",
		"{resource: f/bot/stripe, header: {name: x-api-key, value: apiKey}}",
		"{resource: f/bot/stripe, query: {name: key, value: apiKey}}",
	} {
		up := httptest.NewServer(http.HandlerFunc(echoKey))
		t.Cleanup(up.Close)
		def := decodeRoute(t, "kind: route\nname: echo\nupstream: UPSTREAM\nauth: "+auth+"\n", up.URL)
		base, _ := mount(t, def, sources{"f/bot/stripe": credFor(up.URL)})

		resp, body := do(t, "GET", base+"/anything?key=callers-own", http.Header{"X-Api-Key": {"guess"}})
		if resp.StatusCode != 200 || strings.Count(body, "[REDACTED]") != 3 {
			t.Errorf("%s: %d %q", auth, resp.StatusCode, body)
		}
		assertNoKey(t, auth+" body", body)
		var headers strings.Builder
		resp.Header.Write(&headers)
		assertNoKey(t, auth+" headers", headers.String())
		if !strings.Contains(resp.Header.Get("X-Echo"), "[REDACTED]") {
			t.Errorf("%s: X-Echo = %q", auth, resp.Header.Get("X-Echo"))
		}
	}
}

func TestRouteRedactsGzippedResponses(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Errorf("upstream not offered gzip")
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprintf(zw, "token=%s", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		zw.Close()
	}))
	t.Cleanup(up.Close)
	def := decodeRoute(t, "kind: route\nname: gz\nupstream: UPSTREAM\nauth: {resource: f/bot/stripe, bearer: apiKey}\n", up.URL)
	base, _ := mount(t, def, sources{"f/bot/stripe": credFor(up.URL)})

	resp, body := do(t, "GET", base+"/x", http.Header{"Accept-Encoding": {"gzip"}})
	if resp.StatusCode != 200 || body != "token=[REDACTED]" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

func TestRouteRefusesEncodingItCannotRead(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		w.Write([]byte("opaque"))
	}))
	t.Cleanup(up.Close)
	def := decodeRoute(t, "kind: route\nname: br\nupstream: UPSTREAM\nauth: {resource: f/bot/stripe, bearer: apiKey}\n", up.URL)
	base, _ := mount(t, def, sources{"f/bot/stripe": credFor(up.URL)})
	resp, body := do(t, "GET", base+"/x", nil)
	if resp.StatusCode != 502 || !strings.Contains(body, "br-encoded") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

// TestRouteStreamsEvents checks that server-sent events reach the caller as
// the upstream sends them, with a key split across two writes still
// redacted.
func TestRouteStreamsEvents(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Api-Key")
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message_start\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
			return
		}
		fmt.Fprintf(w, "event: delta\ndata: {\"text\":\"%s", key[:10])
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, "%s\"}\n\n", key[10:])
		w.(http.Flusher).Flush()
	}))
	t.Cleanup(up.Close)
	def := decodeRoute(t, `kind: route
name: anthropic
upstream: UPSTREAM
auth: {resource: f/llm, header: {name: x-api-key, value: apiKey}}
allow: [{method: POST, path: /v1/messages}]
`, up.URL)
	cred := credFor(up.URL)
	cred.Path = "f/llm"
	base, _ := mount(t, def, sources{"f/llm": cred})

	req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(`{"stream":true}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)

	first := readEvent(t, rd)
	if first != "event: message_start\ndata: {}\n\n" {
		t.Fatalf("first event %q", first)
	}
	close(release) // the first event arrived while the upstream still held the rest
	second := readEvent(t, rd)
	if second != "event: delta\ndata: {\"text\":\"[REDACTED]\"}\n\n" {
		t.Errorf("second event %q", second)
	}
}

func readEvent(t *testing.T, rd *bufio.Reader) string {
	t.Helper()
	var ev strings.Builder
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v (so far %q)", err, ev.String())
		}
		ev.WriteString(line)
		if line == "\n" {
			return ev.String()
		}
	}
}

func TestRouteFailures(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(echoKey))
	t.Cleanup(up.Close)
	const doc = "kind: route\nname: r\nupstream: UPSTREAM\nauth: {resource: f/bot/stripe, query: {name: key, value: apiKey}}\n"

	// No grant for the resource.
	base, _ := mount(t, decodeRoute(t, doc, up.URL), sources{})
	if resp, body := do(t, "GET", base+"/x", nil); resp.StatusCode != 503 {
		t.Errorf("no credential: %d %s", resp.StatusCode, body)
	}

	// The resource does not allow the upstream's host.
	cred := credFor(up.URL)
	cred.AllowedHosts = []string{"api.stripe.com"}
	base, _ = mount(t, decodeRoute(t, doc, up.URL), sources{"f/bot/stripe": cred})
	resp, body := do(t, "GET", base+"/x", nil)
	if resp.StatusCode != 502 || !strings.Contains(body, "not in the resource's allowed_hosts") {
		t.Errorf("host not allowed: %d %s", resp.StatusCode, body)
	}

	// The upstream is down; the error must not quote the URL with the key.
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	base, records := mount(t, decodeRoute(t, doc, downURL), sources{"f/bot/stripe": credFor(downURL)})
	resp, body = do(t, "GET", base+"/x", nil)
	if resp.StatusCode != 502 || !errors.Is(records()[0].Err, tool.ErrUpstream) {
		t.Errorf("upstream down: %d %s", resp.StatusCode, body)
	}
	assertNoKey(t, "error body", body)
	assertNoKey(t, "record", records()[0].Err.Error())
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hosts := func(allowed ...string) tool.AllowedHostsFunc {
		return func(context.Context, string) ([]string, error) { return allowed, nil }
	}
	def := decodeRoute(t, exampleRoute(t), "https://api.stripe.com")
	if err := Validate(ctx, def, hosts("api.stripe.com")); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := Validate(ctx, def, hosts("api.example.com")); !errors.Is(err, tool.ErrHostNotAllowed) {
		t.Errorf("Validate outside allowed hosts: %v", err)
	}

	tests := []struct{ doc, want string }{
		{"kind: route\nname: r\nupstream: ftp://x.example\nauth: {resource: r, bearer: k}\n",
			"must be an absolute https URL"},
		{"kind: route\nname: r\nupstream: https://x.example/?a=1\nauth: {resource: r, bearer: k}\n",
			"query and fragment are not allowed"},
		{"kind: route\nname: r\nupstream: https://x.example\n", "auth: missing"},
		{"kind: route\nname: r\nupstream: https://x.example\nauth: {resource: r, bearer: k}\nallow: [{path: v1}]\n",
			"allow[0]: path \"v1\" must start with /"},
		{"kind: route\nname: r\nupstream: https://x.example\nauth: {resource: r, bearer: k}\nallow: [{method: FETCH, path: /}]\n",
			`method "FETCH"`},
		{"kind: route\nname: r\nupstream: https://x.example\nauth: {resource: r, bearer: k}\nallow: [{path: '/a/[x'}]\n",
			"syntax error in pattern"},
		{"kind: route\nname: r\nupstream: https://x.example\nauth: {resource: r, bearer: k}\nallow: [{path: '/a/**/b'}]\n",
			"** is allowed only as the last segment"},
	}
	for _, tt := range tests {
		r, err := tool.DecodeRoute([]byte(tt.doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(ctx, r, hosts("x.example")); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%q) = %v, want %q", tt.doc, err, tt.want)
		}
	}
}

func TestAllowRules(t *testing.T) {
	t.Parallel()
	rules, err := compileRules([]tool.AllowRule{
		{Method: "GET", Path: "/v1/customers/*"},
		{Method: "*", Path: "/v1/files/**"},
		{Path: "/v1/exact"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		ok           bool
	}{
		{"GET", "/v1/customers/cus_1", true},
		{"GET", "/v1/customers/search", true},
		{"POST", "/v1/customers/cus_1", false},
		{"GET", "/v1/customers/cus_1/x", false},
		{"GET", "/v1/customers", false},
		{"PUT", "/v1/files", true},
		{"GET", "/v1/files/a/b/c", true},
		{"GET", "/v1/filesystem", false},
		{"DELETE", "/v1/exact", true},
		{"GET", "/v1/exact/more", false},
	}
	for _, tt := range tests {
		if got := allowed(rules, tt.method, tt.path); got != tt.ok {
			t.Errorf("allowed(%s %s) = %v, want %v", tt.method, tt.path, got, tt.ok)
		}
	}
	if !allowed(nil, "PATCH", "/anything") {
		t.Error("no rules should allow everything")
	}
}

func TestRouteOAuth2InvalidatesRefusedToken(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	issued := 0
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		issued++
		fmt.Fprintf(w, `{"access_token":"tok-%d-abcdefgh","expires_in":3600}`, issued)
		mu.Unlock()
	}))
	t.Cleanup(tokens.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := r.Header.Get("Authorization") == fmt.Sprintf("Bearer tok-%d-abcdefgh", issued)
		mu.Unlock()
		if !ok || r.URL.Query().Get("expire") != "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"auth": r.Header.Get("Authorization")})
	}))
	t.Cleanup(api.Close)
	cred := credFor(api.URL)
	cred.Fields = map[string]any{"tokenURL": tokens.URL, "clientId": "c", "clientSecret": canaryKey}
	cred.SecretFields = []string{"clientSecret"}
	cred.AllowedHosts = append(cred.AllowedHosts, strings.TrimPrefix(tokens.URL, "http://"))
	def := decodeRoute(t, "kind: route\nname: o\nupstream: UPSTREAM\nauth: {resource: f/bot/stripe, oauth2: {}}\n", api.URL)
	base, _ := mount(t, def, sources{"f/bot/stripe": cred})

	for _, q := range []string{"", "", "?expire=1", ""} {
		resp, body := do(t, "GET", base+"/x"+q, nil)
		want := 200
		if q != "" {
			want = 401
		}
		if resp.StatusCode != want || (want == 200 && !strings.Contains(body, "[REDACTED]")) {
			t.Errorf("%q: %d %s", q, resp.StatusCode, body)
		}
	}
	if issued != 2 {
		t.Errorf("issued %d tokens, want 2 (cached, then renewed after the 401)", issued)
	}
}

func TestRouteUpstreamClosesMidBody(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial " + r.Header.Get("Authorization")[:12]))
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	t.Cleanup(up.Close)
	def := decodeRoute(t, "kind: route\nname: cut\nupstream: UPSTREAM\nauth: {resource: f/bot/stripe, bearer: apiKey}\n", up.URL)
	base, _ := mount(t, def, sources{"f/bot/stripe": credFor(up.URL)})

	resp, err := client.Get(base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("read %q without error; the caller must see the body broke off", body)
	}
}
