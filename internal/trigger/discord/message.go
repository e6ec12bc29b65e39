package discord

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// User is a Discord user as it appears on a message.
type User struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Bot      bool   `json:"bot"`
}

// Message is a MESSAGE_CREATE event selected by the filter.
type Message struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
	// GuildID is empty for a direct message.
	GuildID  string    `json:"guild_id,omitempty"`
	Author   User      `json:"author"`
	Content  string    `json:"content"`
	Mentions []User    `json:"mentions"`
	SentAt   time.Time `json:"timestamp"`
	// Text is Content without the mentions of the bot and the filter's
	// prefix, trimmed: "<@123> did Acme pay?" gives "did Acme pay?".
	Text string `json:"text"`
	// ReceivedAt is when the client read the event from the gateway.
	ReceivedAt time.Time `json:"received_at"`
}

// DM reports whether m is a direct message.
func (m Message) DM() bool { return m.GuildID == "" }

// parseMessage decodes a MESSAGE_CREATE payload.
func parseMessage(d json.RawMessage, received time.Time) (Message, error) {
	var m Message
	if err := json.Unmarshal(d, &m); err != nil {
		return Message{}, err
	}
	m.Text, m.ReceivedAt = "", received
	return m, nil
}

// selects reports whether f selects m for a bot with user id botID, and
// returns m with Text filled in.
func (f Filter) selects(m Message, botID string) (Message, bool) {
	if m.Author.Bot || m.Author.ID == botID || m.ID == "" {
		return m, false
	}
	if len(f.Channels) > 0 && !slices.Contains(f.Channels, m.ChannelID) {
		return m, false
	}

	mentioned := f.Mention && (m.DM() || mentions(m, botID))
	text := stripMentions(m.Content, botID)
	prefixed := f.Prefix != "" && strings.HasPrefix(text, f.Prefix)
	if prefixed {
		text = strings.TrimPrefix(text, f.Prefix)
	}
	if (f.Mention || f.Prefix != "") && !mentioned && !prefixed {
		return m, false
	}

	m.Text = strings.TrimSpace(text)
	return m, true
}

func mentions(m Message, botID string) bool {
	return botID != "" && slices.ContainsFunc(m.Mentions, func(u User) bool {
		return u.ID == botID
	})
}

// stripMentions removes <@id> and <@!id> for the bot and trims the result.
func stripMentions(content, botID string) string {
	if botID != "" {
		content = strings.ReplaceAll(content, "<@"+botID+">", "")
		content = strings.ReplaceAll(content, "<@!"+botID+">", "")
	}
	return strings.TrimSpace(content)
}
