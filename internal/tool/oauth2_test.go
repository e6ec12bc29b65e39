package tool

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCallOAuth2ClientCredentials(t *testing.T) {
	t.Parallel()
	var issued atomic.Int32
	var mu sync.Mutex
	current := ""
	tokens := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if id != "client-1" || secret != canaryKey || r.PostFormValue("grant_type") != "client_credentials" ||
			r.PostFormValue("scope") != "read write" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","secret":"`+secret+`"}`)
			return
		}
		mu.Lock()
		current = fmt.Sprintf("tok-%d-%s", issued.Add(1), "abcdefgh")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":3600}`, current)
		mu.Unlock()
	})
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+current
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"echo":%q}`, r.Header.Get("Authorization"))
	})

	fields := map[string]any{"tokenURL": tokens.URL + "/token", "clientId": "client-1",
		"clientSecret": canaryKey, "scopes": []any{"read", "write"}}
	cred := credFor(api.URL, fields)
	cred.AllowedHosts = append(cred.AllowedHosts, strings.TrimPrefix(tokens.URL, "http://"))
	src := sources{"f/test/key": cred}
	tl := compileAt(t, "kind: tool\nname: t\nhttp: {url: BASE/x, auth: {resource: f/test/key, oauth2: {}}}\n",
		api.URL)
	ex := NewExecutor(nil)
	run := func() *Result {
		return ex.Call(t.Context(), tl, src, []byte(`{}`))
	}

	for range 3 {
		if res := run(); res.IsError {
			t.Fatalf("call: %v", res.Err)
		} else if !strings.Contains(string(res.Content), "[REDACTED]") {
			t.Errorf("the token echoed back was not redacted: %s", res.Content)
		}
	}
	if n := issued.Load(); n != 1 {
		t.Errorf("issued %d tokens for three calls, want 1 (cached)", n)
	}

	mu.Lock()
	current = "revoked"
	mu.Unlock()
	if res := run(); res.IsError {
		t.Fatalf("call after revocation: %v", res.Err)
	}
	if n := issued.Load(); n != 2 {
		t.Errorf("issued %d tokens, want a second after the 401", n)
	}

	fields["clientSecret"] = canaryKey + "-rotated"
	res := run()
	if !errors.Is(res.Err, ErrCredential) || !strings.Contains(res.Err.Error(), "401") {
		t.Errorf("bad client secret: %v", res.Err)
	}
	assertClean(t, res)

	cred.AllowedHosts = cred.AllowedHosts[:1]
	fields["clientSecret"] = "another-secret-value"
	if res := run(); !errors.Is(res.Err, ErrHostNotAllowed) {
		t.Errorf("token URL outside allowed hosts: %v", res.Err)
	}
}
