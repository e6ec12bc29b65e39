package discord_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
)

const token = "fake-test-token"

// dial connects a bare WebSocket to the fake and reads Hello.
func dial(t *testing.T, url string) (*websocket.Conn, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	ws, _, err := websocket.Dial(ctx, url+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if p := readFrame(t, ctx, ws); p.Op != 10 {
		t.Fatalf("first frame op %d, want Hello", p.Op)
	}
	return ws, ctx
}

type frame struct {
	Op int             `json:"op"`
	T  string          `json:"t"`
	S  int64           `json:"s"`
	D  json.RawMessage `json:"d"`
}

func readFrame(t *testing.T, ctx context.Context, ws *websocket.Conn) frame {
	t.Helper()
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return f
}

func send(t *testing.T, ctx context.Context, ws *websocket.Conn, s string) {
	t.Helper()
	if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func identify(tok string, intents int) string {
	return `{"op":2,"d":{"token":"` + tok + `","intents":` + itoa(intents) +
		`,"properties":{"os":"linux","browser":"t","device":"t"}}}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

const allIntents = fakediscord.IntentGuildMessages | fakediscord.IntentDirectMessages |
	fakediscord.IntentMessageContent

func TestCloseCodesForBadPayloads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame string
		want  websocket.StatusCode
	}{
		{"wrong token", identify("nope", allIntents), 4004},
		{"missing intent", identify(token, fakediscord.IntentGuildMessages), 4013},
		{"not json", "hello", 4002},
		{"unknown opcode", `{"op":99,"d":null}`, 4001},
		{"presence before identify", `{"op":3,"d":{}}`, 4003},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := fakediscord.NewServer(fakediscord.Options{Token: token})
			t.Cleanup(srv.Close)
			ws, ctx := dial(t, srv.GatewayURL())
			send(t, ctx, ws, tc.frame)
			_, _, err := ws.Read(ctx)
			if got := websocket.CloseStatus(err); got != tc.want {
				t.Errorf("close code %d (%v), want %d", got, err, tc.want)
			}
		})
	}
}

func TestReadyThenResumeReplays(t *testing.T) {
	t.Parallel()
	srv := fakediscord.NewServer(fakediscord.Options{Token: token})
	t.Cleanup(srv.Close)
	ws, ctx := dial(t, srv.GatewayURL())
	send(t, ctx, ws, identify(token, allIntents))

	ready := readFrame(t, ctx, ws)
	var r struct {
		SessionID string `json:"session_id"`
		ResumeURL string `json:"resume_gateway_url"`
	}
	json.Unmarshal(ready.D, &r)
	if ready.T != "READY" || r.SessionID == "" || r.ResumeURL != srv.ResumeURL() {
		t.Fatalf("READY = %+v %+v", ready, r)
	}

	srv.Drop()
	seq, err := srv.SendMessage(fakediscord.Message{Content: "missed"})
	if err != nil {
		t.Fatal(err)
	}

	ws2, ctx2 := dial(t, r.ResumeURL)
	send(t, ctx2, ws2, `{"op":6,"d":{"token":"`+token+`","session_id":"`+r.SessionID+
		`","seq":`+itoa(int(ready.S))+`}}`)
	replayed := readFrame(t, ctx2, ws2)
	if replayed.T != "MESSAGE_CREATE" || replayed.S != seq ||
		!strings.Contains(string(replayed.D), "missed") {
		t.Errorf("first frame after resume = %+v, want the missed message", replayed)
	}
	if f := readFrame(t, ctx2, ws2); f.T != "RESUMED" {
		t.Errorf("then %+v, want RESUMED", f)
	}

	// A resume of an unknown session is answered with op 9, d=false.
	ws3, ctx3 := dial(t, srv.ResumeURL())
	send(t, ctx3, ws3, `{"op":6,"d":{"token":"`+token+`","session_id":"other","seq":1}}`)
	if f := readFrame(t, ctx3, ws3); f.Op != 9 || string(f.D) != "false" {
		t.Errorf("resume of unknown session got %+v, want op 9 false", f)
	}
}

func TestRESTRefusesWrongToken(t *testing.T) {
	t.Parallel()
	srv := fakediscord.NewServer(fakediscord.Options{Token: token})
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.APIBase()+"/api/v10/channels/1/messages",
		strings.NewReader(`{"content":"hi"}`))
	req.Header.Set("Authorization", "Bot wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || srv.Stats().Unauthorized != 1 {
		t.Errorf("status %d, stats %+v: want 401", resp.StatusCode, srv.Stats())
	}
}
