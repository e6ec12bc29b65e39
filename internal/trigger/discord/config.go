package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/trigger"
)

// Token is a bot token. Its String, GoString, Format, LogValue and
// MarshalText methods all print "[redacted]", so a Token that strays into a
// log line, a %v or a JSON document does not leak.
type Token string

const redacted = "[redacted]"

// String returns "[redacted]".
func (Token) String() string { return redacted }

// GoString returns "[redacted]".
func (Token) GoString() string { return redacted }

// Format prints "[redacted]" for every verb.
func (Token) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler.
func (Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Intents is a gateway intents bit set.
type Intents int

// The intents a message trigger needs.
const (
	IntentGuildMessages  Intents = 1 << 9
	IntentDirectMessages Intents = 1 << 12
	IntentMessageContent Intents = 1 << 15 // privileged: enable it in the developer portal

	// DefaultIntents receives guild and direct messages with their content.
	DefaultIntents = IntentGuildMessages | IntentDirectMessages | IntentMessageContent
)

// Default addresses.
const (
	DefaultGatewayURL = "wss://gateway.discord.gg"
	DefaultAPIBase    = "https://discord.com"
)

// Filter selects which MESSAGE_CREATE events reach the handler. Messages by
// bots, the client's own included, are never selected.
//
// A message is selected when it is in one of Channels (any channel when
// empty) and it addresses the bot: with Mention, by mentioning the bot user
// or by being a direct message; with Prefix, by starting with it. When both
// are set either way of addressing the bot suffices; when neither is set
// every message in the channels is selected.
type Filter struct {
	Mention  bool     `json:"mention"`
	Channels []string `json:"channels"`
	Prefix   string   `json:"prefix"`
}

// Handler receives each selected message. It should hand the message to the
// job queue and return quickly; a full queue is reported by returning an
// error that wraps trigger.ErrQueueFull. See the package documentation for
// what happens then.
type Handler func(ctx context.Context, m Message) error

// Config configures a [Client]. Token and Handler are required.
type Config struct {
	// Token is the bot token, decrypted by the server for this client only.
	Token Token
	// GatewayURL overrides the gateway address, for tests and gateway
	// proxies. Empty means wss://gateway.discord.gg. The client adds
	// ?v=10&encoding=json.
	GatewayURL string
	// APIBase overrides the REST origin. Empty means https://discord.com.
	APIBase string
	// Intents to identify with. Zero means DefaultIntents.
	Intents Intents
	// Filter selects the messages passed to Handler.
	Filter Filter
	// Handler receives the selected messages.
	Handler Handler
	// Buffer is how many selected messages may wait for Handler. Zero
	// means 256.
	Buffer int
	// BusyWait bounds how long a message is retried while Handler reports
	// a full queue. Zero means five seconds.
	BusyWait time.Duration
	// BusyReply, when not empty, is posted as a reply to each message that
	// could not be delivered, so the asker knows to try again.
	BusyReply string
	// Backoff paces reconnects after a failure. Zero means 1 s to 2 min.
	Backoff trigger.Backoff
	// SendLimit and SendWindow bound gateway sends. Zero means 120 per
	// 60 s, Discord's limit.
	SendLimit  int
	SendWindow time.Duration
	// CheckURL, when set, vets the resume_gateway_url Discord sends in
	// READY before the token is sent there; a refused URL is not used.
	CheckURL func(raw string) error
	// HTTPClient is used for the gateway handshake and REST. Nil means
	// http.DefaultClient for the handshake and a client with a 30 s
	// timeout for REST.
	HTTPClient *http.Client
	// Logger receives the client's logs; nil discards them. The token is
	// never logged.
	Logger *slog.Logger
}

// validate fills in defaults and reports what is wrong with c.
func (c *Config) validate() error {
	var errs []error
	if strings.TrimSpace(string(c.Token)) == "" {
		errs = append(errs, errors.New("a bot token is required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("a handler is required"))
	}
	c.GatewayURL = orDefault(c.GatewayURL, DefaultGatewayURL)
	c.APIBase = strings.TrimRight(orDefault(c.APIBase, DefaultAPIBase), "/")
	if err := checkURL("gateway_url", c.GatewayURL, "ws", "wss"); err != nil {
		errs = append(errs, err)
	}
	if err := checkURL("api_base", c.APIBase, "http", "https"); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("discord: invalid config: %w", err)
	}

	c.setDefaults()
	return nil
}

func (c *Config) setDefaults() {
	if c.Intents == 0 {
		c.Intents = DefaultIntents
	}
	if c.SendLimit <= 0 || c.SendWindow <= 0 {
		c.SendLimit, c.SendWindow = 120, time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func checkURL(name, raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s %q is not an absolute URL", name, raw)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return fmt.Errorf("%s %q: scheme must be %s", name, raw, strings.Join(schemes, " or "))
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
