// Package discord connects a keyhole trigger to Discord: a gateway v10
// client that hands selected messages to a handler, and a REST client that
// posts the replies.
//
// The server decrypts the bot token from its store and passes it in
// [Config]; it is held as a [Token], which prints as "[redacted]", and it
// never appears in a log line, an error or a [Status].
//
// # Gateway
//
// [Client.Run] dials the gateway, waits for Hello, then heartbeats at the
// interval given (the first after a random fraction of it) and sends
// Identify with the intents for guild and direct messages and their content.
// READY gives the session id, the resume URL and the bot's user id; every
// event's sequence number is kept. After a dropped connection, a close the
// session survives, op 7 (Reconnect), op 9 with d=true, or a heartbeat whose
// ACK did not arrive before the next one was due, the client reconnects to
// the resume URL and sends Resume with the session id and last sequence;
// Discord replays what was missed. Op 9 with d=false, and close codes 4007
// and 4009, start a new session after a 1–5 s pause. Op 1 is answered at
// once. Close codes 4004 and 4010–4014 cannot be fixed by retrying: Run
// returns a [*CloseError] saying what to do, and does not reconnect. Other
// failures reconnect with exponential backoff and jitter.
//
// Every send goes through one token bucket sized so that no 60 s window
// holds more than 120 sends, Discord's limit, with a few tokens only
// heartbeats may take.
//
// # Delivery and back-pressure
//
// The socket reader never waits on the handler, so heartbeat ACKs are read
// on time however slow the handler is. Selected messages go into a bounded
// buffer (Config.Buffer, 256 by default) that one goroutine drains in
// arrival order into the [Handler]. A handler reports a full job queue by
// returning an error wrapping trigger.ErrQueueFull; the same message is then
// retried with growing pauses for up to Config.BusyWait (5 s by default).
// A message is rejected when the buffer is full on arrival, when BusyWait
// runs out, or when the client stops with it still buffered. Each rejection
// is counted ([Status].Rejected), logged at warning level with the message
// and channel ids (never the content), and, when Config.BusyReply is set,
// answered with that text as a reply so the asker knows to try again.
// Nothing is dropped silently. The gateway has no acknowledgement, so a
// message held in memory when the process dies is lost.
//
// # Replies
//
// [REST] posts messages with POST /api/v10/channels/{id}/messages. A reply
// carries a message_reference to the question. Texts over 2000 characters
// are split at line or word boundaries into up to five messages; past that
// the last part is truncated and marked (see [Split]). Generated text cannot
// ping @everyone, roles or users: allowed_mentions only lets the reply
// notify its asker. Rate-limit headers, 429 retry_after and 5xx answers are
// honoured, and a nonce with enforce_nonce keeps a retried post from
// appearing twice.
package discord
