// Package discord is a local stand-in for Discord's gateway (v10, JSON
// encoding) and the part of its REST API that keyhole uses, for tests.
//
// Import it under a name that sets it apart from the real client:
//
//	import fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
//
//	srv := fakediscord.NewServer(fakediscord.Options{Token: token})
//	t.Cleanup(srv.Close)
//	// point the client at srv.GatewayURL() and srv.APIBase()
//	srv.SendMessage(fakediscord.Message{ChannelID: "42",
//		Content: "<@" + srv.BotUserID() + "> ping"})
//	srv.Wait(ctx, func(s fakediscord.Stats) bool { return s.Posts == 1 })
//
// The gateway speaks the real protocol: it sends Hello, checks Identify
// (token, intents, properties) and answers with READY carrying a session id
// and a resume_gateway_url that points at a different path (/resume), so a
// test can tell a resume from a fresh connection. It acknowledges heartbeats,
// answers Resume by replaying the events the client missed, and closes with
// Discord's codes on errors: 4002 for an undecodable payload, 4001 for an
// unknown opcode, 4003 for a payload before Identify, 4004 for a wrong token,
// 4005 for a second Identify, 4008 when the client sends too fast, 4013 when
// a required intent is missing and 4014 for a disallowed intent.
//
// A test drives it with [Server.SendMessage], [Server.Dispatch],
// [Server.Reconnect] (op 7), [Server.InvalidateSession] (op 9),
// [Server.RequestHeartbeat] (op 1), [Server.CloseWith], [Server.Drop],
// [Server.SendRaw] and [Server.SetHeartbeatAcks], and observes it with
// [Server.Stats], [Server.Wait], [Server.Frames], [Server.LastIdentify],
// [Server.LastResume] and [Server.Posts].
//
// The REST side serves POST /api/v10/channels/{id}/messages. It checks the
// "Authorization: Bot <token>" header (401 otherwise), the 2000-character
// limit and nonce de-duplication, sends Discord's X-RateLimit-* headers from
// a per-channel bucket, answers 429 with retry_after when that bucket is
// overdrawn, and can be told to answer 429 on demand with
// [Server.RateLimitPosts].
package discord
