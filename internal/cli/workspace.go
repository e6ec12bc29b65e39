package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/tool"
	"github.com/keyhole/keyhole/internal/vaultref"
)

func init() { register(newWorkspaceCmd) }

func newWorkspaceCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "workspace",
		Aliases: []string{"workspaces"},
		Short:   "Manage workspaces: tenants with their own keys, resources and tokens",
	}
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List workspaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			all, err := c.Workspaces(cmd.Context())
			if err != nil {
				return err
			}
			return output(stdio.Out, format, all, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED")
				for _, ws := range all {
					fmt.Fprintf(tw, "%s\t%s\n", ws.Name, ws.CreatedAt.Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(list, &format, "table")
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a workspace (needs an admin token of the default workspace)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ws, err := c.CreateWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "created workspace %s; create its tokens with "+
				"keyhole token create --workspace %s …\n", ws.Name, ws.Name)
			return nil
		},
	}
	cmd.AddCommand(list, create, newWorkspaceVaultCmd(stdio))
	return cmd
}

func newWorkspaceVaultCmd(stdio Stdio) *cobra.Command {
	var s vaultref.Settings
	var check, show bool
	var maxTTL time.Duration
	cmd := &cobra.Command{
		Use:   "vault --addr URL --role ROLE [--jwt-mount jwt] [--audience vault]",
		Short: "Keep the workspace's secrets in HashiCorp Vault or OpenBao (see docs/VAULT.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if show {
				got, err := c.VaultSettings(cmd.Context())
				if err != nil {
					return err
				}
				return output(stdio.Out, "yaml", got, nil)
			}
			s.MaxCacheTTL = tool.Duration(maxTTL)
			got, err := c.SetVaultSettings(cmd.Context(), s, check)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "workspace %s: Vault %s, role %s, JWT auth at %s, audience %s\n",
				c.Workspace(), got.Addr, got.Role, got.JWTMount, got.Audience)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Addr, "addr", "", "Vault's address, https://vault.example.com:8200")
	f.StringVar(&s.JWTMount, "jwt-mount", "jwt", "where Vault's JWT auth method is enabled")
	f.StringVar(&s.Role, "role", "", "the JWT auth role keyhole logs in with")
	f.StringVar(&s.Audience, "audience", "vault", "the audience of keyhole's identity tokens for Vault")
	f.StringVar(&s.Namespace, "namespace", "", "Vault Enterprise or OpenBao namespace")
	f.DurationVar(&maxTTL, "max-cache-ttl", 0, "longest a fetched value stays in memory")
	f.StringVar(&s.CACert, "ca-cert", "", "PEM bundle of CAs Vault's certificate is checked against")
	f.BoolVar(&check, "check", false, "log in to Vault with the settings before saving them")
	f.BoolVar(&show, "show", false, "print the current settings")
	return cmd
}
