package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/broker"
)

func init() { register(newMCPCmd) }

func newMCPCmd(stdio Stdio) *cobra.Command {
	var toolset string
	cmd := &cobra.Command{
		Use:   "mcp --toolset NAME",
		Short: "Speak MCP on stdio and forward to a keyhole server's toolset",
		Long: "Serve one toolset of a keyhole server as an MCP server on standard input and\n" +
			"output, for MCP clients configured with a command (Claude Desktop, Cursor, …).\n" +
			"Tool calls are forwarded to KEYHOLE_URL with KEYHOLE_TOKEN, which needs the\n" +
			"scope mcp:TOOLSET. The keys stay on the server.\n\n" +
			"  claude mcp add billing -e KEYHOLE_TOKEN=kh_… -- keyhole mcp --toolset billing",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMCPProxy(cmd, stdio, toolset)
		},
	}
	cmd.Flags().StringVar(&toolset, "toolset", "", "the toolset to serve")
	_ = cmd.MarkFlagRequired("toolset")
	return cmd
}

// runMCPProxy connects to the server's MCP endpoint and serves the same
// tools on stdio, forwarding every call.
func runMCPProxy(cmd *cobra.Command, stdio Stdio, toolset string) error {
	ctx := cmd.Context()
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	endpoint := strings.TrimSuffix(c.BaseURL(), "/") + "/mcp/" + url.PathEscape(c.Workspace()) +
		"/" + url.PathEscape(toolset)
	token, err := tokenFor(cmd)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: bearer{token: token}}
	remote := mcp.NewClient(&mcp.Implementation{Name: "keyhole-mcp", Version: broker.Version}, nil)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	session, err := remote.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer session.Close()

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("list the tools of toolset %s: %w", toolset, err)
	}
	local := mcp.NewServer(&mcp.Implementation{Name: "keyhole", Version: broker.Version}, nil)
	for _, t := range tools.Tools {
		local.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return session.CallTool(ctx, &mcp.CallToolParams{Name: req.Params.Name,
				Arguments: req.Params.Arguments})
		})
	}
	return local.Run(ctx, &mcp.IOTransport{Reader: nopCloser{stdio.In}, Writer: nopWriteCloser{stdio.Out}})
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
