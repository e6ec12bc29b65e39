package discord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/trigger"
)

// RESTOptions configures a [REST] client. The zero value is usable.
type RESTOptions struct {
	// APIBase is the REST origin. Empty means https://discord.com.
	APIBase string
	// HTTPClient sends the requests. Nil means one with a 30 s timeout.
	HTTPClient *http.Client
	// MaxParts caps how many messages one long text is split into; the
	// last part is truncated. Zero means 5, one rate-limit bucket's worth.
	MaxParts int
	// MaxRetryWait is the longest rate-limit wait the client sits out
	// before giving up with an APIError. Zero means 30 s.
	MaxRetryWait time.Duration
	// Logger receives rate-limit notices; nil discards them.
	Logger *slog.Logger
}

// REST posts messages through Discord's REST API. It honours the
// X-RateLimit-* headers per channel, waits out 429 answers up to
// MaxRetryWait, retries 5xx answers, and sends a nonce with enforce_nonce so
// that a retried post is never duplicated. It is safe for concurrent use.
type REST struct {
	auth  string
	base  string
	http  *http.Client
	opts  RESTOptions
	log   *slog.Logger
	clean redactor

	mu      sync.Mutex
	blocked map[string]time.Time // bucket key → no request before
}

// NewREST returns a REST client that authenticates as the bot with token.
func NewREST(token Token, opts RESTOptions) *REST {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.MaxParts <= 0 {
		opts.MaxParts = 5
	}
	if opts.MaxRetryWait <= 0 {
		opts.MaxRetryWait = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &REST{
		auth:    "Bot " + string(token),
		base:    orDefault(opts.APIBase, DefaultAPIBase),
		http:    opts.HTTPClient,
		opts:    opts,
		log:     opts.Logger,
		clean:   redactor{token: string(token)},
		blocked: map[string]time.Time{},
	}
}

// Reply posts text in channelID as a reply to messageID and returns the ids
// of the messages created. Text longer than 2000 characters is split into
// several messages (see [Split]); only the first is marked as the reply.
// Mentions in text do not ping anyone except the author replied to.
func (r *REST) Reply(ctx context.Context, channelID, messageID, text string) ([]string, error) {
	return r.post(ctx, channelID, messageID, text)
}

// Send posts text in channelID, split like Reply.
func (r *REST) Send(ctx context.Context, channelID, text string) ([]string, error) {
	return r.post(ctx, channelID, "", text)
}

func (r *REST) post(ctx context.Context, channelID, replyTo, text string) ([]string, error) {
	if !isSnowflake(channelID) || (replyTo != "" && !isSnowflake(replyTo)) {
		return nil, fmt.Errorf("discord: channel and message ids must be numeric, "+
			"got %q and %q", channelID, replyTo)
	}
	parts := Split(text, r.opts.MaxParts)
	if len(parts) == 0 {
		return nil, errors.New("discord: cannot send an empty message")
	}

	var ids []string
	for i, part := range parts {
		body := newMessageBody(part, channelID, replyTo, i == 0)
		id, err := r.create(ctx, channelID, body)
		if err != nil {
			return ids, r.clean.error(err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

type messageBody struct {
	Content          string            `json:"content"`
	Nonce            string            `json:"nonce"`
	EnforceNonce     bool              `json:"enforce_nonce"`
	AllowedMentions  allowedMentions   `json:"allowed_mentions"`
	MessageReference *messageReference `json:"message_reference,omitempty"`
}

// allowedMentions with an empty Parse keeps @everyone, roles and users in
// generated text from pinging anyone.
type allowedMentions struct {
	Parse       []string `json:"parse"`
	RepliedUser bool     `json:"replied_user"`
}

type messageReference struct {
	MessageID       string `json:"message_id"`
	ChannelID       string `json:"channel_id"`
	FailIfNotExists bool   `json:"fail_if_not_exists"`
}

func newMessageBody(content, channelID, replyTo string, first bool) messageBody {
	b := messageBody{
		Content:         content,
		Nonce:           newNonce(),
		EnforceNonce:    true,
		AllowedMentions: allowedMentions{Parse: []string{}, RepliedUser: true},
	}
	if replyTo != "" && first {
		b.MessageReference = &messageReference{MessageID: replyTo, ChannelID: channelID}
	}
	return b
}

// newNonce returns a random nonce within Discord's 25 characters.
func newNonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// maxAttempts bounds the tries of one message: rate limits and 5xx answers.
const maxAttempts = 4

// create posts one message, waiting out rate limits, and returns its id.
func (r *REST) create(ctx context.Context, channelID string, body messageBody) (string, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("discord: encode message: %w", err)
	}
	endpoint := r.base + "/api/v10/channels/" + url.PathEscape(channelID) + "/messages"
	key := "messages/" + channelID

	for attempt := 1; ; attempt++ {
		if err := r.waitBucket(ctx, key); err != nil {
			return "", err
		}
		id, retryIn, err := r.attempt(ctx, endpoint, key, payload)
		if retryIn < 0 || attempt == maxAttempts {
			return id, err
		}
		r.log.WarnContext(ctx, "discord: retrying message post",
			"channel_id", channelID, "attempt", attempt, "wait", retryIn, "err", err)
		if !trigger.Sleep(ctx, retryIn) {
			return "", fmt.Errorf("discord: post message: %w", ctx.Err())
		}
	}
}

// attempt sends one request. A non-negative retryIn asks for a retry after
// that long; the error then says why.
func (r *REST) attempt(ctx context.Context, endpoint, key string,
	payload []byte) (id string, retryIn time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint,
		bytes.NewReader(payload))
	if err != nil {
		return "", -1, fmt.Errorf("discord: build request: %w", err)
	}
	req.Header.Set("Authorization", r.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "DiscordBot (https://github.com/keyhole/keyhole, 1)")

	resp, err := r.http.Do(req)
	if err != nil {
		return "", time.Second, fmt.Errorf("discord: post message: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r.noteHeaders(key, resp.Header)
	return r.outcome(resp, data)
}

// outcome interprets a response; see attempt.
func (r *REST) outcome(resp *http.Response, data []byte) (string, time.Duration, error) {
	var body struct {
		ID         string  `json:"id"`
		Code       int     `json:"code"`
		Message    string  `json:"message"`
		RetryAfter float64 `json:"retry_after"`
		Global     bool    `json:"global"`
	}
	json.Unmarshal(data, &body)
	apiErr := &APIError{Status: resp.StatusCode, Code: body.Code, Message: body.Message}

	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return body.ID, -1, nil
	case s == http.StatusUnauthorized:
		return "", -1, fmt.Errorf("%w: store a new bot token", ErrUnauthorized)
	case s == http.StatusTooManyRequests:
		return "", r.retryAfter(resp.Header, body.RetryAfter, body.Global, apiErr), apiErr
	case s >= 500:
		return "", time.Second, apiErr
	}
	return "", -1, apiErr
}

// retryAfter returns how long a 429 asks to wait, or -1 when that is longer
// than the client sits out.
func (r *REST) retryAfter(h http.Header, seconds float64, global bool,
	e *APIError) time.Duration {
	if seconds <= 0 {
		seconds, _ = strconv.ParseFloat(h.Get("Retry-After"), 64)
	}
	wait := time.Duration(seconds * float64(time.Second))
	if global {
		r.block("global", wait)
	}
	if wait > r.opts.MaxRetryWait {
		e.RetryAfter = seconds
		return -1
	}
	return max(wait, 10*time.Millisecond)
}

// noteHeaders blocks the bucket until its reset when no request is left.
func (r *REST) noteHeaders(key string, h http.Header) {
	if h.Get("X-RateLimit-Remaining") != "0" {
		return
	}
	after, err := strconv.ParseFloat(h.Get("X-RateLimit-Reset-After"), 64)
	if err == nil && after > 0 {
		r.block(key, time.Duration(after*float64(time.Second)))
	}
}

func (r *REST) block(key string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	until := time.Now().Add(d)
	if until.After(r.blocked[key]) {
		r.blocked[key] = until
	}
}

// waitBucket waits until neither the bucket nor the global limit blocks.
func (r *REST) waitBucket(ctx context.Context, key string) error {
	r.mu.Lock()
	until := r.blocked[key]
	if g := r.blocked["global"]; g.After(until) {
		until = g
	}
	r.mu.Unlock()

	wait := time.Until(until)
	if wait <= 0 {
		return nil
	}
	if wait > r.opts.MaxRetryWait {
		return &APIError{Status: http.StatusTooManyRequests,
			Message: "rate limited", RetryAfter: wait.Seconds()}
	}
	if !trigger.Sleep(ctx, wait) {
		return fmt.Errorf("discord: waiting for rate limit: %w", ctx.Err())
	}
	return nil
}

func isSnowflake(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
