package discord_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/trigger/discord"
)

func TestMentionReachesHandlerAndReplyIsPosted(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	b.waitReady(t)

	// Identify carried the token (the fake checks it) and the intents.
	id := b.srv.LastIdentify()
	if want := int(discord.DefaultIntents); id.Intents != want {
		t.Errorf("identify intents = %d, want %d", id.Intents, want)
	}
	if id.Properties["browser"] != "keyhole" || id.Properties["os"] == "" {
		t.Errorf("identify properties = %v", id.Properties)
	}
	b.waitStats(t, "two heartbeats", func(s fakediscord.Stats) bool { return s.Heartbeats >= 2 })

	seq := b.mention(t, "ping")
	m := b.receive(t)
	if m.Text != "ping" || m.Author.ID == "" || m.ChannelID == "" {
		t.Errorf("message = %+v, want text ping with author and channel", m)
	}

	if err := b.client.Reply(b.ctx, m, "pong"); err != nil {
		t.Fatalf("Reply: %v", err)
	}
	posts := b.srv.Posts()
	if len(posts) != 1 || posts[0].Content != "pong" || posts[0].ReplyTo != m.ID ||
		posts[0].ChannelID != m.ChannelID {
		t.Fatalf("posts = %+v, want one reply pong to %s", posts, m.ID)
	}

	st := b.client.Status()
	session, _ := b.srv.Session()
	if st.SessionID != session || st.Sequence != seq || st.BotUserID != b.srv.BotUserID() ||
		st.LastEvent.IsZero() || st.Delivered != 1 {
		t.Errorf("status = %+v, want session %s at seq %d with one delivery", st, session, seq)
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{config: func(c *discord.Config) {
		c.Filter = discord.Filter{Mention: true, Prefix: "!", Channels: []string{"11", "12"}}
	}})
	b.waitReady(t)
	bot := "<@" + b.srv.BotUserID() + ">"

	send := []fakediscord.Message{
		{ChannelID: "11", Content: bot + " not from a bot", AuthorBot: true},
		{ChannelID: "11", Content: bot + " from itself", AuthorID: b.srv.BotUserID()},
		{ChannelID: "99", Content: bot + " other channel"},
		{ChannelID: "11", Content: "no mention, no prefix"},
		{ChannelID: "11", Content: "<@!" + b.srv.BotUserID()[1:] + "> someone else"},
		{ChannelID: "11", Content: bot + " did Acme pay?"},
		{ChannelID: "12", Content: "!invoices acme"},
		{ChannelID: "11", Content: "<@!" + b.srv.BotUserID() + ">   nickname form"},
		{ChannelID: "12", Content: "direct message", DM: true},
	}
	for _, m := range send {
		if _, err := b.srv.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}

	var got []string
	for range 4 {
		got = append(got, b.receive(t).Text)
	}
	want := []string{"did Acme pay?", "invoices acme", "nickname form", "direct message"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("selected texts (-want +got):\n%s", diff)
	}
}

func TestReconnectOp7ResumesSameSession(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	b.waitReady(t)
	b.mention(t, "one")
	b.receive(t)
	session, seq := b.srv.Session()

	if err := b.srv.Reconnect(); err != nil {
		t.Fatal(err)
	}
	b.waitStats(t, "resume", func(s fakediscord.Stats) bool { return s.Resumes == 1 })

	want := fakediscord.Resume{SessionID: session, Seq: seq, Path: "/resume"}
	if diff := cmp.Diff(want, b.srv.LastResume()); diff != "" {
		t.Errorf("resume (-want +got):\n%s", diff)
	}
	b.waitClient(t, "resumed", func(s discord.Status) bool { return s.Resumes == 1 && s.Connected })
	b.mention(t, "two")
	if m := b.receive(t); m.Text != "two" {
		t.Errorf("after resume got %q, want two", m.Text)
	}
	if st := b.srv.Stats(); st.Identifies != 1 {
		t.Errorf("identifies = %d, want 1 (resume, not a new session)", st.Identifies)
	}
}

func TestInvalidSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resumable      bool
		wantIdentifies int
		wantResumes    int
		minPause       time.Duration
	}{
		{resumable: true, wantIdentifies: 1, wantResumes: 1},
		{resumable: false, wantIdentifies: 2, wantResumes: 0, minPause: time.Second},
	}
	for _, tc := range tests {
		name := map[bool]string{true: "resumable", false: "not resumable"}[tc.resumable]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{})
			b.waitReady(t)

			start := time.Now()
			if err := b.srv.InvalidateSession(tc.resumable); err != nil {
				t.Fatal(err)
			}
			b.waitStats(t, "new session", func(s fakediscord.Stats) bool {
				return s.Identifies == tc.wantIdentifies && s.Resumes == tc.wantResumes
			})
			if elapsed := time.Since(start); elapsed < tc.minPause {
				t.Errorf("reconnected after %s, want a pause of at least %s", elapsed, tc.minPause)
			}

			b.waitClient(t, "connected", func(s discord.Status) bool { return s.Connected })
			b.mention(t, "still here")
			if m := b.receive(t); m.Text != "still here" {
				t.Errorf("got %q", m.Text)
			}
		})
	}
}

func TestMissedHeartbeatACKResumes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{fake: fakediscord.Options{HeartbeatInterval: 100 * time.Millisecond}})
	b.waitReady(t)
	session, _ := b.srv.Session()

	b.srv.SetHeartbeatAcks(false)
	b.waitStats(t, "reconnect", func(s fakediscord.Stats) bool { return s.Connections == 2 })
	b.srv.SetHeartbeatAcks(true)
	b.waitStats(t, "resume", func(s fakediscord.Stats) bool { return s.Resumes >= 1 })

	if got := b.srv.LastResume().SessionID; got != session {
		t.Errorf("resumed session %q, want %q", got, session)
	}
	if st := b.client.Status(); !strings.Contains(st.LastError, "heartbeat ACK missed") {
		t.Errorf("last error = %q, want it to name the missed ACK", st.LastError)
	}
}

func TestDroppedConnectionResumesAndReplaysMissedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{config: func(c *discord.Config) {
		c.Backoff.Min = 200 * time.Millisecond // time to queue an event while down
	}})
	b.waitReady(t)

	if err := b.srv.Drop(); err != nil {
		t.Fatal(err)
	}
	b.mention(t, "sent while down")
	b.waitStats(t, "replay", func(s fakediscord.Stats) bool {
		return s.Resumes == 1 && s.Replayed >= 1
	})
	if m := b.receive(t); m.Text != "sent while down" {
		t.Errorf("got %q, want the replayed message", m.Text)
	}
}

func TestCloseCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code           int
		wantResumes    int
		wantIdentifies int
	}{
		{code: 4000, wantResumes: 1, wantIdentifies: 1}, // unknown error: resume
		{code: 1001, wantResumes: 1, wantIdentifies: 1}, // going away: resume
		{code: 4009, wantResumes: 0, wantIdentifies: 2}, // session timed out: identify
		{code: 4007, wantResumes: 0, wantIdentifies: 2}, // invalid seq: identify
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{})
			b.waitReady(t)
			if err := b.srv.CloseWith(tc.code, "test close"); err != nil {
				t.Fatal(err)
			}
			b.waitStats(t, "reconnect", func(s fakediscord.Stats) bool {
				return s.Resumes == tc.wantResumes && s.Identifies == tc.wantIdentifies
			})
		})
	}
}

func TestFatalCloseStopsWithoutReconnecting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fake     fakediscord.Options
		close    int // sent after READY when not zero
		wantCode int
		wantText string
	}{
		{name: "wrong token", fake: fakediscord.Options{Token: "some-other-token"},
			wantCode: 4004, wantText: "store a new token"},
		{name: "disallowed intent", wantCode: 4014, wantText: "Message Content intent",
			fake: fakediscord.Options{DisallowedIntents: fakediscord.IntentMessageContent}},
		{name: "sharding required", close: 4011, wantCode: 4011, wantText: "sharding required"},
		{name: "invalid API version", close: 4012, wantCode: 4012, wantText: "v10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOptions{fake: tc.fake})
			if tc.close != 0 {
				b.waitReady(t)
				b.srv.CloseWith(tc.close, "closed by test")
			}

			err := b.runErr(t)
			var ce *discord.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.wantCode {
				t.Fatalf("Run error = %v, want a CloseError with code %d", err, tc.wantCode)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
			noCanary(t, "error", err.Error())

			// No reconnect storm: the one connection, and no more later.
			time.Sleep(300 * time.Millisecond)
			if n := b.srv.Stats().Connections; n != 1 {
				t.Errorf("connections = %d, want 1", n)
			}
			if st := b.client.Status(); st.State != discord.StateStopped {
				t.Errorf("state = %s, want stopped", st.State)
			}
		})
	}
}

func TestGarbageFramesAreIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	b.waitReady(t)

	garbage := []string{
		"not json at all",
		`{"op":0,"t":"MESSAGE_CREATE","s":`,
		`{"op":0,"t":"MESSAGE_CREATE","d":"a string, not a message"}`,
		`{"op":0,"t":"MESSAGE_CREATE","d":{"id":12,"author":[]}}`,
		`{"op":42,"d":null}`,
		`[]`,
	}
	for _, g := range garbage {
		if err := b.srv.SendRaw(g); err != nil {
			t.Fatal(err)
		}
	}
	b.mention(t, "after the garbage")
	if m := b.receive(t); m.Text != "after the garbage" {
		t.Errorf("got %q", m.Text)
	}
	st := b.client.Status()
	if st.BadFrames < 3 {
		t.Errorf("bad frames = %d, want at least 3 counted", st.BadFrames)
	}
	if n := b.srv.Stats().Connections; n != 1 {
		t.Errorf("connections = %d, want 1: garbage must not cost the session", n)
	}
}

func TestSendsStayWithinRateLimit(t *testing.T) {
	t.Parallel()
	const limit, window = 10, time.Second
	b := setup(t, setupOptions{
		fake: fakediscord.Options{SendLimit: limit, SendWindow: window},
		config: func(c *discord.Config) {
			c.SendLimit, c.SendWindow = limit, window
		},
	})
	b.waitReady(t)

	// The gateway asks for heartbeats far faster than the limit allows.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if err := b.srv.RequestHeartbeat(); err != nil {
			t.Fatalf("RequestHeartbeat: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}

	frames := b.srv.Frames()
	for i := range frames {
		n := 0
		for j := i; j < len(frames) && frames[j].At.Sub(frames[i].At) < window; j++ {
			n++
		}
		if n > limit {
			t.Fatalf("%d frames in the %s from frame %d, want at most %d", n, window, i, limit)
		}
	}
	if st := b.srv.Stats(); st.Heartbeats < limit || st.Connections != 1 {
		t.Errorf("stats = %+v, want heartbeats answered on one connection", st)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, discord.Message) error { return nil }
	tests := []struct {
		name string
		cfg  discord.Config
		want string
	}{
		{"no token", discord.Config{Handler: ok}, "bot token is required"},
		{"no handler", discord.Config{Token: canaryToken}, "handler is required"},
		{"bad gateway", discord.Config{Token: canaryToken, Handler: ok,
			GatewayURL: "http://example.test"}, "scheme must be ws or wss"},
		{"bad api base", discord.Config{Token: canaryToken, Handler: ok,
			APIBase: "discord.com"}, "api_base"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := discord.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want it to say %q", err, tc.want)
			}
			noCanary(t, "error", err.Error())
		})
	}
}

func TestTokenEchoedByGatewayIsRedacted(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{})
	b.waitReady(t)

	// A misbehaving proxy puts the token in its close reason.
	b.srv.CloseWith(4004, "bad "+canaryToken)
	err := b.runErr(t)
	if err == nil {
		t.Fatal("Run returned nil, want the 4004 CloseError")
	}
	noCanary(t, "error", err.Error())
	noCanary(t, "logs", b.logs.String())
}
