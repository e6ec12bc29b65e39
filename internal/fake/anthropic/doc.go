// Package anthropic is a local stand-in for Anthropic's Messages API
// (POST /v1/messages) that plays a scripted conversation, for tests of
// keyhole's agent loop.
//
// Import it under a name that sets it apart from the real SDK:
//
//	import fakeanthropic "github.com/keyhole/keyhole/internal/fake/anthropic"
//
//	srv := fakeanthropic.NewServer(&fakeanthropic.Options{
//		Key: key,
//		Turns: []fakeanthropic.Turn{
//			fakeanthropic.CallTool("get_customer", map[string]any{"email": "a@b.example"}),
//			func(r *fakeanthropic.Request) fakeanthropic.Reply {
//				res := r.ToolResults()[0]
//				return fakeanthropic.Reply{Text: "Found: " + res.Text}
//			},
//		},
//	})
//	t.Cleanup(srv.Close)
//	// point the client at srv.URL; srv.Requests() tells what it received
//
// The server speaks the wire protocol the official SDKs expect. It checks
// the x-api-key header (401 with an authentication_error otherwise) and
// that anthropic-version is present; it refuses, as the real API does, a
// request without model, max_tokens or messages, a tool whose input_schema
// is not an object, a tool_use block not answered by a tool_result in the
// next message and a tool_result answering no tool_use. Errors have the
// API's shape: {"type": "error", "error": {"type": …, "message": …}}.
//
// Each valid request is answered by the next [Turn] of the script: a
// function of the parsed [Request] that returns a [Reply] with text,
// tool_use blocks, a stop reason, usage or an API error. A reply is sent
// as one JSON message, or, when the request says "stream": true, as the
// server-sent events the API sends: message_start, content_block_start,
// content_block_delta (text_delta, or input_json_delta for tool_use),
// content_block_stop, message_delta with the stop reason and usage, and
// message_stop. Usage that a reply leaves out is estimated from the sizes
// of the request and the reply, about four bytes to a token.
//
// Every request received is recorded with its headers and body, so a test
// can assert what reached the model.
package anthropic
