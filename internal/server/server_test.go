package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/sandbox"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) {
	// Job tests run the sandbox, whose init is this very binary.
	if sandbox.IsInit() {
		os.Exit(sandbox.InitMain())
	}
	os.Exit(testpg.Run(m))
}

// canary is a secret that must never appear where it should not.
const canary = "sk_live_CANARY_d41d8cd98f00b204e980"

type bundle struct {
	url   string
	dir   string
	dsn   string
	admin *client.Client
	token string
	logs  *logBuffer
	stop  func()
}

// start runs a real server on a loopback port with its own data directory,
// on SQLite or on the PostgreSQL database dsn.
func start(t *testing.T, dir, dsn string, keyURL string) *bundle {
	t.Helper()
	b, err := tryStart(t, dir, dsn, keyURL)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tryStart(t testing.TB, dir, dsn, keyURL string) (*bundle, error) {
	t.Helper()
	return startConfig(t, server.Config{DataDir: dir, DB: dsn, KeyURL: keyURL})
}

// startConfig runs a real server with cfg on a loopback port.
func startConfig(t testing.TB, cfg server.Config) (*bundle, error) {
	t.Helper()
	dir, dsn := cfg.DataDir, cfg.DB
	logs := &logBuffer{}
	logger := newLogger(logs)
	if _, bench := t.(*testing.B); bench {
		logger = nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ExternalURL == "" {
		cfg.ExternalURL = "http://" + ln.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Logger = logger
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	b := &bundle{url: "http://" + ln.Addr().String(), dir: dir, dsn: dsn, logs: logs}
	stopped := false
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not shut down within 20s")
		}
		srv.Close()
	}
	t.Cleanup(b.stop)

	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	b.token = strings.TrimSpace(string(tok))
	b.admin = b.client(t, b.token)
	waitHealthy(t, b.url)
	return b, nil
}

func (b *bundle) client(t testing.TB, token string) *client.Client {
	t.Helper()
	c, err := client.New(b.url, token, &client.Options{HTTPClient: &http.Client{Timeout: 90 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitHealthy(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server never became healthy")
}

// startB starts a SQLite server for a benchmark, logging nothing.
func startB(b *testing.B) *bundle {
	b.Helper()
	bb, err := tryStart(b, b.TempDir(), "", "")
	if err != nil {
		b.Fatal(err)
	}
	return bb
}

// eachDB runs f against a server on SQLite and one on PostgreSQL.
func eachDB(t *testing.T, f func(t *testing.T, b *bundle)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, start(t, t.TempDir(), "", ""))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, start(t, t.TempDir(), testpg.DSN(t), ""))
	})
}

// raw sends a request and returns the status and body.
func (b *bundle) raw(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, b.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func setStripe(t *testing.T, c *client.Client, path, key string) *resource.Info {
	t.Helper()
	info, err := c.SetResource(context.Background(), path, resource.SetRequest{Type: "stripe",
		Value: json.RawMessage(`{"apiKey": "` + key + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func apiError(err error) *client.Error {
	var e *client.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// secretForms are the encodings of the canary a leak might take.
func secretForms(s string) []string {
	return []string{s, base64.StdEncoding.EncodeToString([]byte(s)),
		base64.RawURLEncoding.EncodeToString([]byte(s))}
}

func assertNoCanary(t *testing.T, where string, data []byte) {
	t.Helper()
	for _, f := range secretForms(canary) {
		if bytes.Contains(data, []byte(f)) {
			t.Errorf("the canary secret appears in %s", where)
		}
	}
}
