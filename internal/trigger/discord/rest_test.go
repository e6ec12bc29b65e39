package discord_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/trigger/discord"
)

func restSetup(t *testing.T, opts fakediscord.Options, token string) (*fakediscord.Server,
	*discord.REST, context.Context) {
	t.Helper()
	opts.Token = canaryToken
	srv := fakediscord.NewServer(opts)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return srv, discord.NewREST(discord.Token(token), discord.RESTOptions{APIBase: srv.APIBase()}), ctx
}

func TestReplyWithWrongTokenIsUnauthorized(t *testing.T) {
	t.Parallel()
	srv, rest, ctx := restSetup(t, fakediscord.Options{}, "wrong-token-keyhole-canary-token")
	_, err := rest.Reply(ctx, "200", "300", "hello")
	if !errors.Is(err, discord.ErrUnauthorized) {
		t.Fatalf("Reply error = %v, want ErrUnauthorized", err)
	}
	noCanary(t, "error", err.Error())
	if st := srv.Stats(); st.Unauthorized != 1 || st.Posts != 0 {
		t.Errorf("stats = %+v, want one 401 and no post", st)
	}
}

func TestReplyWaitsOut429(t *testing.T) {
	t.Parallel()
	srv, rest, ctx := restSetup(t, fakediscord.Options{}, canaryToken)
	srv.RateLimitPosts(2, 150*time.Millisecond)

	start := time.Now()
	ids, err := rest.Reply(ctx, "200", "300", "after the limit")
	if err != nil {
		t.Fatalf("Reply: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("posted after %s, want the two retry_after waits honoured", elapsed)
	}
	if st := srv.Stats(); len(ids) != 1 || st.Posts != 1 || st.RateLimited != 2 {
		t.Errorf("ids %v, stats %+v: want one post after two 429s", ids, st)
	}
}

func TestReplyGivesUpOnLongRetryAfter(t *testing.T) {
	t.Parallel()
	srv, _, ctx := restSetup(t, fakediscord.Options{}, canaryToken)
	rest := discord.NewREST(canaryToken, discord.RESTOptions{APIBase: srv.APIBase(),
		MaxRetryWait: 100 * time.Millisecond})
	srv.RateLimitPosts(1, 10*time.Second)

	_, err := rest.Send(ctx, "200", "hello")
	var apiErr *discord.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.RetryAfter < 9 {
		t.Fatalf("Send error = %v, want a 429 APIError with retry_after", err)
	}
}

func TestRateLimitHeadersAreHonoured(t *testing.T) {
	t.Parallel()
	srv, rest, ctx := restSetup(t, fakediscord.Options{PostLimit: 2,
		PostWindow: 200 * time.Millisecond}, canaryToken)
	for range 6 {
		if _, err := rest.Send(ctx, "200", "tick"); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if st := srv.Stats(); st.Posts != 6 || st.RateLimited != 0 {
		t.Errorf("stats = %+v, want six posts and no 429: the headers say when to wait", st)
	}
}

func TestLongReplyIsSplit(t *testing.T) {
	t.Parallel()
	srv, rest, ctx := restSetup(t, fakediscord.Options{PostLimit: 10}, canaryToken)
	text := strings.Repeat("Acme paid invoice in_123 on time.\n", 130) // ~4400 chars

	ids, err := rest.Reply(ctx, "200", "300", text)
	if err != nil {
		t.Fatalf("Reply: %v", err)
	}
	posts := srv.Posts()
	if len(ids) != 3 || len(posts) != 3 {
		t.Fatalf("got %d ids and %d posts, want 3", len(ids), len(posts))
	}
	for i, p := range posts {
		if len([]rune(p.Content)) > discord.MaxMessageLength {
			t.Errorf("part %d has %d characters", i, len([]rune(p.Content)))
		}
		wantReply := map[bool]string{true: "300", false: ""}[i == 0]
		if p.ReplyTo != wantReply {
			t.Errorf("part %d replies to %q, want %q", i, p.ReplyTo, wantReply)
		}
		var body struct {
			AllowedMentions struct{ Parse []string } `json:"allowed_mentions"`
		}
		if err := json.Unmarshal(p.Body, &body); err != nil || body.AllowedMentions.Parse == nil {
			t.Errorf("part %d: allowed_mentions.parse missing: %s", i, p.Body)
		}
	}
}

func TestReplyRejectsBadIDs(t *testing.T) {
	t.Parallel()
	srv, rest, ctx := restSetup(t, fakediscord.Options{}, canaryToken)
	for _, channel := range []string{"", "../../users/@me", "12a"} {
		if _, err := rest.Send(ctx, channel, "x"); err == nil {
			t.Errorf("Send to channel %q succeeded", channel)
		}
	}
	if _, err := rest.Send(ctx, "200", "   "); err == nil {
		t.Error("Send of blank text succeeded")
	}
	if n := srv.Stats().Posts; n != 0 {
		t.Errorf("posts = %d, want 0", n)
	}
}
