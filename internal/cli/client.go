package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/server"
)

// Global flags every command shares.
const (
	flagURL       = "url"
	flagWorkspace = "workspace"
	flagDataDir   = "data-dir"
)

func addGlobalFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String(flagURL, "http://127.0.0.1:8080", "keyhole server address")
	pf.StringP(flagWorkspace, "w", "default", "workspace to act in")
	pf.String(flagDataDir, ".keyhole", "data directory; the CLI reads admin.token from it "+
		"when KEYHOLE_TOKEN is not set")
}

func dataDir(cmd *cobra.Command) string {
	v, _ := cmd.Flags().GetString(flagDataDir)
	return v
}

// newClient builds an API client from the flags and the environment. With no
// KEYHOLE_TOKEN, a CLI on the server's machine uses the admin token the
// server wrote to its data directory.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	base, _ := cmd.Flags().GetString(flagURL)
	ws, _ := cmd.Flags().GetString(flagWorkspace)
	token, err := tokenFor(cmd)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("no token: set KEYHOLE_TOKEN (or run on the server's machine, " +
			"where the CLI reads <data-dir>/admin.token)")
	}
	return client.New(base, token, &client.Options{Workspace: ws})
}

// tokenFor returns KEYHOLE_TOKEN, or the admin token in the data directory
// when that is unset and readable.
func tokenFor(cmd *cobra.Command) (string, error) {
	token, _ := lookupEnv("KEYHOLE_TOKEN")
	if token = strings.TrimSpace(token); token != "" {
		return token, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir(cmd), server.AdminTokenFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// output writes v in the format named by -o: json, yaml, or the table
// function's text.
func output(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case "", "table", "text":
		if table != nil {
			return table(w)
		}
		fallthrough
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		return writeYAML(w, v)
	}
	return fmt.Errorf("unknown output format %q: use json, yaml or table", format)
}

// writeYAML writes v as YAML by way of its JSON form, so that field names
// and omitted fields follow the JSON tags.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var node yaml.Node
	if err := yaml.Unmarshal(b, &node); err != nil {
		return err
	}
	blockStyle(&node)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return err
	}
	return enc.Close()
}

func addOutputFlag(cmd *cobra.Command, p *string, def string) {
	cmd.Flags().StringVarP(p, "output", "o", def, "output format: table, json or yaml")
}

// blockStyle undoes the flow style a node parsed from JSON carries, so the
// YAML reads as people write it; multi-line strings become literal blocks.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
