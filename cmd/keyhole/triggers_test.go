package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/client"
	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/testpg"
)

// TestDiscordTriggerMovesWhenItsServerDies runs two keyhole servers on one
// PostgreSQL with a Discord trigger: exactly one holds the gateway
// connection; after that one is killed with SIGKILL, the other connects
// within 15 seconds and answers the next mention.
func TestDiscordTriggerMovesWhenItsServerDies(t *testing.T) {
	t.Parallel()
	dsn := testpg.DSN(t)
	keyURL := newKeyURL()

	const botToken = "bot-token-for-the-failover-test"
	gw := fakediscord.NewServer(fakediscord.Options{Token: botToken,
		HeartbeatInterval: time.Second})
	defer gw.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"content": "pong"}`))
	}))
	defer up.Close()

	var procs []*proc
	var urls []string
	var dirs []string
	for range 2 {
		port, dir := freePort(t), t.TempDir()
		procs = append(procs, startProc(t, "server", "--listen", "127.0.0.1:"+port,
			"--data-dir", dir, "--db", dsn, "--key-url", keyURL, "--workers", "1"))
		urls, dirs = append(urls, "http://127.0.0.1:"+port), append(dirs, dir)
		waitURL(t, urls[len(urls)-1]+"/healthz")
	}
	token, _ := os.ReadFile(filepath.Join(dirs[0], "admin.token"))
	clients := make([]*client.Client, 2)
	for i, u := range urls {
		c, err := client.New(u, strings.TrimSpace(string(token)), nil)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}

	ctx := context.Background()
	gwHost := strings.TrimPrefix(gw.APIBase(), "http://")
	upHost := strings.TrimPrefix(up.URL, "http://")
	set := func(path, typ, hosts, value string) {
		_, err := clients[0].SetResource(ctx, path, resource.SetRequest{Type: typ,
			AllowedHosts: []string{hosts}, Value: json.RawMessage(value)})
		if err != nil {
			t.Fatal(err)
		}
	}
	set("f/bot/discord", "discord", gwHost, `{"botToken": "`+botToken+`"}`)
	set("f/pong", "http_bearer", upHost, `{"token": "pong-token"}`)
	config := "kind: tool\nname: pong\ninput: {type: object}\nhttp:\n  url: " + up.URL +
		"/pong\n  auth: {resource: f/pong, bearer: token}\n---\n" +
		"kind: trigger\nname: bot\ntype: discord\nresource: f/bot/discord\nrun: {tool: pong}\n" +
		"args: '{}'\nreply: true\ngateway_url: " + gw.GatewayURL() + "\napi_base: " + gw.APIBase() + "\n"
	if _, err := clients[0].Apply(ctx, []server.ApplyFile{{Name: "bot.yaml", Content: config}}, false); err != nil {
		t.Fatal(err)
	}

	waitGateway(t, gw, func(s fakediscord.Stats) bool { return s.Identifies == 1 }, 20*time.Second)
	time.Sleep(5 * time.Second) // several polls of both servers
	if n := gw.Stats().Connections; n != 1 {
		t.Fatalf("the gateway saw %d connections from two servers, want 1", n)
	}
	holder := -1
	for i, p := range procs {
		if strings.Contains(p.logs.String(), "trigger: connecting") {
			holder = i
		}
	}
	if holder < 0 {
		t.Fatal("no server logged its connection")
	}
	survivor := 1 - holder

	killed := time.Now()
	procs[holder].cmd.Process.Signal(syscall.SIGKILL)
	waitGateway(t, gw, func(s fakediscord.Stats) bool { return s.Identifies == 2 }, 20*time.Second)
	moved := time.Since(killed)
	t.Logf("the connection moved %s after the SIGKILL", moved.Round(time.Millisecond))
	if moved > 15*time.Second {
		t.Errorf("the connection took %s to move, want under 15s", moved)
	}
	if !strings.Contains(procs[survivor].logs.String(), "trigger: connecting") {
		t.Error("the survivor did not log the connection")
	}

	if _, err := gw.SendMessage(fakediscord.Message{
		Content: "<@" + gw.BotUserID() + "> ping"}); err != nil {
		t.Fatal(err)
	}
	waitGateway(t, gw, func(s fakediscord.Stats) bool { return s.Posts == 1 }, 30*time.Second)
	if p := gw.Posts()[0]; p.Content != "pong" {
		t.Errorf("reply %q, want pong", p.Content)
	}
	var list []server.TriggerInfo
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		list, _ = clients[survivor].Triggers(ctx)
		if len(list) == 1 && list[0].State == "connected" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(list) != 1 || list[0].State != "connected" || list[0].Events != 1 {
		t.Errorf("trigger list on the survivor: %+v", list)
	}
}

func waitGateway(t *testing.T, gw *fakediscord.Server, cond func(fakediscord.Stats) bool,
	max time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), max)
	defer cancel()
	if err := gw.Wait(ctx, cond); err != nil {
		t.Fatalf("gateway: %v (stats %+v)", err, gw.Stats())
	}
}
