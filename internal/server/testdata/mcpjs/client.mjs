// Calls keyhole's MCP endpoint with the official TypeScript SDK client, as
// an MCP host would: list the tools, then call get_customer and
// search_invoices. Prints one JSON line with what it saw.
//
// usage: node client.mjs URL TOKEN EMAIL
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, email] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "keyhole-ts-test", version: "1.0.0" });
await client.connect(transport);

const tools = await client.listTools();
const text = (r) => r.content.map((c) => c.text ?? "").join("");
const customer = await client.callTool({ name: "get_customer", arguments: { email } });
const invoices = await client.callTool({ name: "search_invoices", arguments: { email } });
const bad = await client.callTool({ name: "search_invoices", arguments: { email: "nope" } });

console.log(JSON.stringify({
  tools: tools.tools.map((t) => t.name).sort(),
  customer: text(customer),
  invoices: text(invoices),
  badIsError: bad.isError === true,
  badText: text(bad),
}));
await client.close();
