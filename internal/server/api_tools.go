package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/broker"
	"github.com/keyhole/keyhole/internal/fault"
)

// ToolCallRequest asks to call a tool.
type ToolCallRequest struct {
	Arguments json.RawMessage `json:"arguments"`
}

// ToolCallResult is a tool's answer: the shaped, redacted response, or an
// error result.
type ToolCallResult struct {
	Tool     string          `json:"tool"`
	IsError  bool            `json:"is_error"`
	Status   int             `json:"status,omitempty"`
	Duration float64         `json:"duration_ms"`
	Content  json.RawMessage `json:"content"`
}

func (s *Server) toolEndpoints() []endpoint {
	return []endpoint{
		{method: "POST", path: "/api/v1/workspaces/{ws}/tools/{name}/call", scope: auth.ToolsCall,
			tag: "tools", summary: "Call a tool; a failing call is a result with is_error set",
			body: ToolCallRequest{}, resp: ToolCallResult{}, h: s.callTool},
	}
}

func (s *Server) callTool(w http.ResponseWriter, r *http.Request, c *call) error {
	var req ToolCallRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	g := &broker.Grant{Workspace: c.ws, Actor: c.p.actor(), AnyTool: true,
		Detail: map[string]any{"via": "api"}}
	res, err := s.broker.Call(r.Context(), g, r.PathValue("name"), req.Arguments)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ToolCallResult{Tool: res.Tool, IsError: res.IsError,
		Status: res.Status, Duration: float64(res.Duration.Microseconds()) / 1000, Content: res.Content})
	return nil
}

// mcpHandlers holds one MCP handler, with its sessions, per workspace and
// toolset.
type mcpHandlers struct {
	mu sync.Mutex
	m  map[string]http.Handler
}

// serveMCP serves MCP at /mcp/{ws}/{toolset} to tokens holding mcp:{toolset}.
func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	ws, toolset := r.PathValue("ws"), r.PathValue("toolset")
	if _, err := s.mcpGrant(r.Context(), r.Header, ws, toolset); err != nil {
		s.writeError(w, r, err)
		return
	}

	key := ws + "/" + toolset
	s.mcp.mu.Lock()
	h := s.mcp.m[key]
	if h == nil {
		h = s.broker.MCPHandler(func(ctx context.Context, hdr http.Header) (*broker.Grant, error) {
			return s.mcpGrant(ctx, hdr, ws, toolset)
		})
		if s.mcp.m == nil {
			s.mcp.m = map[string]http.Handler{}
		}
		s.mcp.m[key] = h
	}
	s.mcp.mu.Unlock()
	h.ServeHTTP(w, r)
}

// mcpGrant checks the token in h for MCP access to one toolset and returns
// the grant it gives.
func (s *Server) mcpGrant(ctx context.Context, h http.Header, ws, toolset string) (*broker.Grant, error) {
	token, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, fault.New(fault.Unauthorized, "missing_token",
			"no token: send Authorization: Bearer <token> with scope mcp:%s", toolset)
	}
	p, err := s.principal(ctx, strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	workspace, err := s.authorizeWorkspace(ctx, p, ws)
	if err != nil {
		return nil, err
	}
	scope := auth.MCPPrefix + toolset
	if !auth.Allows(p.scopes, scope) {
		return nil, fault.New(fault.Forbidden, "missing_scope",
			"this token (%s) lacks the scope %s", p.name, scope)
	}
	return &broker.Grant{Workspace: workspace, Actor: p.actor(), Toolset: toolset,
		Detail: map[string]any{"via": "mcp"}}, nil
}
