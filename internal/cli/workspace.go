package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
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
	cmd.AddCommand(list, create)
	return cmd
}
