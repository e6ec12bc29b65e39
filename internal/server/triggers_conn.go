package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/trigger/discord"
	"github.com/keyhole/keyhole/internal/trigger/spec"
	"github.com/keyhole/keyhole/internal/trigger/websocket"
)

// discordClient builds the gateway client of a discord trigger. The bot
// token is opened here, in the server, and sent only to the resource's
// allowed hosts.
func (t *triggers) discordClient(ctx context.Context, ws *store.Workspace, def *spec.Trigger) (
	func(context.Context) error, func() (string, string), error) {
	cred, err := t.s.resources.Open(ctx, ws.ID, def.Resource)
	if err != nil {
		return nil, nil, err
	}
	if cred.Type != "discord" {
		return nil, nil, fmt.Errorf("resource %s is of type %s; a discord trigger needs type discord",
			def.Resource, cred.Type)
	}
	token, _ := cred.Fields["botToken"].(string)
	gateway, api := def.DiscordURLs()
	checkHost := func(raw string) error { return checkCredentialURL(raw, cred) }
	for _, raw := range []string{gateway, api} {
		if err := checkHost(raw); err != nil {
			return nil, nil, err
		}
	}

	filter := discord.Filter{Mention: true}
	if def.Filter != nil {
		filter = *def.Filter
	}
	var client *discord.Client
	handle := func(ctx context.Context, m discord.Message) error {
		j, err := t.submit(ctx, ws, def, discordEvent(m))
		if err != nil {
			return err
		}
		if def.Reply {
			t.replyWhenDone(ws, def, j, func(ctx context.Context, text string) error {
				return client.Reply(ctx, m, text)
			})
		}
		return nil
	}
	client, err = discord.New(discord.Config{
		Token: discord.Token(token), GatewayURL: gateway, APIBase: api, Filter: filter,
		Handler: handle, BusyReply: def.BusyReply, BusyWait: time.Duration(def.BusyWait),
		CheckURL:   checkHost,
		HTTPClient: t.httpClient(), Logger: t.log.With("trigger", def.Name, "workspace", ws.Name),
	})
	if err != nil {
		return nil, nil, err
	}
	status := func() (string, string) {
		st := client.Status()
		if st.State == discord.StateIdle {
			return string(discord.StateConnecting), st.LastError
		}
		return string(st.State), st.LastError
	}
	return client.Run, status, nil
}

// discordEvent is what a Discord message gives a job.
func discordEvent(m discord.Message) map[string]any {
	return map[string]any{
		"message": m.Text,
		"discord": map[string]any{
			"message_id": m.ID, "channel_id": m.ChannelID, "guild_id": m.GuildID,
			"author":  map[string]any{"id": m.Author.ID, "username": m.Author.Username},
			"content": m.Content,
		},
	}
}

// websocketClient builds the client of a websocket trigger, with header
// values from resources injected here.
func (t *triggers) websocketClient(ctx context.Context, ws *store.Workspace, def *spec.Trigger) (
	func(context.Context) error, func() (string, string), error) {
	header := http.Header{}
	for name, h := range def.Headers {
		if h.Resource == "" {
			header.Set(name, h.Value)
			continue
		}
		cred, err := t.s.resources.Open(ctx, ws.ID, h.Resource)
		if err != nil {
			return nil, nil, err
		}
		if err := checkCredentialURL(def.URL, cred); err != nil {
			return nil, nil, err
		}
		v, ok := cred.Fields[h.Field].(string)
		if !ok {
			return nil, nil, fmt.Errorf("headers.%s: resource %s has no text field %q",
				name, h.Resource, h.Field)
		}
		header.Set(name, h.Prefix+v)
	}
	filters, err := def.WebSocketFilters()
	if err != nil {
		return nil, nil, err
	}

	var client *websocket.Client
	handle := func(ctx context.Context, m websocket.Message) error {
		event := map[string]any{"message": string(m.Data)}
		if m.Value != nil {
			event["data"] = m.Value
		}
		j, err := t.submit(ctx, ws, def, event)
		if err != nil {
			return err
		}
		if def.Reply {
			t.replyWhenDone(ws, def, j, func(ctx context.Context, text string) error {
				return client.Send(ctx, []byte(text))
			})
		}
		return nil
	}
	cfg := websocket.Config{URL: def.URL, Header: header, InitialMessages: def.InitialMessages,
		Filters: filters, Handler: handle, HTTPClient: t.httpClient(),
		BusyWait: time.Duration(def.BusyWait),
		Logger:   t.log.With("trigger", def.Name, "workspace", ws.Name)}
	if def.Heartbeat != nil {
		cfg.Heartbeat = &websocket.Heartbeat{Interval: time.Duration(def.Heartbeat.Interval),
			Message: def.Heartbeat.Message}
	}
	client, err = websocket.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	status := func() (string, string) {
		st := client.Status()
		state := "connecting"
		if st.Connected {
			state = "connected"
		} else if st.LastError != "" {
			state = "waiting"
		}
		return state, st.LastError
	}
	return client.Run, status, nil
}

// checkCredentialURL refuses to send a credential to a ws, wss, http or
// https address outside its resource's allowed hosts.
func checkCredentialURL(raw string, cred *resource.Credential) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("address %q: %w", raw, err)
	}
	check := *u
	switch strings.ToLower(u.Scheme) {
	case "ws":
		check.Scheme = "http"
	case "wss":
		check.Scheme = "https"
	}
	if err := tool.CheckURL(&check, cred.AllowedHosts); err != nil {
		return fmt.Errorf("resource %s may not be sent to %s: %w", cred.Path, u.Host, err)
	}
	return nil
}

// httpClient is what trigger connections dial with: the server's upstream
// transport when one is configured (tests trusting a local TLS server).
func (t *triggers) httpClient() *http.Client {
	if t.s.cfg.Transport == nil {
		return nil
	}
	return &http.Client{Transport: t.s.cfg.Transport}
}
