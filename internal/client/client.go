// Package client is a typed client for keyhole's HTTP API. The CLI reaches
// the server only through it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one keyhole server as one token, in one workspace.
type Client struct {
	base      *url.URL
	token     string
	workspace string
	http      *http.Client
}

// Options configures New. The zero value is usable.
type Options struct {
	// Workspace is the workspace to act in; default "default".
	Workspace string
	// HTTPClient makes the requests; default a client with a 60s timeout.
	HTTPClient *http.Client
}

// New returns a client for the server at baseURL, authenticating with token.
func New(baseURL, token string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q must be an http:// or https:// URL "+
			"such as http://127.0.0.1:8080", baseURL)
	}
	c := &Client{base: u, token: token, workspace: opts.Workspace, http: opts.HTTPClient}
	if c.workspace == "" {
		c.workspace = "default"
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 60 * time.Second}
	}
	// An API answer is never a redirect; following one could send a write
	// somewhere the caller did not name.
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	return c, nil
}

// Workspace returns the workspace the client acts in.
func (c *Client) Workspace() string { return c.workspace }

// BaseURL returns the server's address.
func (c *Client) BaseURL() string { return c.base.String() }

// Error is an error answer from the API.
type Error struct {
	Status  int             `json:"-"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// ErrUnreachable wraps failures to reach the server at all.
var ErrUnreachable = errors.New("server unreachable")

// ws returns the API path of the client's workspace joined with parts.
func (c *Client) ws(parts ...string) string {
	return "/api/v1/workspaces/" + c.workspace + strings.Join(parts, "")
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out, when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read %s %s answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful response; an error answer
// becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = strings.TrimSuffix(c.base.EscapedPath(), "/") + escapePath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return nil, fmt.Errorf("%w: cannot reach keyhole at %s (is the server running? "+
				"set KEYHOLE_URL to its address)", ErrUnreachable, c.base)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != nil && env.Error.Message != "" {
		env.Error.Status = resp.StatusCode
		return env.Error
	}
	return &Error{Status: resp.StatusCode, Code: "http_error",
		Message: fmt.Sprintf("server answered %s", resp.Status)}
}

// escapePath keeps the slashes of an API path but escapes everything else
// in each segment.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
