package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/server"
)

func init() { register(newSecretsCmd) }

func newSecretsCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Move resource values between keyhole's store and Vault",
	}
	var req server.MigrateRequest
	migrate := &cobra.Command{
		Use:   "migrate --to vault|local PATH...",
		Short: "Move resource values to the workspace's Vault, or back into keyhole",
		Long: "Move resource values between keyhole's encrypted store and the workspace's\n" +
			"Vault (keyhole workspace vault). --to vault writes each value to Vault at\n" +
			"--prefix/PATH and keeps only the reference; --to local reads it back and\n" +
			"seals it in keyhole. See docs/VAULT.md for the Vault policy this needs.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			for _, p := range paths {
				info, err := c.MigrateResource(cmd.Context(), p, req)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				where := "keyhole"
				if info.Reference != "" {
					where = "Vault at " + info.Reference
				}
				fmt.Fprintf(stdio.Out, "%s: now held in %s\n", p, where)
			}
			return nil
		},
	}
	f := migrate.Flags()
	f.StringVar(&req.MigrateTo, "to", "", "vault or local")
	f.StringVar(&req.Prefix, "prefix", "kv/data/keyhole", "KV v2 path under which --to vault writes")
	f.StringVar(&req.Role, "role", "", "Vault role allowed to write, if the workspace's only reads")
	_ = migrate.MarkFlagRequired("to")
	cmd.AddCommand(migrate)
	return cmd
}
