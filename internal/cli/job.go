package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhole/keyhole/internal/client"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/server"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/tool"
)

func init() {
	register(newRunCmd)
	register(newJobCmd)
}

func newRunCmd(stdio Stdio) *cobra.Command {
	var args, toolset, net string
	var routes []string
	var detach, follow bool
	var timeout time.Duration
	var limits jobs.Limits
	cmd := &cobra.Command{
		Use:   "run SCRIPT [--args JSON] | run [--toolset T] [--route R] -- CMD...",
		Short: "Run a script, or an ad-hoc command, as a job in the sandbox and print its result",
		Long: "Run a script defined with keyhole apply, or an ad-hoc command, as a job: in the\n" +
			"sandbox, with only the toolset and routes it is granted. keyhole run waits and\n" +
			"prints the result; --detach prints only the job id. The exit status is 0 when\n" +
			"the job succeeds and 1 otherwise.\n\n" +
			"  keyhole run check_payment --args '{\"email\": \"billing@acme.example\"}'\n" +
			"  keyhole run --route stripe -- sh -c 'curl -s $KEYHOLE_BROKER_URL/routes/stripe/v1/customers'",
		RunE: func(cmd *cobra.Command, a []string) error {
			req, err := runRequest(cmd, a, args, toolset, net, routes, timeout, limits)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			j, err := c.Enqueue(cmd.Context(), *req, 0)
			if err != nil {
				return err
			}
			if detach {
				fmt.Fprintln(stdio.Out, j.ID)
				return nil
			}
			return awaitJob(cmd.Context(), c, stdio, j.ID, follow)
		},
	}
	f := cmd.Flags()
	f.StringVar(&args, "args", "{}", "the job's arguments, a JSON value (written to /work/args.json)")
	f.BoolVarP(&detach, "detach", "d", false, "print the job id and return at once")
	f.BoolVarP(&follow, "follow", "f", false, "stream the job's output while waiting")
	f.StringVar(&toolset, "toolset", "", "ad-hoc command: the toolset it may call over MCP")
	f.StringSliceVar(&routes, "route", nil, "ad-hoc command: a route it may use (repeatable)")
	f.StringVar(&net, "net", "", "ad-hoc command: none or broker (broker when it has a toolset or routes)")
	f.DurationVar(&timeout, "timeout", 0, "ad-hoc command: the longest it may run (default 1m)")
	f.StringVar(&limits.Memory, "memory", "", "ad-hoc command: memory limit, such as 256M")
	f.Float64Var(&limits.CPU, "cpu", 0, "ad-hoc command: CPU limit in cores")
	f.IntVar(&limits.Pids, "pids", 0, "ad-hoc command: process limit")
	return cmd
}

// runRequest builds the job request of keyhole run.
func runRequest(cmd *cobra.Command, a []string, args, toolset, net string, routes []string,
	timeout time.Duration, limits jobs.Limits) (*jobs.Request, error) {
	if !json.Valid([]byte(args)) {
		return nil, errors.New("--args is not valid JSON")
	}
	dash := cmd.ArgsLenAtDash()
	if dash < 0 {
		if len(a) != 1 {
			return nil, errors.New("give one script name, or -- and a command")
		}
		if toolset != "" || len(routes) > 0 || net != "" || timeout != 0 {
			return nil, errors.New("--toolset, --route, --net and --timeout are for ad-hoc " +
				"commands (after --); a script's grants are in its definition")
		}
		return &jobs.Request{Kind: jobs.KindScript, Name: a[0], Args: json.RawMessage(args)}, nil
	}
	if dash != 0 || len(a) == 0 {
		return nil, errors.New("give the command after --, with nothing before it")
	}
	sc := &jobs.Script{Command: a, Toolset: toolset, Routes: routes, Net: net, Limits: limits}
	sc.Timeout = tool.Duration(timeout)
	return &jobs.Request{Kind: jobs.KindCommand, Script: sc, Args: json.RawMessage(args)}, nil
}

// awaitJob waits for a job, printing its output when follow is set, then
// prints its result and turns its state into the exit status.
func awaitJob(ctx context.Context, c *client.Client, stdio Stdio, id string, follow bool) error {
	var j *server.JobInfo
	var err error
	if follow {
		j, err = c.FollowJobLogs(ctx, id, 0, writeChunk(stdio))
	} else {
		for j == nil || !store.JobDone(j.State) {
			if j, err = c.Job(ctx, id, 30*time.Second); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	printResult(stdio.Out, j.Result, follow)
	if j.State != store.JobSucceeded {
		reason := j.Reason
		if reason == "" {
			reason = j.State
		}
		return &ExitError{Code: 1, Message: fmt.Sprintf("job %s %s: %s (keyhole job logs %s)",
			j.ID, j.State, reason, j.ID)}
	}
	return nil
}

// printResult prints a result: a string as text, anything else as JSON.
func printResult(w io.Writer, result json.RawMessage, skipString bool) {
	if len(result) == 0 {
		return
	}
	var s string
	if json.Unmarshal(result, &s) == nil {
		if s != "" && !skipString {
			fmt.Fprintln(w, s)
		}
		return
	}
	var b bytes.Buffer
	if json.Indent(&b, result, "", "  ") != nil {
		b.Reset()
		b.Write(result)
	}
	fmt.Fprintln(w, b.String())
}

func newJobCmd(stdio Stdio) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "job",
		Aliases: []string{"jobs"},
		Short:   "Inspect and cancel jobs",
	}
	cmd.AddCommand(newJobListCmd(stdio), newJobGetCmd(stdio), newJobLogsCmd(stdio), newJobCancelCmd(stdio))
	return cmd
}

func newJobListCmd(stdio Stdio) *cobra.Command {
	var state, name, format string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.Jobs(cmd.Context(), state, name, limit)
			if err != nil {
				return err
			}
			return output(stdio.Out, format, list, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tNAME\tSTATE\tCREATED\tREASON")
				for _, j := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, j.Name, j.State,
						j.CreatedAt.Local().Format(time.DateTime), j.Reason)
				}
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only jobs in this state")
	f.StringVar(&name, "name", "", "only jobs of this script, tool or agent")
	f.IntVar(&limit, "limit", 50, "at most this many")
	addOutputFlag(cmd, &format, "table")
	return cmd
}

func newJobGetCmd(stdio Stdio) *cobra.Command {
	var format string
	var transcript bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a job: state, reason, result, usage",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), a[0], 0)
			if err != nil {
				return err
			}
			if transcript {
				if len(j.Transcript) == 0 {
					return fmt.Errorf("job %s has no transcript (only agent jobs do)", j.ID)
				}
				return output(stdio.Out, orDefault(format, "yaml"), j.Transcript, nil)
			}
			if !transcript {
				j.Transcript = nil
			}
			return output(stdio.Out, orDefault(format, "yaml"), j, nil)
		},
	}
	cmd.Flags().BoolVar(&transcript, "transcript", false, "show an agent job's transcript")
	addOutputFlag(cmd, &format, "yaml")
	return cmd
}

func orDefault(v, def string) string {
	if v == "" || v == "table" {
		return def
	}
	return v
}

func newJobLogsCmd(stdio Stdio) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's output; -f follows it until the job ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			write := writeChunk(stdio)
			if follow {
				_, err := c.FollowJobLogs(cmd.Context(), a[0], 0, write)
				return err
			}
			var after int64
			for {
				logs, err := c.JobLogs(cmd.Context(), a[0], after)
				if err != nil {
					return err
				}
				for _, l := range logs {
					write(l)
					after = l.Seq
				}
				if len(logs) < 1000 {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the output until the job ends")
	return cmd
}

func newJobCancelCmd(stdio Stdio) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running job",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			j, err := c.CancelJob(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			msg := "cancelled"
			if j.State == store.JobRunning {
				msg = "asked to stop; it ends within a second or two"
			}
			fmt.Fprintf(stdio.Out, "job %s %s\n", j.ID, strings.TrimSpace(msg))
			return nil
		},
	}
}

// writeChunk returns a function printing a job's output as it came: its
// standard output on ours, everything else on standard error.
func writeChunk(stdio Stdio) func(server.LogChunk) {
	return func(l server.LogChunk) {
		w := stdio.Out
		if l.Stream != "stdout" {
			w = stdio.Err
		}
		io.WriteString(w, l.Data)
	}
}
