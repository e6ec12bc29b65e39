package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMCPWithTypeScriptClient drives the MCP endpoint with the official
// TypeScript SDK. It needs node and the SDK installed in testdata/mcpjs
// (npm ci there; .ci/run does it and sets KEYHOLE_TEST_NODE=require).
func TestMCPWithTypeScriptClient(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "mcpjs")
	_, nodeErr := exec.LookPath("node")
	_, sdkErr := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk"))
	if nodeErr != nil || sdkErr != nil {
		if os.Getenv("KEYHOLE_TEST_NODE") == "require" {
			t.Fatalf("node or the TypeScript MCP SDK is missing (run npm ci in %s)", dir)
		}
		t.Skipf("node or the TypeScript MCP SDK is missing; run npm ci in %s "+
			"(KEYHOLE_TEST_NODE=require fails instead)", dir)
	}

	b := start(t, t.TempDir(), "", "")
	billing(t, b)
	tok, err := b.admin.CreateToken(context.Background(), "ts", []string{"mcp:billing"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.mjs", b.url+"/mcp/default/billing",
		tok.Secret, "billing@acme.example")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	assertNoCanary(t, "TypeScript client output", out)

	var got struct {
		Tools      []string
		Customer   string
		Invoices   string
		BadIsError bool
		BadText    string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if strings.Join(got.Tools, ",") != "get_customer,search_invoices" ||
		!strings.Contains(got.Customer, "cus_Acme0001") || !strings.Contains(got.Invoices, "paid") ||
		!got.BadIsError || !strings.Contains(got.BadText, "email") {
		t.Errorf("TypeScript client saw %+v", got)
	}
}
