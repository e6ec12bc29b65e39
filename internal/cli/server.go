package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

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
	f.StringVar(&cfg.ExternalURL, "external-url", "", "how others reach this server, "+
		"https://keyhole.example.com: the issuer of its identity tokens (default http://LISTEN)")
	addJobFlags(cmd, &cfg, "workers", "jobs this server runs at once; 0 runs none (use keyhole worker)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// addJobFlags adds the flags of processes that run jobs.
func addJobFlags(cmd *cobra.Command, cfg *server.Config, workersFlag, workersHelp string) {
	f := cmd.Flags()
	f.IntVar(&cfg.Workers, workersFlag, 4, workersHelp)
	f.StringSliceVar(&cfg.MountAllow, "mount-allow", nil, "host folders scripts may mount (comma-separated)")
	f.DurationVar(&cfg.JobRetention, "job-retention", 7*24*time.Hour, "how long finished jobs and their logs are kept")
	f.StringVar(&cfg.SandboxInit, "sandbox-init", "", "a keyhole-sandbox-init program to start "+
		"sandboxes from, faster than this binary (go build ./cmd/keyhole-sandbox-init)")
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

func init() { register(newWorkerCmd) }

func newWorkerCmd(stdio Stdio) *cobra.Command {
	var cfg server.Config
	var logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "worker --db postgres://… [--key-url …]",
		Short: "Run jobs for keyhole servers that share a PostgreSQL database",
		Long: "Run jobs, and nothing else, for the keyhole servers sharing a PostgreSQL\n" +
			"database. Start it with the servers' --db and --key-url; it refuses to start\n" +
			"if that key service cannot open the workspaces' data keys.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(stdio.Err, logFormat, logLevel)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(cfg.DB, "postgres://") && !strings.HasPrefix(cfg.DB, "postgresql://") {
				return errors.New("keyhole worker needs --db postgres://…: with SQLite, " +
					"the server's own workers (keyhole server --workers N) run the jobs")
			}
			cfg.Logger, cfg.DataDir, cfg.WorkerOnly = logger, dataDir(cmd), true
			srv, err := server.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.RunWorker(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DB, "db", "", "the servers' PostgreSQL database, postgres://…")
	f.StringVar(&cfg.KeyURL, "key-url", "", "the servers' key service (see keyhole server --help)")
	f.StringVar(&cfg.PreviousKeyURL, "previous-key-url", "", "the servers' previous key service, if any")
	addJobFlags(cmd, &cfg, "concurrency", "jobs this worker runs at once")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
