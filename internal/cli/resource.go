package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/resource"
)

func init() { register(newResourceCmd) }

func newResourceCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "resource",
		Aliases: []string{"resources"},
		Short:   "Manage resources: typed, encrypted credentials at paths like f/bot/stripe",
	}
	cmd.AddCommand(newResourceSetCmd(stdio), newResourceGetCmd(stdio), newResourceListCmd(stdio),
		newResourceDeleteCmd(stdio), newResourceTypesCmd(stdio))
	return cmd
}

func newResourceSetCmd(stdio Stdio) *cobra.Command {
	var req resource.SetRequest
	var hosts, fromFile string
	cmd := &cobra.Command{
		Use:   "set PATH --type TYPE",
		Short: "Create or replace a resource; the JSON value comes from stdin or --from-file",
		Long: "Create or replace a resource. The value is a JSON object read from standard\n" +
			"input (or --from-file), never from a flag, so it stays out of shell history:\n\n" +
			"  echo '{\"apiKey\": \"sk_live_…\"}' | keyhole resource set f/bot/stripe --type stripe\n" +
			"  keyhole resource set f/bot/stripe --type stripe --from-file stripe.json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := readValue(stdio.In, fromFile)
			if err != nil {
				return err
			}
			req.Path, req.Value = args[0], value
			if cmd.Flags().Changed("allowed-hosts") {
				req.AllowedHosts = splitList(hosts)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			info, err := c.SetResource(cmd.Context(), req.Path, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "%s: %s version %d (allowed hosts: %s)\n", info.Path, info.Type,
				info.Version, strings.Join(info.AllowedHosts, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&req.Type, "type", "t", "", "resource type (keyhole resource types lists them)")
	f.StringVar(&hosts, "allowed-hosts", "", "comma-separated hosts the credential may be sent to, "+
		"instead of the type's")
	f.StringVar(&req.Description, "description", "", "what the resource is for")
	f.StringVar(&fromFile, "from-file", "", "read the JSON value from this file instead of stdin")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

// readValue reads a resource value from a file or standard input.
func readValue(stdin io.Reader, file string) (json.RawMessage, error) {
	var b []byte
	var err error
	if file != "" {
		b, err = os.ReadFile(file)
	} else {
		if f, ok := stdin.(*os.File); ok {
			if st, serr := f.Stat(); serr == nil && st.Mode()&os.ModeCharDevice != 0 {
				return nil, fmt.Errorf("give the JSON value on standard input " +
					"(echo '{…}' | keyhole resource set …) or with --from-file")
			}
		}
		b, err = io.ReadAll(io.LimitReader(stdin, resource.MaxValueSize+1))
	}
	if err != nil {
		return nil, fmt.Errorf("read the value: %w", err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 {
		return nil, fmt.Errorf("the value is empty: give a JSON object such as {\"apiKey\": \"…\"}")
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("the value is not valid JSON: give a JSON object such as {\"apiKey\": \"…\"}")
	}
	return b, nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newResourceGetCmd(stdio Stdio) *cobra.Command {
	var reveal bool
	var format string
	cmd := &cobra.Command{
		Use:   "get PATH",
		Short: "Show a resource with its secret fields masked (--reveal shows them; audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			info, err := c.Resource(cmd.Context(), args[0], reveal)
			if err != nil {
				return err
			}
			if format == "" || format == "table" {
				format = "yaml"
			}
			return output(stdio.Out, format, info, nil)
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show secret values (needs scope secrets:reveal; audited)")
	addOutputFlag(cmd, &format, "yaml")
	return cmd
}

func newResourceListCmd(stdio Stdio) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List resources (metadata only)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			list, err := c.Resources(cmd.Context(), prefix)
			if err != nil {
				return err
			}
			return output(stdio.Out, format, list, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PATH\tTYPE\tVERSION\tALLOWED HOSTS\tUPDATED")
				for _, r := range list {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Path, r.Type, r.Version,
						strings.Join(r.AllowedHosts, ","), r.UpdatedAt.Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &format, "table")
	return cmd
}

func newResourceDeleteCmd(stdio Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "delete PATH",
		Short: "Delete a resource",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteResource(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "deleted %s\n", args[0])
			return nil
		},
	}
}

func newResourceTypesCmd(stdio Stdio) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "types",
		Short: "List resource types: their secret fields and default allowed hosts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			types, err := c.ResourceTypes(cmd.Context())
			if err != nil {
				return err
			}
			return output(stdio.Out, format, types, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TYPE\tSECRET FIELDS\tALLOWED HOSTS\tDESCRIPTION")
				for _, t := range types {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, strings.Join(t.SecretFields, ","),
						strings.Join(t.AllowedHosts, ","), t.Description)
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &format, "table")
	return cmd
}
