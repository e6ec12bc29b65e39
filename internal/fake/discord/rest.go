package discord

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Post is a message created through the REST API.
type Post struct {
	ID        string
	ChannelID string
	Content   string
	// ReplyTo is message_reference.message_id, empty for a plain message.
	ReplyTo string
	Nonce   string
	// Body is the request body as received.
	Body json.RawMessage
}

// Posts returns the messages created so far, oldest first.
func (s *Server) Posts() []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Post(nil), s.posts...)
}

// RateLimitPosts makes the next n message posts fail with 429 and the given
// retry_after, as Discord does when a bucket is exhausted.
func (s *Server) RateLimitPosts(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.forced429 = append(s.forced429, retryAfter)
	}
}

type bucket struct {
	remaining int
	resetAt   time.Time
}

type createBody struct {
	Content          string `json:"content"`
	Nonce            string `json:"nonce"`
	EnforceNonce     bool   `json:"enforce_nonce"`
	MessageReference *struct {
		MessageID string `json:"message_id"`
	} `json:"message_reference"`
}

func (s *Server) createMessage(w http.ResponseWriter, r *http.Request) {
	channel := r.PathValue("channel")
	if r.Header.Get("Authorization") != "Bot "+s.opts.Token {
		s.count(func(st *Stats) { st.Unauthorized++ })
		writeJSON(w, http.StatusUnauthorized,
			map[string]any{"message": "401: Unauthorized", "code": 0})
		return
	}
	if wait, limited := s.takeToken(w, channel); limited {
		s.rateLimited(w, wait)
		return
	}

	var body createBody
	raw, err := readBody(r)
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if code, msg := checkBody(body, err); code != 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": msg, "code": code})
		return
	}
	writeJSON(w, http.StatusOK, s.store(channel, body, raw))
}

func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

// checkBody returns Discord's JSON error code and message for a bad body.
func checkBody(b createBody, err error) (int, string) {
	switch {
	case err != nil:
		return 50109, "The request body contains invalid JSON."
	case b.Content == "":
		return 50006, "Cannot send an empty message"
	case utf8.RuneCountInString(b.Content) > 2000:
		return 50035, "Invalid Form Body: content: Must be 2000 or fewer in length."
	}
	return 0, ""
}

// store records a post, or returns the earlier one for a repeated nonce.
func (s *Server) store(channel string, b createBody, raw []byte) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := channel + "/" + b.Nonce
	p, seen := s.nonces[key]
	if !seen || !b.EnforceNonce || b.Nonce == "" {
		s.nextID++
		p = Post{ID: strconv.FormatInt(s.nextID, 10), ChannelID: channel,
			Content: b.Content, Nonce: b.Nonce, Body: json.RawMessage(raw)}
		if b.MessageReference != nil {
			p.ReplyTo = b.MessageReference.MessageID
		}
		s.posts = append(s.posts, p)
		s.nonces[key] = p
		s.stats.Posts++
		s.notifyLocked()
	}
	return map[string]any{"id": p.ID, "channel_id": p.ChannelID, "content": p.Content,
		"author": map[string]any{"id": s.opts.BotUserID, "bot": true}}
}

// takeToken charges the channel's bucket, setting the rate-limit headers.
// It reports how long to wait when the request must be refused.
func (s *Server) takeToken(w http.ResponseWriter, channel string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.forced429) > 0 {
		wait := s.forced429[0]
		s.forced429 = s.forced429[1:]
		return wait, true
	}

	now := time.Now()
	b := s.buckets[channel]
	if b == nil || now.After(b.resetAt) {
		b = &bucket{remaining: s.opts.PostLimit, resetAt: now.Add(s.opts.PostWindow)}
		s.buckets[channel] = b
	}
	h := w.Header()
	resetAfter := b.resetAt.Sub(now).Seconds()
	h.Set("X-RateLimit-Bucket", "fake-create-message")
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.opts.PostLimit))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(
		float64(b.resetAt.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(resetAfter, 'f', 3, 64))
	if b.remaining == 0 {
		h.Set("X-RateLimit-Remaining", "0")
		return b.resetAt.Sub(now), true
	}
	b.remaining--
	h.Set("X-RateLimit-Remaining", strconv.Itoa(b.remaining))
	return 0, false
}

func (s *Server) rateLimited(w http.ResponseWriter, wait time.Duration) {
	s.count(func(st *Stats) { st.RateLimited++ })
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	w.Header().Set("X-RateLimit-Scope", "user")
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"message": "You are being rate limited.", "retry_after": wait.Seconds(),
		"global": false, "code": 0,
	})
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
	s.notifyLocked()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
