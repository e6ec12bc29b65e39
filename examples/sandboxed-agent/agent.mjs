// A billing agent built on the Claude Agent SDK, run by keyhole as a script
// job in its sandbox. It holds no key: its tools are keyhole's billing toolset,
// reached over MCP through the job's broker, and the model is reached through
// a keyhole route that adds the Anthropic key on the way out.
//
// It reads {"question": "..."} from /work/args.json and writes
// {"answer": "...", "tool_calls": [...], "turns": N} to /work/result.json.
import { readFileSync, writeFileSync } from "node:fs";
import { query } from "@anthropic-ai/claude-agent-sdk";

const broker = process.env.KEYHOLE_BROKER_URL;
if (!broker) {
  console.error("KEYHOLE_BROKER_URL is not set: run this as a keyhole job");
  process.exit(2);
}
const args = JSON.parse(readFileSync("/work/args.json", "utf8"));
const question = args.question || "Did Acme pay?";
const route = process.env.MODEL_ROUTE || "anthropic";

// The SDK's own process gets this environment and nothing else. The API key
// is a placeholder: the route drops it and sends the real one.
const env = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  TMPDIR: process.env.TMPDIR,
  LANG: process.env.LANG,
  ANTHROPIC_BASE_URL: `${broker}/routes/${route}`,
  ANTHROPIC_API_KEY: "placeholder-keyhole-adds-the-key",
  // MCP tools go straight to the model rather than behind a search tool.
  ENABLE_TOOL_SEARCH: "false",
  // Nothing leaves the sandbox but the broker anyway; do not try.
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
  DISABLE_AUTOUPDATER: "1",
  DISABLE_TELEMETRY: "1",
  DISABLE_ERROR_REPORTING: "1",
  CLAUDE_CONFIG_DIR: `${process.env.HOME}/.claude`,
};

const system = [
  "You answer questions about customers' billing.",
  "Look the customer up by email with get_customer, then their invoices with",
  "search_invoices, and answer in one or two sentences quoting invoice",
  "numbers and statuses. Acme's billing email is billing@acme.example.",
].join(" ");

const toolCalls = [];
let answer = null;
let turns = 0;
let failure = null;

const options = {
  model: process.env.MODEL || "claude-sonnet-4-5",
  systemPrompt: system,
  mcpServers: {
    // alwaysLoad puts the tools in the first request and waits for the
    // server before it is sent.
    keyhole: { type: "http", url: `${broker}/mcp`, alwaysLoad: true },
  },
  // Only keyhole's tools: no shell, no file edits, no web.
  tools: [],
  allowedTools: ["mcp__keyhole__get_customer", "mcp__keyhole__search_invoices"],
  permissionMode: "dontAsk",
  settingSources: [],
  persistSession: false,
  maxTurns: 6,
  env,
  stderr: (line) => process.stderr.write(line),
};

try {
  for await (const msg of query({ prompt: question, options })) {
    if (msg.type === "assistant") {
      for (const block of msg.message.content) {
        if (block.type === "tool_use") {
          toolCalls.push(block.name);
        }
      }
    } else if (msg.type === "result") {
      turns = msg.num_turns;
      if (msg.subtype === "success" && !msg.is_error) {
        answer = msg.result;
      } else {
        failure = `${msg.subtype}: ${(msg.errors || [msg.result]).join("; ")}`;
      }
    }
  }
} catch (err) {
  failure = err instanceof Error ? err.message : String(err);
}

writeFileSync("/work/result.json",
  JSON.stringify({ question, answer, tool_calls: toolCalls, turns }));
if (failure || answer === null) {
  console.error("the agent did not answer: " + (failure || "no result"));
  process.exit(1);
}
console.log(answer);
