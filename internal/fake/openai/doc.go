// Package openai is a local stand-in for the OpenAI Chat Completions API
// (POST /v1/chat/completions), as OpenAI and compatible servers such as
// vLLM, Ollama and llama.cpp serve it, that plays a scripted conversation,
// for tests of keyhole's agent loop.
//
// Import it under a name that sets it apart from the real SDK:
//
//	import fakeopenai "github.com/keyhole/keyhole/internal/fake/openai"
//
//	srv := fakeopenai.NewServer(&fakeopenai.Options{
//		Key: key,
//		Turns: []fakeopenai.Turn{
//			fakeopenai.CallTool("get_customer", map[string]any{"email": "a@b.example"}),
//			func(r *fakeopenai.Request) fakeopenai.Reply {
//				res := r.ToolResults()[0]
//				return fakeopenai.Reply{Text: "Found: " + res.Content}
//			},
//		},
//	})
//	t.Cleanup(srv.Close)
//	// point the client at srv.URL + "/v1"; srv.Requests() tells what it received
//
// The server checks the bearer key in Authorization (401 with an
// invalid_api_key error otherwise) and refuses, as the real API does, a
// request without model or messages, a tool that is not a function with a
// name, an assistant message whose tool_calls are not each answered by a
// following "tool" message, and a "tool" message answering no call. Errors
// have the API's shape: {"error": {"message", "type", "param", "code"}}.
//
// Each valid request is answered by the next [Turn] of the script: a
// function of the parsed [Request] that returns a [Reply] with text, tool
// calls, a finish reason, usage or an API error. A reply is sent as one
// chat.completion object, or, when the request says "stream": true, as
// "data:" lines of chat.completion.chunk objects (the role, text in
// pieces, each tool call's id and name and then its arguments in pieces,
// the finish reason) ending with "data: [DONE]"; with
// stream_options.include_usage a last chunk with empty choices carries the
// usage. Usage that a reply leaves out is estimated from the sizes of the
// request and the reply, about four bytes to a token.
//
// Every request received is recorded with its headers and body, so a test
// can assert what reached the model.
package openai
