// Package agent runs keyhole's agents: a model, an LLM resource, a system
// prompt, a toolset and limits, in a loop that calls the model, makes the
// tool calls it asks for and feeds their results back until it answers.
//
// # Definitions
//
// Users write agents in YAML (or JSON):
//
//	kind: agent
//	name: billing-assistant
//	provider: anthropic          # or openai, for any OpenAI-compatible server
//	llm: f/bot/anthropic         # resource of type anthropic (or openai)
//	model: claude-sonnet-5-5
//	system: You answer questions about customers' invoices.
//	toolset: billing
//	max_turns: 6                 # model calls per run
//	max_tokens: 1024             # output tokens per model call
//	timeout: 2m                  # the whole run
//	budget: {tokens: 50000}      # input and output tokens per run
//
// [Decode] decodes one document strictly (a field the definition does not
// have is an error naming it and its line) and validates it; definitions
// marshal back to the same JSON and YAML.
//
// # Runs
//
// A [Runner] runs an [Input]: the definition, the decrypted LLM resource,
// the toolset as a [Tools] and the user's message. The model is called
// through the official SDKs of Anthropic and OpenAI, at the resource's
// baseURL or the provider's public API. Before the first call the base
// URL is checked against the resource's allowed hosts with tool.CheckURL;
// every request is checked again on its way out, follows no redirect and
// goes over tool.NewTransport's guarded dialer. The API key is set on the
// request by the SDK in the trusted process (x-api-key for Anthropic,
// Authorization: Bearer for OpenAI) and nowhere else; neither SDK reads
// the process's environment.
//
// Each turn sends the conversation with the tools' schemas. Tool calls of
// one turn run concurrently and their results go back in the order of the
// calls. A call to a tool the toolset lacks, or with arguments that are
// not a JSON object, gets an error result without reaching [Tools], and
// the run goes on: the model can correct itself. A run ends with a
// [StopReason]: final (an answer), max_turns, budget, timeout, cancelled
// or error.
//
// # Transcripts and secrets
//
// Run returns a [Transcript]: every [Step] (the input, each model call
// with its text, tool calls, token usage and duration, each tool call with
// its arguments, result and duration, and the end), for the job to store.
// [Input.OnStep] receives the same steps as they happen.
//
// A redactor built from the LLM resource's secrets and [Input.Secrets]
// passes over every string of the transcript and over everything the run
// adds to the conversation (the system prompt, the message and each tool
// result), so no secret reaches the model or the transcript.
package agent
