package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/server"
)

func init() { register(newTriggerCmd) }

func newTriggerCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Inspect triggers: webhooks, schedules, WebSocket and Discord connections",
		Long: "Triggers are defined with keyhole apply (kind: trigger) and start jobs from\n" +
			"outside events. keyhole trigger list shows each one's state across the\n" +
			"cluster: which server holds a connection, the last event, the last error.",
	}
	cmd.AddCommand(newTriggerListCmd(stdio))
	return cmd
}

func newTriggerListCmd(stdio Stdio) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List triggers with their state, last event and last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.Triggers(cmd.Context())
			if err != nil {
				return err
			}
			return output(stdio.Out, format, list, func(w io.Writer) error {
				return triggerTable(w, list)
			})
		},
	}
	addOutputFlag(cmd, &format, "table")
	return cmd
}

func triggerTable(w io.Writer, list []server.TriggerInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tRUN\tSTATE\tEVENTS\tLAST EVENT\tLAST ERROR")
	for _, t := range list {
		last := "-"
		if t.LastEventAt != nil {
			last = t.LastEventAt.Local().Format(time.DateTime)
		}
		state := t.State
		if t.Path != "" {
			state += " " + t.Path
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Name, t.Type, t.Run, state,
			t.Events, last, shorten(oneLine(t.LastError), 60))
	}
	return tw.Flush()
}

// shorten cuts s to at most n runes.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
