package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/client"
)

func init() { register(newAuditCmd) }

func newAuditCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the hash-chained audit log",
	}
	var q client.AuditQuery
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit records, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			entries, err := c.Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			return output(stdio.Out, format, entries, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tOUTCOME")
				for _, e := range entries {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq,
						e.At.Local().Format(time.DateTime), e.Actor, e.Action, e.Target, e.Outcome)
				}
				return tw.Flush()
			})
		},
	}
	lf := list.Flags()
	lf.StringVar(&q.Since, "since", "", "only records since this RFC 3339 time or duration ago (1h)")
	lf.StringVar(&q.Action, "action", "", "only this action, or a prefix such as resource")
	lf.IntVar(&q.Limit, "limit", 0, "at most this many records")
	addOutputFlag(list, &format, "table")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the chain; exits non-zero and names the first broken record if any",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			v, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if !v.OK {
				return &ExitError{Code: 1, Message: fmt.Sprintf(
					"audit chain broken at record %d: %s (%d records before it verified)",
					v.BrokenAt, v.Reason, v.Records)}
			}
			fmt.Fprintf(stdio.Out, "audit chain ok: %d records, head %s\n", v.Records, v.Head)
			return nil
		},
	}
	cmd.AddCommand(list, verify)
	return cmd
}
