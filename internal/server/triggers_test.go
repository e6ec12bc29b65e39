package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhole/keyhole/internal/client"
	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/testpg"
	"github.com/keyhole/keyhole/internal/trigger/webhook"
)

// botCanary is the Discord bot token: it may reach the gateway's Identify
// and Resume and the REST API's Authorization header, nothing else.
const botCanary = "MTAwMDAwMDAwMDAwMDAwMDAx.CANARY.bot-token-5e6f7a8b"

// fakeDiscord starts a Discord stand-in and stores the bot's token in
// f/bot/discord, allowed to reach it.
func fakeDiscord(t *testing.T, b *bundle) *fakediscord.Server {
	t.Helper()
	srv := fakediscord.NewServer(fakediscord.Options{Token: botCanary,
		HeartbeatInterval: 500 * time.Millisecond})
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.APIBase(), "http://")
	_, err := b.admin.SetResource(context.Background(), "f/bot/discord", resource.SetRequest{
		Type: "discord", AllowedHosts: []string{"discord.com", "gateway.discord.gg", host},
		Value: json.RawMessage(`{"botToken": "` + botCanary + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// discordTrigger is a discord trigger pointed at srv that runs target.
func discordTrigger(srv *fakediscord.Server, name, target, extra string) string {
	return fmt.Sprintf("kind: trigger\nname: %s\ntype: discord\nresource: f/bot/discord\n"+
		"filter: {mention: true}\nrun: {%s}\nreply: true\ngateway_url: %s\napi_base: %s\n%s",
		name, target, srv.GatewayURL(), srv.APIBase(), extra)
}

// pongScript answers a mention with what it reads through the stripe route.
const pongScript = `kind: script
name: pong
command: [python3, main.py]
routes: [stripe]
net: broker
timeout: 30s
files:
  main.py: |
    import json, os, urllib.request
    args = json.load(open("/work/args.json"))
    url = (os.environ["KEYHOLE_BROKER_URL"] + "/routes/stripe/v1/customers/search"
           "?query=email:%27billing@acme.example%27")
    found = json.load(urllib.request.urlopen(url, timeout=10))
    print("pong for %s: %s" % (args["discord"]["author"]["username"], found["data"][0]["name"]))
`

func apply(t *testing.T, b *bundle, docs ...string) {
	t.Helper()
	var files []server.ApplyFile
	for i, d := range docs {
		files = append(files, server.ApplyFile{Name: fmt.Sprintf("doc%d.yaml", i), Content: d})
	}
	if _, err := b.admin.Apply(context.Background(), files, false); err != nil {
		t.Fatal(err)
	}
}

func waitDiscord(t *testing.T, srv *fakediscord.Server, what string,
	cond func(fakediscord.Stats) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v (stats %+v)", what, err, srv.Stats())
	}
}

func mention(t *testing.T, srv *fakediscord.Server, text string) {
	t.Helper()
	if _, err := srv.SendMessage(fakediscord.Message{
		Content: "<@" + srv.BotUserID() + "> " + text}); err != nil {
		t.Fatal(err)
	}
}

// TestDiscordTriggerAnswersAndResumes is the Discord trigger end to end:
// it identifies with the stored token, heartbeats, runs a script for a
// mention that answers through a route, posts the reply, then follows op 7
// by resuming the same session and answers the next mention.
func TestDiscordTriggerAnswersAndResumes(t *testing.T) {
	b := startJobs(t, "", server.Config{})
	billing(t, b)
	srv := fakeDiscord(t, b)
	apply(t, b, pongScript, discordTrigger(srv, "bot", "script: pong", ""))

	waitDiscord(t, srv, "identify", func(s fakediscord.Stats) bool { return s.Identifies == 1 })
	mention(t, srv, "ping")
	waitDiscord(t, srv, "the reply", func(s fakediscord.Stats) bool { return s.Posts == 1 })
	post := srv.Posts()[0]
	if post.Content != "pong for alice: Acme Corp" || post.ReplyTo == "" {
		t.Fatalf("reply: %+v", post)
	}
	waitDiscord(t, srv, "heartbeats", func(s fakediscord.Stats) bool { return s.Heartbeats >= 2 })

	session, seq := srv.Session()
	if err := srv.Reconnect(); err != nil {
		t.Fatal(err)
	}
	waitDiscord(t, srv, "resume", func(s fakediscord.Stats) bool { return s.Resumes == 1 })
	if r := srv.LastResume(); r.SessionID != session || r.Seq != seq {
		t.Errorf("resumed %+v, want session %s seq %d", r, session, seq)
	}
	mention(t, srv, "ping again")
	waitDiscord(t, srv, "the second reply", func(s fakediscord.Stats) bool { return s.Posts == 2 })
	if st := srv.Stats(); st.Identifies != 1 {
		t.Errorf("identified %d times, want once (the rest resumed)", st.Identifies)
	}

	info := waitTrigger(t, b, "bot", "connected")
	if info.Events != 2 || info.Holder == "" || info.LastEventAt == nil {
		t.Errorf("trigger list: %+v", info)
	}
	assertNoBotToken(t, b)
}

// assertNoBotToken checks that the bot token is in no log line, job and
// audit record.
func assertNoBotToken(t *testing.T, b *bundle) {
	t.Helper()
	ctx := context.Background()
	var seen []string
	seen = append(seen, b.logs.String())
	jobs, _ := b.admin.Jobs(ctx, "", "", 100)
	for _, j := range jobs {
		full, _ := b.admin.Job(ctx, j.ID, 0)
		data, _ := json.Marshal(full)
		seen = append(seen, string(data), allLogs(t, b, j.ID))
	}
	entries, _ := b.admin.Audit(ctx, client.AuditQuery{})
	data, _ := json.Marshal(entries)
	seen = append(seen, string(data))
	for _, s := range seen {
		if strings.Contains(s, botCanary) {
			t.Fatalf("the bot token leaked: %.300s", s)
		}
	}
}

// TestDiscordTriggerStopsOnBadToken: a gateway that closes with 4004 stops
// the trigger with the reason, and nothing reconnects.
func TestDiscordTriggerStopsOnBadToken(t *testing.T) {
	b := start(t, t.TempDir(), "", "")
	billing(t, b)
	srv := fakediscord.NewServer(fakediscord.Options{Token: "another-token"})
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.APIBase(), "http://")
	_, err := b.admin.SetResource(context.Background(), "f/bot/discord", resource.SetRequest{
		Type: "discord", AllowedHosts: []string{host},
		Value: json.RawMessage(`{"botToken": "` + botCanary + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, b, discordTrigger(srv, "bot", "tool: get_customer", ""))

	info := waitTrigger(t, b, "bot", "stopped")
	if !strings.Contains(info.LastError, "4004") {
		t.Fatalf("trigger after 4004: %+v", info)
	}
	time.Sleep(5 * time.Second) // two more polls: nothing may reconnect
	if n := srv.Stats().Connections; n != 1 {
		t.Errorf("the gateway saw %d connections after 4004, want 1", n)
	}
	assertNoBotToken(t, b)
}

// TestDiscordFloodIsRefusedAloud: past max_queued, messages wait and are
// then refused with the busy reply; every message is either a job or a
// busy reply.
func TestDiscordFloodIsRefusedAloud(t *testing.T) {
	b := start(t, t.TempDir(), "", "") // no workers: jobs stay queued
	billing(t, b)
	srv := fakeDiscord(t, b)
	apply(t, b, discordTrigger(srv, "bot", "tool: get_customer",
		"max_queued: 2\nbusy_wait: 300ms\nbusy_reply: Busy, ask again in a minute.\n"+
			`args: '{email: "billing@acme.example"}'`+"\n"))
	waitDiscord(t, srv, "identify", func(s fakediscord.Stats) bool { return s.Identifies == 1 })

	for i := range 5 {
		mention(t, srv, fmt.Sprint("question ", i))
	}
	waitDiscord(t, srv, "busy replies", func(s fakediscord.Stats) bool { return s.Posts == 3 })
	for _, p := range srv.Posts() {
		if p.Content != "Busy, ask again in a minute." {
			t.Errorf("post %q, want the busy reply", p.Content)
		}
	}
	jobs, err := b.admin.Jobs(context.Background(), "", "", 100)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("jobs: %d %v, want 2", len(jobs), err)
	}
	if !strings.Contains(b.logs.String(), "message not delivered") {
		t.Error("refused messages were not logged")
	}
}

// TestTriggerApplyRefusesBadDefinitions covers what apply refuses.
func TestTriggerApplyRefusesBadDefinitions(t *testing.T) {
	b := start(t, t.TempDir(), "", "")
	billing(t, b)
	ctx := context.Background()
	_, err := b.admin.SetResource(ctx, "f/hooks/secret", resource.SetRequest{Type: "secret",
		Value: json.RawMessage(`{"value": "whsec_test"}`)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, doc, want string }{
		{"bad cron", "kind: trigger\nname: s\ntype: schedule\ncron: '61 * * * *'\n" +
			"run: {tool: get_customer}\n", "cron"},
		{"bad time zone", "kind: trigger\nname: s\ntype: schedule\ncron: '0 9 * * *'\n" +
			"timezone: Mars/Olympus\nrun: {tool: get_customer}\n", "Mars/Olympus"},
		{"unknown target", "kind: trigger\nname: s\ntype: schedule\ncron: '0 9 * * *'\n" +
			"run: {script: nope}\n", `script "nope" does not exist`},
		{"two targets", "kind: trigger\nname: s\ntype: schedule\ncron: '0 9 * * *'\n" +
			"run: {script: a, tool: b}\n", "exactly one"},
		{"webhook without auth", "kind: trigger\nname: w\ntype: webhook\n" +
			"run: {tool: get_customer}\n", "auth is required"},
		{"webhook secret missing", "kind: trigger\nname: w\ntype: webhook\n" +
			"auth: {type: hmac, resource: f/hooks/none}\nrun: {tool: get_customer}\n",
			"f/hooks/none does not exist"},
		{"discord host not allowed", "kind: trigger\nname: d\ntype: discord\n" +
			"resource: f/bot/stripe\nrun: {tool: get_customer}\n", "not discord"},
		{"websocket scheme", "kind: trigger\nname: ws\ntype: websocket\nurl: http://x\n" +
			"run: {tool: get_customer}\n", "ws:// or wss://"},
		{"field of another type", "kind: trigger\nname: s\ntype: schedule\ncron: '0 9 * * *'\n" +
			"url: wss://x\nrun: {tool: get_customer}\n", "url do not apply"},
		{"unknown field", "kind: trigger\nname: s\ntype: schedule\ncron: '0 9 * * *'\n" +
			"crontab: x\nrun: {tool: get_customer}\n", "crontab"},
	}
	for _, c := range cases {
		_, err := b.admin.Apply(ctx, []server.ApplyFile{{Name: "t.yaml", Content: c.doc}}, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if list, _ := b.admin.Triggers(ctx); len(list) != 0 {
		t.Errorf("refused triggers were stored: %+v", list)
	}
}

// waitTrigger waits until keyhole trigger list shows the trigger in state.
func waitTrigger(t *testing.T, b *bundle, name, state string) server.TriggerInfo {
	t.Helper()
	var last []server.TriggerInfo
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		list, err := b.admin.Triggers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range list {
			if info.Name == name && info.State == state {
				return info
			}
		}
		last = list
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("trigger %s never reached state %s: %+v", name, state, last)
	return server.TriggerInfo{}
}

// triggerJobs lists the jobs a trigger started.
func triggerJobs(t *testing.T, b *bundle) []server.JobInfo {
	t.Helper()
	all, err := b.admin.Jobs(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []server.JobInfo
	for _, j := range all {
		if j.Trigger != "" {
			out = append(out, j)
		}
	}
	return out
}

// hookSecret is a webhook signing secret, kept in a resource.
const hookSecret = "whsec_CANARY_0a1b2c3d4e5f"

func post(t *testing.T, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestWebhooks: a signed delivery starts exactly one job; a missing, bad or
// replayed signature gets 401 and starts none; sync mode answers with the
// job's result.
func TestWebhooks(t *testing.T) {
	b := startJobs(t, "", server.Config{})
	billing(t, b)
	_, err := b.admin.SetResource(context.Background(), "f/hooks/secret", resource.SetRequest{
		Type: "secret", Value: json.RawMessage(`{"value": "` + hookSecret + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	lookup := `args: '{email: .body.customer_email}'` + "\n"
	apply(t, b,
		"kind: trigger\nname: signed\ntype: webhook\nauth: {type: hmac, resource: f/hooks/secret}\n"+
			"run: {tool: get_customer}\n"+lookup,
		"kind: trigger\nname: stripe\ntype: webhook\nauth: {type: stripe, resource: f/hooks/secret}\n"+
			"mode: sync\nrun: {tool: get_customer}\n"+
			`args: '{email: .body.data.object.customer_email}'`+"\n",
		"kind: trigger\nname: token\ntype: webhook\nauth: {type: token, resource: f/hooks/secret}\n"+
			"mode: sync\ntimeout: 20s\nrun: {tool: get_customer}\n"+lookup)
	body := `{"customer_email": "billing@acme.example"}`
	hooks := b.url + "/hooks/default/"

	// Refused deliveries start nothing.
	refused := []struct {
		name, hook string
		header     map[string]string
	}{
		{"no signature", "signed", nil},
		{"wrong signature", "signed", map[string]string{"X-Signature": webhook.SignHMAC([]byte("x"), []byte(body))}},
		{"malformed", "signed", map[string]string{"X-Signature": "md5=abc"}},
		{"stripe replay", "stripe", map[string]string{"Stripe-Signature": webhook.SignStripe(
			[]byte(hookSecret), []byte(body), time.Now().Add(-time.Hour))}},
		{"wrong token", "token", map[string]string{"Authorization": "Bearer nope"}},
	}
	for _, c := range refused {
		status, out := post(t, hooks+c.hook, c.header, body)
		if status != http.StatusUnauthorized || !strings.Contains(out, `"bad_signature"`) {
			t.Errorf("%s: %d %s", c.name, status, out)
		}
	}
	if n := len(triggerJobs(t, b)); n != 0 {
		t.Fatalf("refused deliveries started %d jobs", n)
	}

	status, out := post(t, hooks+"signed",
		map[string]string{"X-Signature": webhook.SignHMAC([]byte(hookSecret), []byte(body))}, body)
	var resp server.HookResponse
	if status != http.StatusAccepted || json.Unmarshal([]byte(out), &resp) != nil || resp.JobID == "" {
		t.Fatalf("signed delivery: %d %s", status, out)
	}
	if n := len(triggerJobs(t, b)); n != 1 {
		t.Fatalf("a signed delivery started %d jobs, want 1", n)
	}

	stripeBody := `{"type": "invoice.paid", "data": {"object": {"customer_email": "billing@acme.example"}}}`
	status, out = post(t, hooks+"stripe", map[string]string{"Stripe-Signature": webhook.SignStripe(
		[]byte(hookSecret), []byte(stripeBody), time.Now())}, stripeBody)
	if status != http.StatusOK || !strings.Contains(out, "cus_Acme0001") {
		t.Fatalf("sync stripe delivery: %d %s", status, out)
	}
	status, out = post(t, hooks+"token", map[string]string{"Authorization": "Bearer " + hookSecret}, body)
	if status != http.StatusOK || !strings.Contains(out, "cus_Acme0001") {
		t.Fatalf("sync token delivery: %d %s", status, out)
	}

	for _, c := range []struct{ path, want string }{
		{"nope", "no webhook trigger"}, {"../signed", `"error"`},
	} {
		if status, out := post(t, hooks+c.path, nil, body); status != http.StatusNotFound &&
			status != http.StatusBadRequest || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %s", c.path, status, out)
		}
	}
	list, _ := b.admin.Triggers(context.Background())
	for _, info := range list {
		if info.Name == "signed" && (info.Events != 1 || info.State != "listening") {
			t.Errorf("signed trigger: %+v", info)
		}
	}
	for _, s := range []string{b.logs.String(), out} {
		if strings.Contains(s, hookSecret) {
			t.Errorf("the webhook secret leaked: %.300s", s)
		}
	}
}

// cluster starts two servers on one PostgreSQL database with one key
// service, as a deployment with several servers runs them.
func cluster(t *testing.T, cfg server.Config) (*bundle, *bundle) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	cfg.DB = testpg.DSN(t)
	cfg.KeyURL = "base64key://" + base64.URLEncoding.EncodeToString(key)
	cfg.DataDir = t.TempDir()
	first, err := startConfig(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The second server shares the first's admin token through the database;
	// give it the token file so the test can reach it the same way.
	cfg.DataDir = t.TempDir()
	tok, _ := os.ReadFile(filepath.Join(first.dir, server.AdminTokenFile))
	if err := os.WriteFile(filepath.Join(cfg.DataDir, server.AdminTokenFile), tok, 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := startConfig(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return first, second
}

// TestScheduleFiresOncePerTickAcrossServers runs a per-second schedule on
// two servers sharing PostgreSQL: every tick queues exactly one job.
func TestScheduleFiresOncePerTickAcrossServers(t *testing.T) {
	b, other := cluster(t, server.Config{})
	billing(t, b)
	apply(t, b, "kind: trigger\nname: every-second\ntype: schedule\ncron: '* * * * * *'\n"+
		"run: {tool: get_customer}\n"+`args: '{email: "billing@acme.example", tick: .tick}'`+"\n")
	time.Sleep(7 * time.Second)
	apply(t, other, "kind: trigger\nname: every-second\ntype: schedule\ncron: '* * * * * *'\n"+
		"disabled: true\nrun: {tool: get_customer}\n")
	time.Sleep(time.Second) // let a tick in flight land

	ticks := map[string]int{}
	var times []time.Time
	for _, j := range triggerJobs(t, b) {
		var args struct{ Tick string }
		json.Unmarshal(j.Args, &args)
		ticks[args.Tick]++
		at, err := time.Parse(time.RFC3339, args.Tick)
		if err != nil {
			t.Fatalf("job %s args %s", j.ID, j.Args)
		}
		times = append(times, at)
	}
	for tick, n := range ticks {
		if n != 1 {
			t.Errorf("tick %s fired %d times", tick, n)
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	if len(times) < 4 {
		t.Fatalf("%d ticks fired in 7 seconds", len(times))
	}
	if span := int(times[len(times)-1].Sub(times[0]) / time.Second); span+1 != len(times) {
		t.Errorf("%d ticks fired over %d seconds: one was lost or doubled", len(times), span+1)
	}
}

// TestDiscordBillingBot is the product's story end to end, with the exact
// configuration of examples/stripe-billing and examples/discord-billing:
// "<@bot> did Acme pay?" in Discord leads the agent to get_customer, then
// search_invoices, then a reply in the channel. The model server gets its
// key only as the header keyhole sends; the Stripe key, the model's key and
// the bot token appear in no model request, transcript, log, job, audit
// record or Discord message.
func TestDiscordBillingBot(t *testing.T) {
	for _, provider := range []string{"anthropic", "openai"} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", provider, stream), func(t *testing.T) {
				t.Parallel()
				testDiscordBillingBot(t, provider, stream)
			})
		}
	}
}

func testDiscordBillingBot(t *testing.T, provider string, stream bool) {
	ctx := context.Background()
	b := startJobs(t, "", server.Config{AgentStream: stream})
	billing(t, b)
	model := billingModel(t, provider)
	llm := "f/bot/" + provider
	_, err := b.admin.SetResource(ctx, llm, resource.SetRequest{Type: provider,
		Value: json.RawMessage(`{"apiKey": "` + llmCanary + `", "baseURL": "` + model.baseURL + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	srv := fakeDiscord(t, b)
	agentDef := readExample(t, "stripe-billing/agent.yaml")
	agentDef = strings.NewReplacer("provider: anthropic", "provider: "+provider,
		"llm: f/bot/anthropic", "llm: "+llm).Replace(agentDef)
	trigger := readExample(t, "discord-billing/trigger.yaml") +
		"gateway_url: " + srv.GatewayURL() + "\napi_base: " + srv.APIBase() + "\n"
	apply(t, b, agentDef, trigger)

	waitDiscord(t, srv, "identify", func(s fakediscord.Stats) bool { return s.Identifies == 1 })
	mention(t, srv, "did Acme pay?")
	waitDiscord(t, srv, "the answer", func(s fakediscord.Stats) bool { return s.Posts == 1 })
	if p := srv.Posts()[0]; p.Content != "Yes, Acme paid." || p.ReplyTo == "" {
		t.Fatalf("reply: %+v", p)
	}

	reqs := model.requests()
	if len(reqs) != 3 {
		t.Fatalf("the model got %d requests, want 3", len(reqs))
	}
	if !strings.Contains(string(reqs[0].body), "did Acme pay?") ||
		strings.Contains(string(reqs[0].body), "<@") {
		t.Errorf("first model request: %s", reqs[0].body)
	}
	secrets := []string{canary, llmCanary, botCanary}
	assertModelRequests(t, model, reqs, secrets...)

	list := triggerJobs(t, b)
	if len(list) != 1 || list[0].Kind != "agent" || list[0].State != "succeeded" {
		t.Fatalf("trigger jobs: %+v", list)
	}
	j, err := b.admin.Job(ctx, list[0].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr := string(j.Transcript)
	if !strings.Contains(tr, "get_customer") || !strings.Contains(tr, "search_invoices") {
		t.Errorf("transcript lacks the tool calls: %.500s", tr)
	}
	jobJSON, _ := json.Marshal(j)
	entries, _ := b.admin.Audit(ctx, client.AuditQuery{})
	auditJSON, _ := json.Marshal(entries)
	posts, _ := json.Marshal(srv.Posts())
	assertNone(t, "the job, its log, the server log, the audit log or Discord", secrets,
		string(jobJSON), allLogs(t, b, j.ID), b.logs.String(), string(auditJSON), string(posts))
}

// assertNone fails when any secret, or its base64 form, is in any text.
func assertNone(t *testing.T, where string, secrets []string, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range secretForms(s) {
			for _, text := range texts {
				if strings.Contains(text, form) {
					t.Errorf("a secret (%.12s…) appears in %s", s, where)
				}
			}
		}
	}
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWebSocketTrigger: the trigger connects with a header injected from a
// resource, sends its initial message and heartbeats, runs a tool for each
// message its filter selects and sends the result back. A URL that refuses
// shows as the trigger's last error.
func TestWebSocketTrigger(t *testing.T) {
	b := startJobs(t, "", server.Config{})
	billing(t, b)
	const wsToken = "ws-CANARY-token-77aa"
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+wsToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		_, first, err := c.Read(ctx)
		if err != nil || string(first) != `{"op":"subscribe"}` {
			return
		}
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"status"}`))
		c.Write(ctx, websocket.MessageText,
			[]byte(`{"type":"event","email":"billing@acme.example"}`))
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			got <- string(data)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	_, err := b.admin.SetResource(context.Background(), "f/ws", resource.SetRequest{
		Type: "http_bearer", AllowedHosts: []string{host},
		Value: json.RawMessage(`{"token": "` + wsToken + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws://" + host + "/stream"
	apply(t, b, "kind: trigger\nname: events\ntype: websocket\nurl: "+wsURL+"\n"+
		"headers: {Authorization: {resource: f/ws, field: token, prefix: 'Bearer '}}\n"+
		"initial_messages: ['{\"op\":\"subscribe\"}']\n"+
		"heartbeat: {interval: 1s, message: '{\"op\":\"ping\"}'}\n"+
		"filters: [{path: type, equals: event}]\n"+
		"run: {tool: get_customer}\nargs: '{email: .data.email}'\nreply: true\n",
		"kind: trigger\nname: refused\ntype: websocket\nurl: ws://127.0.0.1:1/x\n"+
			"run: {tool: get_customer}\n")

	var reply string
	heartbeats := 0
	timeout := time.After(20 * time.Second)
	for reply == "" || heartbeats == 0 {
		select {
		case m := <-got:
			if m == `{"op":"ping"}` {
				heartbeats++
			} else {
				reply = m
			}
		case <-timeout:
			t.Fatalf("reply %q, %d heartbeats", reply, heartbeats)
		}
	}
	if !strings.Contains(reply, "cus_Acme0001") {
		t.Errorf("reply: %s", reply)
	}
	if jobs := triggerJobs(t, b); len(jobs) != 1 {
		t.Errorf("%d jobs, want 1 (the status message is filtered out)", len(jobs))
	}
	waitTrigger(t, b, "events", "connected")
	refused := waitTrigger(t, b, "refused", "waiting")
	if !strings.Contains(refused.LastError, "refused") {
		t.Errorf("refused trigger: %+v", refused)
	}
	if strings.Contains(b.logs.String(), wsToken) {
		t.Error("the WebSocket token is in the server log")
	}
}

// TestWebhookQueueFull: past max_queued a delivery is refused with 429 and
// Retry-After, and queues nothing.
func TestWebhookQueueFull(t *testing.T) {
	b := start(t, t.TempDir(), "", "") // no workers: jobs stay queued
	billing(t, b)
	_, err := b.admin.SetResource(context.Background(), "f/hooks/secret", resource.SetRequest{
		Type: "secret", Value: json.RawMessage(`{"value": "` + hookSecret + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, b, "kind: trigger\nname: limited\ntype: webhook\n"+
		"auth: {type: token, resource: f/hooks/secret}\nmax_queued: 2\n"+
		"run: {tool: get_customer}\nargs: '{email: \"billing@acme.example\"}'\n")
	auth := map[string]string{"Authorization": "Bearer " + hookSecret}
	for i := range 2 {
		if status, out := post(t, b.url+"/hooks/default/limited", auth, `{}`); status != 202 {
			t.Fatalf("delivery %d: %d %s", i, status, out)
		}
	}
	req, _ := http.NewRequest("POST", b.url+"/hooks/default/limited", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+hookSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"too_many_requests"`) {
		t.Errorf("third delivery: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := len(triggerJobs(t, b)); n != 2 {
		t.Errorf("%d jobs queued, want 2", n)
	}
}
