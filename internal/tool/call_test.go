package tool

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/fake/stripe"
)

// canaryKey is the secret every test credential holds; no output may
// contain it.
const canaryKey = "sk_test_CANARY_d5f0a1b2c3e4f5a6b7c8d9e0"

// sources maps resource paths to credentials.
type sources map[string]*Credential

func (s sources) Credential(_ context.Context, path string) (*Credential, error) {
	c, ok := s[path]
	if !ok {
		return nil, fmt.Errorf("no grant for %s", path)
	}
	return c, nil
}

// credFor returns a credential whose allowed hosts name the host of rawURL.
func credFor(rawURL string, fields map[string]any) *Credential {
	u, _ := url.Parse(rawURL)
	if fields == nil {
		fields = map[string]any{"apiKey": canaryKey}
	}
	return &Credential{Path: "f/test/key", Type: "test", Fields: fields,
		SecretFields: []string{"apiKey", "password", "clientSecret"},
		AllowedHosts: []string{u.Host}}
}

// recorder is an upstream that records each request and answers with
// respond, or with {"ok":true}.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
	respond  http.HandlerFunc
}

type recorded struct {
	Method, Path, RawQuery, Body string
	Query                        url.Values
	Header                       http.Header
}

func newRecorder(t *testing.T, respond http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.requests = append(r.requests, recorded{Method: req.Method, Path: req.URL.EscapedPath(),
		RawQuery: req.URL.RawQuery, Query: req.URL.Query(), Body: string(body),
		Header: req.Header.Clone()})
	r.mu.Unlock()
	if r.respond != nil {
		r.respond(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

func (r *recorder) last(t *testing.T) recorded {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.requests) == 0 {
		t.Fatal("upstream received no request")
	}
	return r.requests[len(r.requests)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

// compileAt compiles a tool whose URL and auth point at base. The document
// uses BASE for the upstream's URL.
func compileAt(t testing.TB, doc, base string) *Tool {
	t.Helper()
	tl, err := Compile(mustDecode(t, strings.ReplaceAll(doc, "BASE", base)))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tl
}

func call(t *testing.T, tl *Tool, src CredentialSource, args string) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return NewExecutor(nil).Call(ctx, tl, src, json.RawMessage(args))
}

// assertClean fails the test if the canary key shows in any form anywhere
// the result carries.
func assertClean(t *testing.T, res *Result) {
	t.Helper()
	text := string(res.Content)
	if res.Err != nil {
		text += res.Err.Error()
	}
	forms := []string{canaryKey, url.QueryEscape(canaryKey),
		base64.StdEncoding.EncodeToString([]byte(canaryKey))[:40]}
	for _, f := range forms {
		if strings.Contains(text, f) {
			t.Errorf("result holds the secret (%q): %s", f, text)
		}
	}
}

const invoicesTool = `kind: tool
name: search_invoices
input:
  type: object
  properties:
    email: {type: string, format: email}
  required: [email]
http:
  url: BASE/v1/invoices/search
  query:
    query: "customer_email:'{{ .email | squote }}'"
  auth: {resource: f/test/key, bearer: apiKey}
  timeout: 5s
output: '[.data[:5][] | {id, status, amount_paid}]'
`

func stripeServer(t *testing.T) (*stripe.Server, sources) {
	t.Helper()
	s := stripe.NewServer(&stripe.Options{Key: canaryKey})
	t.Cleanup(s.Close)
	return s, sources{"f/test/key": credFor(s.URL, nil)}
}

func TestCallAgainstStripe(t *testing.T) {
	t.Parallel()
	s, src := stripeServer(t)
	tl := compileAt(t, invoicesTool, s.URL)

	res := call(t, tl, src, `{"email":"billing@acme.example"}`)
	if res.IsError {
		t.Fatalf("call failed: %v: %s", res.Err, res.Content)
	}
	want := `[{"amount_paid":120000,"id":"in_Acme0001","status":"paid"}]`
	if diff := cmp.Diff(want, string(res.Content)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
	u, _ := url.Parse(s.URL)
	gotMeta := []any{res.Tool, res.Method, res.Host, res.Resources, res.Status}
	wantMeta := []any{"search_invoices", "GET", u.Host, []string{"f/test/key"}, 200}
	if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
		t.Errorf("result metadata (-want +got):\n%s", diff)
	}
	if res.Duration <= 0 || res.Started.IsZero() {
		t.Errorf("Duration %v, Started %v", res.Duration, res.Started)
	}
	assertClean(t, res)
}

func TestCallQuotedSearchInjection(t *testing.T) {
	t.Parallel()
	s, src := stripeServer(t)
	tl := compileAt(t, strings.ReplaceAll(invoicesTool, "format: email", "minLength: 1"), s.URL)

	// Unescaped, this value would end the string and add a clause that
	// matches every paid invoice.
	res := call(t, tl, src, `{"email":"x' OR status:'paid"}`)
	if res.IsError || string(res.Content) != "[]" {
		t.Fatalf("got %v %s, want no invoices", res.Err, res.Content)
	}
	got := s.Requests()[0]
	q, _ := url.ParseQuery(got.RawQuery)
	if want := `customer_email:'x\' OR status:\'paid'`; q.Get("query") != want {
		t.Errorf("query sent = %q, want %q", q.Get("query"), want)
	}

	res = call(t, tl, src, `{"email":"o'brien@obrien.example"}`)
	if !strings.Contains(string(res.Content), "in_OBrien01") {
		t.Errorf("a quote in a real address did not round-trip: %s", res.Content)
	}
}

func TestCallArgumentsFailingSchema(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	src := sources{"f/test/key": credFor(up.URL, nil)}
	tl := compileAt(t, `kind: tool
name: t
input:
  type: object
  properties:
    email: {type: string, format: email}
    limit: {type: integer, maximum: 10}
    pin: {type: string, pattern: "^[0-9]{4}$", x-sensitive: true}
  required: [email]
  additionalProperties: false
http: {url: BASE/x, auth: {resource: f/test/key, bearer: apiKey}}
`, up.URL)
	tests := []struct {
		args  string
		field string
		want  string
	}{
		{`{}`, "/email", `"email": missing required property "email"`},
		{`{"email":"not-an-address"}`, "/email", `"email": 'not-an-address' is not valid email`},
		{`{"email":"a@b.example","limit":50}`, "/limit", `"limit": maximum`},
		{`{"email":"a@b.example","extra":1}`, "", "additional properties 'extra' not allowed"},
		{`{"email":"a@b.example","pin":"secret-pin-value"}`, "/pin", `"pin": fails pattern (value not shown)`},
		{`[1]`, "", "arguments must be a JSON object"},
		{`{"email":`, "", "arguments are not valid JSON"},
	}
	for _, tt := range tests {
		res := call(t, tl, src, tt.args)
		var ae *ArgumentError
		if !res.IsError || !errors.Is(res.Err, ErrInvalidArguments) || !errors.As(res.Err, &ae) {
			t.Errorf("%s: got %v, want an argument error", tt.args, res.Err)
			continue
		}
		if ae.Problems[0].Field != tt.field || !strings.Contains(res.Err.Error(), tt.want) {
			t.Errorf("%s: got %q (field %q), want %q in field %q", tt.args, res.Err,
				ae.Problems[0].Field, tt.want, tt.field)
		}
		if !strings.Contains(string(res.Content), `"problems"`) {
			t.Errorf("%s: content lacks problems: %s", tt.args, res.Content)
		}
		if strings.Contains(string(res.Content), "secret-pin-value") {
			t.Errorf("%s: content shows a sensitive value: %s", tt.args, res.Content)
		}
	}
	if up.count() != 0 {
		t.Errorf("upstream received %d requests for invalid arguments", up.count())
	}
}

const injectionTool = `kind: tool
name: t
input:
  type: object
  properties:
    v: {type: string}
    n: {type: integer}
http:
  method: POST
  url: BASE/v1/items/{{ .v }}/notes
  query: {q: "{{ .v }}", fixed: "1"}
  headers: {X-Note: "{{ .v }}"}
  body: {text: "note: {{ .v }}", raw: "{{ .v }}", count: "{{ .n }}", nested: {list: ["{{ .v }}"]}}
  auth: {resource: f/test/key, bearer: apiKey}
`

func TestCallEscapesEveryValue(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	src := sources{"f/test/key": credFor(up.URL, nil)}
	tl := compileAt(t, injectionTool, up.URL)

	values := []string{`a"b'c`, "../admin", "a?b=c#d", "%00", "x&q=evil", `a\"}`, "a/b", "ü ☃"}
	for _, v := range values {
		args, _ := json.Marshal(map[string]any{"v": v, "n": 7})
		res := call(t, tl, src, string(args))
		if res.IsError {
			t.Errorf("%q: %v", v, res.Err)
			continue
		}
		got := up.last(t)
		if want := "/v1/items/" + url.PathEscape(v) + "/notes"; got.Path != want {
			t.Errorf("%q: path %q, want %q", v, got.Path, want)
		}
		if diff := cmp.Diff(url.Values{"q": {v}, "fixed": {"1"}}, got.Query); diff != "" {
			t.Errorf("%q: query (-want +got):\n%s", v, diff)
		}
		if got.Header.Get("X-Note") != v {
			t.Errorf("%q: header %q", v, got.Header.Get("X-Note"))
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
			t.Fatalf("%q: body %s: %v", v, got.Body, err)
		}
		want := map[string]any{"text": "note: " + v, "raw": v, "count": float64(7),
			"nested": map[string]any{"list": []any{v}}}
		if diff := cmp.Diff(want, body); diff != "" {
			t.Errorf("%q: body (-want +got):\n%s", v, diff)
		}
		if got.Header.Get("Authorization") != "Bearer "+canaryKey {
			t.Errorf("%q: credential not sent", v)
		}
	}
}

func TestCallRefusesUnsafeValues(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	src := sources{"f/test/key": credFor(up.URL, nil)}
	tl := compileAt(t, injectionTool, up.URL)
	tests := []struct{ v, want string }{
		{"..", `".." is not allowed as a URL path segment`},
		{".", `"." is not allowed`},
		{"", "a value in the URL path is empty"},
		{"a\r\nX-Injected: 1", "control character"},
		{"a\x00b", "control character"},
	}
	for _, tt := range tests {
		args, _ := json.Marshal(map[string]any{"v": tt.v})
		res := call(t, tl, src, string(args))
		if !errors.Is(res.Err, ErrUnsafeValue) || !strings.Contains(res.Err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.v, res.Err, tt.want)
		}
	}

	header := compileAt(t, `kind: tool
name: h
input: {type: object, properties: {v: {type: string}}}
http: {url: BASE/x, headers: {X-V: "{{ .v }}"}}
`, up.URL)
	for _, v := range []string{"a\r\nX-Injected: 1", "a\nb", "a\rb"} {
		args, _ := json.Marshal(map[string]any{"v": v})
		res := call(t, header, nil, string(args))
		if !errors.Is(res.Err, ErrUnsafeValue) || !strings.Contains(res.Err.Error(), "http.headers.X-V") {
			t.Errorf("header %q: got %v", v, res.Err)
		}
	}
	if up.count() != 0 {
		t.Errorf("upstream received %d requests for unsafe values", up.count())
	}
}

func TestCallFormEncoding(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	src := sources{"f/test/key": credFor(up.URL, nil)}
	tl := compileAt(t, `kind: tool
name: update_customer
input: {type: object, properties: {id: {type: string}, note: {type: string}, opt: {type: string}}}
http:
  method: POST
  url: BASE/v1/customers/{{ .id }}
  form: {"metadata[note]": "{{ .note }}", description: "{{ .opt }}"}
  auth: {resource: f/test/key, basic: {username: apiKey}}
`, up.URL)
	res := call(t, tl, src, `{"id":"cus_1","note":"a&b=c\r\n%00"}`)
	if res.IsError {
		t.Fatal(res.Err)
	}
	got := up.last(t)
	form, err := url.ParseQuery(got.Body)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(url.Values{"metadata[note]": {"a&b=c\r\n%00"}}, form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
	user, pass, ok := (&http.Request{Header: got.Header}).BasicAuth()
	if !ok || user != canaryKey || pass != "" {
		t.Errorf("basic auth = %q, %q, %v", user, pass, ok)
	}
}

func TestCallAuthKinds(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	fields := map[string]any{"apiKey": canaryKey, "user": "bot", "password": canaryKey + "-pw"}
	src := sources{"f/test/key": credFor(up.URL, fields)}
	tests := []struct {
		auth  string
		check func(r recorded) bool
	}{
		{"{resource: f/test/key, bearer: apiKey}", func(r recorded) bool {
			return r.Header.Get("Authorization") == "Bearer "+canaryKey
		}},
		{"{resource: f/test/key, basic: {username: user, password: password}}", func(r recorded) bool {
			u, p, ok := (&http.Request{Header: r.Header}).BasicAuth()
			return ok && u == "bot" && p == canaryKey+"-pw"
		}},
		{"{resource: f/test/key, header: {name: x-api-key, value: apiKey}}", func(r recorded) bool {
			return r.Header.Get("X-Api-Key") == canaryKey
		}},
		{"{resource: f/test/key, query: {name: key, value: apiKey}}", func(r recorded) bool {
			return r.Query.Get("key") == canaryKey && r.Query.Get("a") == "1"
		}},
	}
	for _, tt := range tests {
		tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x, query: {a: '1'}, auth: "+
			tt.auth+"}\n", up.URL)
		res := call(t, tl, src, `{}`)
		if res.IsError || !tt.check(up.last(t)) {
			t.Errorf("auth %s: %v; upstream saw %+v", tt.auth, res.Err, up.last(t))
		}
	}

	tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x, auth: {resource: f/test/key, bearer: nope}}\n",
		up.URL)
	res := call(t, tl, src, `{}`)
	if !errors.Is(res.Err, ErrCredential) || !strings.Contains(res.Err.Error(), `no field "nope"`) {
		t.Errorf("missing field: got %v", res.Err)
	}
	res = call(t, tl, sources{}, `{}`)
	if !errors.Is(res.Err, ErrCredential) {
		t.Errorf("no grant: got %v", res.Err)
	}
}

func TestCallRefusesHostsOutsideAllowedHosts(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x, auth: {resource: f/test/key, bearer: apiKey}}\n",
		up.URL)
	for _, allowed := range [][]string{{"api.stripe.com"}, {"*.0.0.1"}, {}, {"127.0.0.1:1"}} {
		cred := credFor(up.URL, nil)
		cred.AllowedHosts = allowed
		res := call(t, tl, sources{"f/test/key": cred}, `{}`)
		if !errors.Is(res.Err, ErrHostNotAllowed) {
			t.Errorf("allowed %v: got %v", allowed, res.Err)
		}
		assertClean(t, res)
	}
	if up.count() != 0 {
		t.Errorf("upstream received %d requests", up.count())
	}
}

func TestValidateChecksAllowedHosts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := mustDecode(t, specTool)
	hosts := func(allowed ...string) AllowedHostsFunc {
		return func(_ context.Context, path string) ([]string, error) {
			if path != "f/bot/stripe" {
				return nil, fmt.Errorf("no resource %s", path)
			}
			return allowed, nil
		}
	}
	if _, err := Validate(ctx, d, hosts("api.stripe.com")); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if _, err := Validate(ctx, d, hosts("*.stripe.com")); err != nil {
		t.Errorf("Validate with wildcard: %v", err)
	}
	_, err := Validate(ctx, d, hosts("api.example.com"))
	if !errors.Is(err, ErrHostNotAllowed) || !strings.Contains(err.Error(), "api.stripe.com") {
		t.Errorf("Validate outside allowed hosts: %v", err)
	}
	d.HTTP.Auth.Resource = "f/bot/missing"
	if _, err := Validate(ctx, d, hosts("api.stripe.com")); err == nil ||
		!strings.Contains(err.Error(), "no resource f/bot/missing") {
		t.Errorf("Validate with missing resource: %v", err)
	}
}

func TestCallUpstreamFailures(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	tests := []struct {
		name    string
		respond http.HandlerFunc
		timeout string
		want    error
		message string
	}{
		{"hangs", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}, "300ms", ErrTimeout, "no response from"},
		{"hangs mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"data":[`))
			w.(http.Flusher).Flush()
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}, "300ms", ErrTimeout, "did not arrive in time"},
		{"5 MiB", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`"`))
			w.Write([]byte(strings.Repeat("x", 5<<20)))
			w.Write([]byte(`"`))
		}, "5s", ErrResponseTooLarge, "larger than 1048576 bytes"},
		{"closes mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte(`{"data":[1,2`))
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, "5s", ErrUpstream, "broke off after 12 bytes"},
		{"gzip it cannot inspect", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte("\x1b\x00"))
		}, "5s", ErrUpstream, "br-encoded body"},
		{"not JSON for output", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>"))
		}, "5s", ErrOutput, "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newRecorder(t, tt.respond)
			tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x, timeout: "+tt.timeout+
				", auth: {resource: f/test/key, bearer: apiKey}}\noutput: .data\n", up.URL)
			res := call(t, tl, sources{"f/test/key": credFor(up.URL, nil)}, `{}`)
			if !errors.Is(res.Err, tt.want) || !strings.Contains(res.Err.Error(), tt.message) {
				t.Errorf("got %v, want %v with %q", res.Err, tt.want, tt.message)
			}
			if !json.Valid(res.Content) || !strings.Contains(string(res.Content), `"error"`) {
				t.Errorf("content %s", res.Content)
			}
		})
	}
}

func TestCallRedactsEchoedSecrets(t *testing.T) {
	t.Parallel()
	echo := func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		key := strings.TrimPrefix(auth, "Bearer ")
		w.Header().Set("X-Echo", auth)
		status := 200
		if r.URL.Query().Get("fail") != "" {
			status = 403
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{
			"raw":     key,
			"query":   url.QueryEscape(key),
			"base64":  base64.StdEncoding.EncodeToString([]byte(key)),
			"b64url":  base64.RawURLEncoding.EncodeToString([]byte("x:" + key)),
			"message": "Invalid key " + key + " provided",
		})
	}
	up := newRecorder(t, echo)
	src := sources{"f/test/key": credFor(up.URL, nil)}
	for _, q := range []string{"", "?fail=1"} {
		tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: 'BASE/x"+q+
			"', auth: {resource: f/test/key, bearer: apiKey}}\n", up.URL)
		res := call(t, tl, src, `{}`)
		assertClean(t, res)
		if n := strings.Count(string(res.Content), "[REDACTED]"); n != 5 {
			t.Errorf("%q: %d masks in %s", q, n, res.Content)
		}
		var ue *UpstreamError
		if q != "" && (!errors.As(res.Err, &ue) || ue.Status != 403 || res.Status != 403 ||
			strings.Contains(string(ue.Body), canaryKey)) {
			t.Errorf("%q: error %v", q, res.Err)
		}
	}
}

func TestCallUpstreamErrorCarriesStatusAndBody(t *testing.T) {
	t.Parallel()
	s, src := stripeServer(t)
	src["f/test/key"].Fields["apiKey"] = canaryKey + "_wrong"
	tl := compileAt(t, invoicesTool, s.URL)
	res := call(t, tl, src, `{"email":"billing@acme.example"}`)
	if !res.IsError || res.Status != 401 || !errors.Is(res.Err, ErrUpstream) {
		t.Fatalf("got %d %v", res.Status, res.Err)
	}
	var content struct {
		Error  string
		Status int
		Body   struct {
			Error struct{ Type, Message string }
		}
	}
	if err := json.Unmarshal(res.Content, &content); err != nil {
		t.Fatal(err)
	}
	if content.Status != 401 || content.Body.Error.Type != "invalid_request_error" ||
		!strings.HasPrefix(content.Body.Error.Message, "Invalid API Key provided") {
		t.Errorf("content %s", res.Content)
	}
	assertClean(t, res)
}

func TestCallRedirects(t *testing.T) {
	t.Parallel()
	other := newRecorder(t, nil)
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/stolen", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusFound)
		default:
			io.WriteString(w, `{"at":"`+r.URL.Path+`"}`)
		}
	})
	cred := credFor(up.URL, nil)
	cred.AllowedHosts = append(cred.AllowedHosts, strings.TrimPrefix(other.URL, "http://"))
	src := sources{"f/test/key": cred}

	tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/away, auth: {resource: f/test/key, bearer: apiKey}}\n",
		up.URL)
	res := call(t, tl, src, `{}`)
	if res.Status != http.StatusFound || !errors.Is(res.Err, ErrUpstream) {
		t.Errorf("redirect away: got %d %v", res.Status, res.Err)
	}
	if other.count() != 0 {
		t.Error("the credential followed a redirect to another host")
	}

	tl = compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/here, auth: {resource: f/test/key, bearer: apiKey}}\n",
		up.URL)
	res = call(t, tl, src, `{}`)
	if res.IsError || string(res.Content) != `{"at":"/final"}` {
		t.Errorf("same-origin redirect: %v %s", res.Err, res.Content)
	}
	if up.last(t).Header.Get("Authorization") == "" {
		t.Error("same-origin redirect lost the credential")
	}
}

func TestCallQueryAuthErrorsDoNotLeakURL(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	base := up.URL
	up.Close() // nothing listens any more
	tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x, auth: {resource: f/test/key, query: {name: key, value: apiKey}}}\n",
		base)
	res := call(t, tl, sources{"f/test/key": credFor(base, nil)}, `{}`)
	if !errors.Is(res.Err, ErrUpstream) {
		t.Errorf("got %v", res.Err)
	}
	assertClean(t, res)
}

func TestCallOutputShapes(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data":[{"id":1,"n":12345678901234567890},{"id":2}],"text":"<b>&"}`)
	})
	tests := []struct{ output, want string }{
		{"", `{"data":[{"id":1,"n":12345678901234567890},{"id":2}],"text":"<b>&"}`},
		{".data[].id", `[1,2]`},
		{".data[0].n", `12345678901234567890`},
		{".text", `"<b>&"`},
		{"empty", `null`},
	}
	for _, tt := range tests {
		doc := "kind: tool\nname: t\nhttp: {url: BASE/x}\n"
		if tt.output != "" {
			doc += "output: '" + tt.output + "'\n"
		}
		res := call(t, compileAt(t, doc, up.URL), nil, `{}`)
		if res.IsError || string(res.Content) != tt.want {
			t.Errorf("output %q: got %s %v, want %s", tt.output, res.Content, res.Err, tt.want)
		}
	}
	res := call(t, compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x}\noutput: 'error(\"boom\")'\n",
		up.URL), nil, `{}`)
	if !errors.Is(res.Err, ErrOutput) || !strings.Contains(res.Err.Error(), "boom") {
		t.Errorf("failing output: %v", res.Err)
	}
}

func TestCallOverTLS(t *testing.T) {
	t.Parallel()
	s := stripe.NewTLSServer(&stripe.Options{Key: canaryKey})
	t.Cleanup(s.Close)
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	ex := NewExecutor(&ExecutorOptions{Transport: NewTransport(&TransportOptions{RootCAs: pool})})
	tl := compileAt(t, invoicesTool, s.URL)
	src := sources{"f/test/key": credFor(s.URL, nil)}

	res := ex.Call(t.Context(), tl, src, json.RawMessage(`{"email":"billing@acme.example"}`))
	if res.IsError || !strings.Contains(string(res.Content), "in_Acme0001") {
		t.Fatalf("call over TLS: %v %s", res.Err, res.Content)
	}

	// The default transport does not trust the test certificate.
	res = call(t, tl, src, `{"email":"billing@acme.example"}`)
	if !errors.Is(res.Err, ErrUpstream) || !strings.Contains(res.Err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", res.Err)
	}
}
