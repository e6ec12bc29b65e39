// Package spec is the definition of a trigger as "keyhole apply" takes it
// (kind: trigger): what starts jobs, which job it starts, and how an event
// becomes the job's arguments. It decodes and checks definitions; the server
// runs them with the connection packages beside this one.
//
// Every event is a JSON object with a "message" string, the text an agent
// run answers, and the details of its type:
//
//	discord:   {"message": "did Acme pay?", "discord": {"message_id", "channel_id",
//	            "guild_id", "author": {"id", "username"}, "content"}}
//	webhook:   {"message": raw body, "body": body as JSON when it is JSON,
//	            "headers": {lower-case name: value}, "query": {name: value}}
//	websocket: {"message": raw message, "data": message as JSON when it is JSON}
//	schedule:  {"message": "scheduled run for TIME", "tick": TIME, "catch_up": bool}
//
// Without an args expression the event itself is the job's arguments; with
// one, the expression (jq, gojq dialect) maps the event to them.
package spec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/itchyny/gojq"

	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/trigger/discord"
	"github.com/keyhole/keyhole/internal/trigger/schedule"
	"github.com/keyhole/keyhole/internal/trigger/websocket"
	"github.com/keyhole/keyhole/internal/yamldoc"
)

// Kind is the kind of a trigger document.
const Kind = "trigger"

// Trigger types.
const (
	Webhook   = "webhook"
	Schedule  = "schedule"
	WebSocket = "websocket"
	Discord   = "discord"
)

// Webhook authentication schemes.
const (
	AuthToken  = "token"  // a shared token in a header
	AuthHMAC   = "hmac"   // "sha256=<hex>" HMAC-SHA256 of the body
	AuthStripe = "stripe" // Stripe's Stripe-Signature scheme
)

// Webhook modes.
const (
	ModeAsync = "async" // answer at once with the job id
	ModeSync  = "sync"  // wait for the job and answer with its result
)

// Limits on what a definition may ask for.
const (
	DefaultMaxQueued   = 100
	DefaultSyncTimeout = 30 * time.Second
	MaxSyncTimeout     = 5 * time.Minute
)

// Trigger is one trigger definition. Fields below Run apply to the types
// named in their comments; Check refuses them on other types.
type Trigger struct {
	Kind        string `json:"kind" yaml:"kind"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Type is webhook, schedule, websocket or discord.
	Type string `json:"type" yaml:"type"`
	// Run names the job each event starts.
	Run Target `json:"run" yaml:"run"`
	// Args is a jq expression from the event to the job's arguments.
	Args string `json:"args,omitempty" yaml:"args,omitempty"`
	// MaxQueued bounds this trigger's jobs waiting to start; past it, new
	// events wait (connections) or are refused with 429 (webhooks).
	// Default 100.
	MaxQueued int `json:"max_queued,omitempty" yaml:"max_queued,omitempty"`
	// BusyWait is how long a message from a connection waits for room in
	// the queue before it is refused (and answered with BusyReply).
	// Default 5s.
	BusyWait tool.Duration `json:"busy_wait,omitempty" yaml:"busy_wait,omitempty"`
	// Disabled keeps the definition but starts nothing.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`

	// Auth authenticates webhook deliveries.
	Auth *WebhookAuth `json:"auth,omitempty" yaml:"auth,omitempty"`
	// Mode is async (default) or sync, for webhooks.
	Mode string `json:"mode,omitempty" yaml:"mode,omitempty"`
	// Timeout bounds a sync webhook's wait; default 30s, at most 5m.
	Timeout tool.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`

	// Cron is a schedule's expression, five fields or six with seconds.
	Cron string `json:"cron,omitempty" yaml:"cron,omitempty"`
	// Timezone is a schedule's IANA time zone; default UTC.
	Timezone string `json:"timezone,omitempty" yaml:"timezone,omitempty"`
	// Catchup is none, latest (default) or all: ticks missed while down.
	Catchup string `json:"catchup,omitempty" yaml:"catchup,omitempty"`

	// URL is the ws:// or wss:// address of a websocket trigger.
	URL string `json:"url,omitempty" yaml:"url,omitempty"`
	// Headers are sent with a websocket trigger's handshake.
	Headers map[string]HeaderValue `json:"headers,omitempty" yaml:"headers,omitempty"`
	// InitialMessages are sent after each connect.
	InitialMessages []string `json:"initial_messages,omitempty" yaml:"initial_messages,omitempty"`
	// Heartbeat is sent at an interval to keep the connection alive.
	Heartbeat *Heartbeat `json:"heartbeat,omitempty" yaml:"heartbeat,omitempty"`
	// Filters must all match an incoming message for it to start a job.
	Filters []Filter `json:"filters,omitempty" yaml:"filters,omitempty"`

	// Resource is a discord trigger's bot: a resource of type discord.
	Resource string `json:"resource,omitempty" yaml:"resource,omitempty"`
	// Filter selects the Discord messages that start a job.
	Filter *discord.Filter `json:"filter,omitempty" yaml:"filter,omitempty"`
	// GatewayURL and APIBase override Discord's addresses.
	GatewayURL string `json:"gateway_url,omitempty" yaml:"gateway_url,omitempty"`
	APIBase    string `json:"api_base,omitempty" yaml:"api_base,omitempty"`
	// BusyReply is posted to a message that could not start a job.
	BusyReply string `json:"busy_reply,omitempty" yaml:"busy_reply,omitempty"`

	// Reply sends the job's result back: a Discord reply to the message,
	// or a message on the WebSocket connection.
	Reply bool `json:"reply,omitempty" yaml:"reply,omitempty"`

	args *gojq.Code // Args compiled by Check
}

// Target names what a trigger runs: exactly one of its fields.
type Target struct {
	Script string `json:"script,omitempty" yaml:"script,omitempty"`
	Tool   string `json:"tool,omitempty" yaml:"tool,omitempty"`
	Agent  string `json:"agent,omitempty" yaml:"agent,omitempty"`
}

// Kind returns the job kind of the target and its name.
func (t Target) Kind() (kind, name string) {
	switch {
	case t.Script != "":
		return "script", t.Script
	case t.Tool != "":
		return "tool", t.Tool
	}
	return "agent", t.Agent
}

// String returns "kind name".
func (t Target) String() string {
	k, n := t.Kind()
	return k + " " + n
}

// WebhookAuth says how a webhook delivery proves where it comes from. The
// secret is a field of a resource, so it is kept sealed like any key.
type WebhookAuth struct {
	// Type is token, hmac or stripe.
	Type string `json:"type" yaml:"type"`
	// Resource holds the shared secret.
	Resource string `json:"resource" yaml:"resource"`
	// Field is the resource field holding it; default the type's only
	// secret field (value for a resource of type secret).
	Field string `json:"field,omitempty" yaml:"field,omitempty"`
	// Header carries the token or signature. Defaults: Authorization
	// (token, as "Bearer TOKEN"), X-Signature (hmac), Stripe-Signature
	// (stripe).
	Header string `json:"header,omitempty" yaml:"header,omitempty"`
	// Tolerance is how old a Stripe signature may be; default 5m.
	Tolerance tool.Duration `json:"tolerance,omitempty" yaml:"tolerance,omitempty"`
}

// HeaderValue is one handshake header: a fixed value, or a resource field
// injected by the server, with an optional prefix ("Bearer ").
type HeaderValue struct {
	Value    string `json:"value,omitempty" yaml:"value,omitempty"`
	Resource string `json:"resource,omitempty" yaml:"resource,omitempty"`
	Field    string `json:"field,omitempty" yaml:"field,omitempty"`
	Prefix   string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
}

// Heartbeat is a message sent at a fixed interval.
type Heartbeat struct {
	Interval tool.Duration `json:"interval" yaml:"interval"`
	Message  string        `json:"message" yaml:"message"`
}

// Filter is one condition on an incoming WebSocket message: Path and
// Equals, or Expr (jq). See the websocket package.
type Filter struct {
	Path   string `json:"path,omitempty" yaml:"path,omitempty"`
	Equals any    `json:"equals,omitempty" yaml:"equals,omitempty"`
	Expr   string `json:"expr,omitempty" yaml:"expr,omitempty"`
}

// Decode reads a trigger document strictly and checks it on its own.
func Decode(doc []byte) (*Trigger, error) {
	var t Trigger
	if err := yamldoc.DecodeKind(doc, Kind, &t, &t.Kind, nil); err != nil {
		return nil, err
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Check reports everything wrong with t that needs nothing else to see.
func (t *Trigger) Check() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(tool.CheckName(t.Name))
	add(t.checkTarget())
	if t.Args != "" {
		var err error
		t.args, err = compileArgs(t.Args)
		add(err)
	}
	if t.MaxQueued < 0 {
		add(errors.New("max_queued must not be negative"))
	}
	if t.BusyWait < 0 || (t.BusyWait > 0 && t.Type != Discord && t.Type != WebSocket) {
		add(errors.New("busy_wait applies to discord and websocket triggers and must be positive"))
	}
	switch t.Type {
	case Webhook:
		add(t.checkWebhook())
	case Schedule:
		add(t.checkSchedule())
	case WebSocket:
		add(t.checkWebSocket())
	case Discord:
		add(t.checkDiscord())
	default:
		add(fmt.Errorf("type %q: use webhook, schedule, websocket or discord", t.Type))
	}
	if t.Reply && t.Type != Discord && t.Type != WebSocket {
		add(errors.New("reply applies to discord and websocket triggers only"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trigger %s: %w", t.Name, err)
	}
	return nil
}

func (t *Trigger) checkTarget() error {
	n := 0
	for _, s := range []string{t.Run.Script, t.Run.Tool, t.Run.Agent} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("run must name exactly one of script, tool or agent: run: {agent: NAME}")
	}
	return nil
}

// only refuses fields that do not belong to the trigger's type.
func (t *Trigger) only(set map[string]bool) error {
	var bad []string
	for name, on := range set {
		if on {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s do not apply to a %s trigger", strings.Join(slices.Sorted(slices.Values(bad)), ", "), t.Type)
}

func (t *Trigger) checkWebhook() error {
	var errs []error
	errs = append(errs, t.only(map[string]bool{"cron": t.Cron != "", "url": t.URL != "",
		"resource": t.Resource != "", "filter": t.Filter != nil, "filters": len(t.Filters) > 0}))
	if t.Auth == nil {
		errs = append(errs, errors.New(
			"auth is required: {type: token|hmac|stripe, resource: PATH}"))
	} else {
		errs = append(errs, t.Auth.check())
	}
	switch t.Mode {
	case "", ModeAsync, ModeSync:
	default:
		errs = append(errs, fmt.Errorf("mode %q: use async or sync", t.Mode))
	}
	if d := time.Duration(t.Timeout); d < 0 || d > MaxSyncTimeout {
		errs = append(errs, fmt.Errorf("timeout %s: must be between 0 and %s", d, MaxSyncTimeout))
	}
	return errors.Join(errs...)
}

func (a *WebhookAuth) check() error {
	var errs []error
	switch a.Type {
	case AuthToken, AuthHMAC, AuthStripe:
	default:
		errs = append(errs, fmt.Errorf("auth.type %q: use token, hmac or stripe", a.Type))
	}
	if a.Resource == "" {
		errs = append(errs, errors.New("auth.resource is required: the resource holding the secret"))
	}
	if a.Tolerance < 0 || (a.Tolerance > 0 && a.Type != AuthStripe) {
		errs = append(errs, errors.New("auth.tolerance applies to stripe only and must be positive"))
	}
	return errors.Join(errs...)
}

// SyncTimeout returns how long a sync webhook waits for its job.
func (t *Trigger) SyncTimeout() time.Duration {
	if t.Timeout <= 0 {
		return DefaultSyncTimeout
	}
	return time.Duration(t.Timeout)
}

func (t *Trigger) checkSchedule() error {
	errs := []error{t.only(map[string]bool{"auth": t.Auth != nil, "url": t.URL != "",
		"resource": t.Resource != "", "filter": t.Filter != nil, "filters": len(t.Filters) > 0})}
	if t.Cron == "" {
		errs = append(errs, errors.New(`cron is required, such as "0 9 * * 1-5"`))
	} else if _, err := t.Schedule(); err != nil {
		errs = append(errs, fmt.Errorf("cron: %w", err))
	}
	if _, err := schedule.ParseCatchup(t.Catchup); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Schedule parses a schedule trigger's cron expression in its time zone.
func (t *Trigger) Schedule() (*schedule.Schedule, error) {
	return schedule.Parse(t.Cron, t.Timezone)
}

func (t *Trigger) checkWebSocket() error {
	errs := []error{t.only(map[string]bool{"auth": t.Auth != nil, "cron": t.Cron != "",
		"resource": t.Resource != "", "filter": t.Filter != nil})}
	u, err := url.Parse(t.URL)
	if err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss") {
		errs = append(errs, fmt.Errorf("url %q: must be a ws:// or wss:// address", t.URL))
	}
	for name, h := range t.Headers {
		if (h.Value == "") == (h.Resource == "") {
			errs = append(errs, fmt.Errorf("headers.%s: give either value or resource", name))
		}
		if h.Resource != "" && h.Field == "" {
			errs = append(errs, fmt.Errorf("headers.%s: field is required with resource", name))
		}
	}
	if t.Heartbeat != nil && t.Heartbeat.Interval < tool.Duration(time.Second) {
		errs = append(errs, errors.New("heartbeat.interval must be at least 1s"))
	}
	if _, err := t.WebSocketFilters(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// WebSocketFilters converts the filters for the websocket package.
func (t *Trigger) WebSocketFilters() ([]websocket.Filter, error) {
	var out []websocket.Filter
	for i, f := range t.Filters {
		wf := websocket.Filter{Path: f.Path, Expr: f.Expr}
		if f.Equals != nil {
			b, err := json.Marshal(f.Equals)
			if err != nil {
				return nil, fmt.Errorf("filters[%d].equals: %w", i, err)
			}
			wf.Equals = b
		}
		out = append(out, wf)
	}
	if err := websocket.CheckFilters(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *Trigger) checkDiscord() error {
	errs := []error{t.only(map[string]bool{"auth": t.Auth != nil, "cron": t.Cron != "",
		"url": t.URL != "", "filters": len(t.Filters) > 0})}
	if t.Resource == "" {
		errs = append(errs, errors.New("resource is required: a resource of type discord"))
	}
	for name, raw := range map[string]string{"gateway_url": t.GatewayURL, "api_base": t.APIBase} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q is not an absolute URL", name, raw))
		}
	}
	return errors.Join(errs...)
}

// DiscordURLs returns the gateway and REST addresses a discord trigger
// uses, defaults filled in.
func (t *Trigger) DiscordURLs() (gateway, api string) {
	gateway, api = t.GatewayURL, t.APIBase
	if gateway == "" {
		gateway = discord.DefaultGatewayURL
	}
	if api == "" {
		api = discord.DefaultAPIBase
	}
	return gateway, api
}

// QueueLimit returns how many of the trigger's jobs may wait to start.
func (t *Trigger) QueueLimit() int {
	if t.MaxQueued == 0 {
		return DefaultMaxQueued
	}
	return t.MaxQueued
}

// Resources returns the paths of the resources the trigger reads.
func (t *Trigger) Resources() []string {
	var out []string
	if t.Resource != "" {
		out = append(out, t.Resource)
	}
	if t.Auth != nil {
		out = append(out, t.Auth.Resource)
	}
	for _, h := range t.Headers {
		if h.Resource != "" {
			out = append(out, h.Resource)
		}
	}
	return out
}

// JobArgs maps an event to the job's arguments: the event itself, or what
// the args expression makes of it.
func (t *Trigger) JobArgs(ctx context.Context, event map[string]any) (json.RawMessage, error) {
	if t.Args == "" {
		return json.Marshal(event)
	}
	if t.args == nil {
		var err error
		if t.args, err = compileArgs(t.Args); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()

	// gojq wants plain JSON values: round-trip the event.
	b, err := json.Marshal(event)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	out, ok := t.args.RunWithContext(ctx, v).Next()
	if !ok {
		return nil, errors.New("args: the expression gave no value")
	}
	if err, isErr := out.(error); isErr {
		return nil, fmt.Errorf("args: %w", err)
	}
	return json.Marshal(out)
}

func compileArgs(src string) (*gojq.Code, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("args: bad jq expression %q: %v", src, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("args: bad jq expression %q: %v", src, err)
	}
	return code, nil
}
