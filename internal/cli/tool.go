package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register(newToolCmd) }

func newToolCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tool",
		Aliases: []string{"tools"},
		Short:   "Call tools",
	}
	var args string
	call := &cobra.Command{
		Use:   "call NAME [--args JSON]",
		Short: "Call a tool and print its result (needs scope tools:call)",
		Long: "Call a tool the way an agent would: the arguments are checked against the\n" +
			"tool's input schema, the credential is injected by the server, and the\n" +
			"result is shaped and redacted. Exits 1 when the call fails.\n\n" +
			"  keyhole tool call search_invoices --args '{\"email\": \"billing@acme.test\"}'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if !json.Valid([]byte(args)) {
				return fmt.Errorf("--args is not valid JSON: give an object such as '{\"email\": \"…\"}'")
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			res, err := c.CallTool(cmd.Context(), a[0], json.RawMessage(args))
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if json.Indent(&out, res.Content, "", "  ") != nil {
				out.Reset()
				out.Write(res.Content)
			}
			fmt.Fprintln(stdio.Out, out.String())
			if res.IsError {
				return &ExitError{Code: 1, Message: fmt.Sprintf("tool %s failed", a[0])}
			}
			return nil
		},
	}
	call.Flags().StringVar(&args, "args", "{}", "the arguments, a JSON object")
	cmd.AddCommand(call)
	return cmd
}
