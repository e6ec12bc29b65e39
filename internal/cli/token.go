package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/server"
)

func init() { register(newTokenCmd) }

func newTokenCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "token",
		Aliases: []string{"tokens"},
		Short:   "Manage API tokens",
	}
	cmd.AddCommand(newTokenCreateCmd(stdio), newTokenListCmd(stdio), newTokenRevokeCmd(stdio))
	return cmd
}

func newTokenCreateCmd(stdio Stdio) *cobra.Command {
	var name string
	var scopes []string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "create --name NAME --scope SCOPE...",
		Short: "Create a token; it is printed once, alone on standard output",
		Long: "Create a token. The token is printed alone on standard output, so scripts can\n" +
			"capture it (TOKEN=$(keyhole token create …)); its name, scopes and expiry go\n" +
			"to standard error. keyhole keeps only a hash: the token cannot be shown again.\n\n" +
			"Scopes: " + strings.Join(auth.Known, ", ") + ", and mcp:TOOLSET.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), name, scopes, expires)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, t.Secret)
			exp := "never expires"
			if t.ExpiresAt != nil {
				exp = "expires " + t.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stdio.Err, "created token %s (%s) in workspace %s with scopes %s; %s\n",
				t.Name, t.ID, t.Workspace, strings.Join(t.Scopes, ","), exp)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "token name, unique among live tokens of the workspace")
	f.StringSliceVar(&scopes, "scope", nil, "scope to grant (repeatable, or comma-separated)")
	f.DurationVar(&expires, "expires", 0, "lifetime, such as 24h; none by default")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("scope")
	return cmd
}

func newTokenListCmd(stdio Stdio) *cobra.Command {
	var revoked bool
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the workspace's tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.Tokens(cmd.Context(), revoked)
			if err != nil {
				return err
			}
			return output(stdio.Out, format, list, func(w io.Writer) error { return tokenTable(w, list) })
		},
	}
	cmd.Flags().BoolVar(&revoked, "revoked", false, "include revoked tokens")
	addOutputFlag(cmd, &format, "table")
	return cmd
}

func tokenTable(w io.Writer, list []server.TokenInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tSTATE")
	for _, t := range list {
		exp, state := "never", "live"
		if t.ExpiresAt != nil {
			exp = t.ExpiresAt.Format("2006-01-02 15:04")
			if time.Now().After(*t.ExpiresAt) {
				state = "expired"
			}
		}
		if t.RevokedAt != nil {
			state = "revoked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Scopes, ","),
			t.CreatedAt.Format("2006-01-02 15:04"), exp, state)
	}
	return tw.Flush()
}

func newTokenRevokeCmd(stdio Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID|NAME",
		Short: "Revoke a token; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "revoked token %s (%s)\n", t.Name, t.ID)
			return nil
		},
	}
}
