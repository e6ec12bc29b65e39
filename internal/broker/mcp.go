package broker

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keyhole/keyhole/internal/tool"
)

// GrantFunc resolves the grant of an MCP request from its HTTP headers. It
// runs when a session starts and again on every tool call, so a revoked token
// stops working within its session.
type GrantFunc func(ctx context.Context, h http.Header) (*Grant, error)

// Version is reported to MCP clients as the server's version.
var Version = "0.1.0-dev"

// MCPHandler serves one toolset over MCP Streamable HTTP. The caller
// authenticates requests before they reach it.
func (b *Broker) MCPHandler(grantFor GrantFunc) http.Handler {
	// The SDK asks for a server on every request, to read the protocol
	// versions it speaks; only a request without a session uses the one it
	// gets. Requests of a session get a bare server instead of a new one
	// with every tool: their calls are authorized one by one in mcpCall.
	versions := mcp.NewServer(&mcp.Implementation{Name: "keyhole", Version: Version}, nil)
	return mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		if r.Header.Get("Mcp-Session-Id") != "" {
			return versions
		}
		g, err := grantFor(r.Context(), r.Header)
		if err != nil {
			return nil
		}
		srv, err := b.mcpServer(r.Context(), g, grantFor)
		if err != nil {
			b.logger.ErrorContext(r.Context(), "broker: cannot serve MCP", "error", err)
			return nil
		}
		return srv
	}, &mcp.StreamableHTTPOptions{SessionTimeout: 30 * time.Minute, JSONResponse: true, Logger: b.logger})
}

// mcpServer builds an MCP server offering a grant's tools.
func (b *Broker) mcpServer(ctx context.Context, g *Grant, grantFor GrantFunc) (*mcp.Server, error) {
	tools, err := b.Tools(ctx, g)
	if err != nil {
		return nil, err
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "keyhole", Version: Version},
		&mcp.ServerOptions{Logger: b.logger})
	for _, t := range tools {
		srv.AddTool(mcpTool(t), b.mcpCall(t.Name(), grantFor))
	}
	return srv, nil
}

// mcpTool describes a tool to MCP clients from its definition.
func mcpTool(t *tool.Tool) *mcp.Tool {
	schema := t.InputSchema()
	if len(schema) == 0 {
		schema = json.RawMessage(`{"type": "object"}`)
	}
	return &mcp.Tool{Name: t.Name(), Description: t.Description(), InputSchema: schema}
}

// mcpCall runs one tool for an MCP client. Failures are tool results with
// isError set and a message a model can act on.
func (b *Broker) mcpCall(name string, grantFor GrantFunc) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var h http.Header
		if req.Extra != nil {
			h = req.Extra.Header
		}
		g, err := grantFor(ctx, h)
		if err != nil {
			return errorResult(err.Error()), nil
		}
		res, err := b.Call(ctx, g, name, req.Params.Arguments)
		if err != nil {
			return errorResult(err.Error()), nil
		}
		return &mcp.CallToolResult{IsError: res.IsError,
			Content: []mcp.Content{&mcp.TextContent{Text: string(res.Content)}}}, nil
	}
}

func errorResult(msg string) *mcp.CallToolResult {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
}
