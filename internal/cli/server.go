package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/server"
)

func init() { register(newServerCmd) }

func newServerCmd(stdio Stdio) *cobra.Command {
	var cfg server.Config
	var logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the keyhole server",
		Long: "Run the keyhole server: the API, MCP endpoints and broker.\n\n" +
			"On first start it creates the data directory, a master key, the default\n" +
			"workspace and an admin token in <data-dir>/admin.token.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(stdio.Err, logFormat, logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			cfg.DataDir = dataDir(cmd)

			srv, err := server.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve the API on")
	f.StringVar(&cfg.DB, "db", "", "database: empty for SQLite in the data directory, or postgres://…")
	f.StringVar(&cfg.KeyURL, "key-url", "", "key service wrapping the data keys: empty for "+
		"<data-dir>/master.key, or base64key://, hashivault://, awskms://, gcpkms://, azurekeyvault://")
	f.StringVar(&cfg.PreviousKeyURL, "previous-key-url", "", "key service the data keys were "+
		"wrapped with before --key-url; run 'keyhole key rotate --kek' to finish moving")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// newLogger builds the process's logger. It is passed down explicitly; there
// is no global logger.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
