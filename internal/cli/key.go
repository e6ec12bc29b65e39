package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newKeyCmd) }

func newKeyCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Rotate encryption keys",
	}
	var kek bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new data key for the workspace and re-encrypt every value under it",
		Long: "Make a new data key version for the workspace and re-encrypt every resource\n" +
			"value under it, in one transaction.\n\n" +
			"With --kek, wrap every workspace's data keys again under the server's current\n" +
			"key service instead: the last step of moving to a new --key-url (start the\n" +
			"server with the new --key-url and the old one as --previous-key-url first).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if kek {
				r, err := c.RewrapKeys(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdio.Out, "rewrapped %d data keys under the current key service\n", r.Rewrapped)
				return nil
			}
			r, err := c.RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "workspace %s: data key version %d; re-encrypted %d values\n",
				r.Workspace, r.Version, r.Resealed)
			return nil
		},
	}
	rotate.Flags().BoolVar(&kek, "kek", false, "rewrap the data keys under the current key service")
	cmd.AddCommand(rotate)
	return cmd
}
